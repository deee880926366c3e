//===- train_embedded.cpp - an application that embeds Loom's runtime -----===//
//
// What an application does with a plan compiled by loomc: open it, draw the
// initial parameters, train on its own token batches, read the loss and the
// gradient norm, save a checkpoint, and load it into a second session.
//
//   loomc examples/gpt.loom -D layers=2 -D hidden=32 -D heads=4 -D seq=16 \
//         -D vocab=256 --micro-batch-size 4 --global-batch-size 8 -o tiny.plan
//   train_embedded tiny.plan CORPUS.txt CHECKPOINT_DIR
//
// It links Loom::runtime alone: no MLIR, no LLVM.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Session.h"

#include <cstdio>
#include <vector>

using namespace loom::runtime;

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s PLAN CORPUS CHECKPOINT_DIR\n", argv[0]);
    return 2;
  }
  SessionOptions options;
  options.seed = 42;
  options.lr = 2e-3; // overrides the plan's default
  Result<std::unique_ptr<Session>> session = Session::open(argv[1], options);
  if (!session.ok()) {
    std::fprintf(stderr, "error: %s\n", session.message().c_str());
    return 1;
  }
  const loom::plan::PlanT &plan = (*session)->plan();
  Result<TokenDataset> data = TokenDataset::open(
      argv[2], TokenFormat::Bytes, plan.seq_length, plan.vocab_size);
  if (!data.ok()) {
    std::fprintf(stderr, "error: %s\n", data.message().c_str());
    return 1;
  }
  if (loom::runtime::Status s = (*session)->initializeParameters(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }

  // The application's own batches: global batch × seq tokens and labels.
  std::vector<int32_t> tokens(size_t(plan.global_batch_size * plan.seq_length));
  std::vector<int32_t> labels(tokens.size());
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    for (int64_t i = 0; i < plan.global_batch_size; ++i)
      data->sample(step * plan.global_batch_size + i,
                   tokens.data() + i * plan.seq_length,
                   labels.data() + i * plan.seq_length);
    Result<StepMetrics> m = (*session)->step(tokens.data(), labels.data());
    if (!m.ok()) {
      std::fprintf(stderr, "error: %s\n", m.message().c_str());
      return 1;
    }
    if (step == 0)
      first = m->loss;
    last = m->loss;
    std::printf("step %lld loss %.4f grad_norm %.4f lr %.2e\n",
                (long long)m->step, m->loss, m->gradNorm, m->lr);
  }
  if (Status s = (*session)->save(argv[3]); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 1;
  }

  // A second session picks the training up where the first left it.
  Result<std::unique_ptr<Session>> resumed = Session::open(argv[1], options);
  if (!resumed.ok() || !(*resumed)->load(argv[3]).ok()) {
    std::fprintf(stderr, "error: cannot resume from %s\n", argv[3]);
    return 1;
  }
  Result<std::vector<float>> a = (*session)->parameter("final_ln.weight");
  Result<std::vector<float>> b = (*resumed)->parameter("final_ln.weight");
  bool same = a.ok() && b.ok() && *a == *b && (*resumed)->step() == 30;
  std::printf("loss %.4f -> %.4f; resumed session at step %lld with %s "
              "parameters\n",
              first, last, (long long)(*resumed)->step(),
              same ? "the same" : "DIFFERENT");
  return last < first && same ? 0 : 1;
}
