//===- train_step.cpp - benchmark: training steps of a compiled plan ------===//
//
//   train_step PLAN [--steps N] [--warmup W] [--backend cpu|cuda] [--device N]
//                   [--no-cuda-graph]
//
// Runs W warm-up steps and N measured steps of the plan on a backend (the
// CPU's by default),
// on seeded random token ids (no data file: the numbers are the runtime's
// alone), and prints one table row per plan: parameters, tokens per step,
// the median step time, tokens/s, the plan's FLOPs per step (forward and
// backward, from the compiler's cost model) and the GFLOP/s that makes, and
// the process's peak resident memory.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Session.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/resource.h>
#include <vector>

using namespace loom::runtime;

int main(int argc, char **argv) {
  std::string planPath;
  int steps = 5, warmup = 1;
  SessionOptions options;
  const char *usageText = "usage: train_step PLAN [--steps N] [--warmup W] "
                      "[--backend NAME] [--device N] [--no-cuda-graph]\n";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--steps" || arg == "--warmup") && i + 1 < argc)
      (arg == "--steps" ? steps : warmup) = std::atoi(argv[++i]);
    else if (arg == "--backend" && i + 1 < argc)
      options.backend = argv[++i];
    else if (arg == "--device" && i + 1 < argc)
      options.device = std::atoi(argv[++i]);
    else if (arg == "--no-cuda-graph")
      options.cudaGraphs = false;
    else if (planPath.empty() && arg[0] != '-')
      planPath = arg;
    else {
      std::fprintf(stderr, "%s", usageText);
      return 2;
    }
  }
  if (planPath.empty() || steps < 1 || warmup < 0) {
    std::fprintf(stderr, "%s", usageText);
    return 2;
  }
  Result<std::unique_ptr<Session>> opened = Session::open(planPath, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "train_step: %s\n", opened.message().c_str());
    return 1;
  }
  Session &session = **opened;
  if (Status s = session.initializeParameters(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  const loom::plan::PlanT &plan = session.plan();
  // The parameters of one tensor-parallel rank's blocks: the plan's, or
  // every pipeline chunk's (a parameter tied across chunks counted once).
  int64_t parameters = 0;
  for (const auto &p : plan.parameters)
    parameters += plan.buffers[p->value]->bytes / 4;
  std::vector<std::string> seen;
  for (const auto &chunk : plan.chunks)
    for (const auto &p : chunk->parameters)
      if (std::find(seen.begin(), seen.end(), p->name) == seen.end()) {
        seen.push_back(p->name);
        parameters += chunk->buffers[p->value]->bytes / 4;
      }

  size_t n = size_t(plan.global_batch_size * plan.seq_length);
  std::vector<int32_t> tokens(n + 1);
  uint64_t state = 12345;
  for (int32_t &t : tokens) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t = int32_t((state >> 33) % uint64_t(plan.vocab_size));
  }
  std::vector<int32_t> labels(tokens.begin() + 1, tokens.end());
  tokens.pop_back();

  std::vector<double> seconds;
  for (int s = 0; s < warmup + steps; ++s) {
    Result<StepMetrics> m = session.step(tokens.data(), labels.data());
    if (!m.ok()) {
      std::fprintf(stderr, "train_step: %s\n", m.message().c_str());
      return 1;
    }
    if (s >= warmup)
      seconds.push_back(m->seconds);
  }
  std::sort(seconds.begin(), seconds.end());
  double median = seconds[seconds.size() / 2];
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("| %-10s | %13lld | %11lld | %8.0f | %8.1f | %10.1f | %7.1f | %9.2f |\n",
              plan.model.c_str(), (long long)parameters, (long long)n,
              median * 1e3, double(n) / median, plan.step_flops / 1e9,
              plan.step_flops / median / 1e9, usage.ru_maxrss / 1048576.0);
  return 0;
}
