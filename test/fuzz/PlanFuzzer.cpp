//===- PlanFuzzer.cpp - libFuzzer target for the plan loader --------------===//
//
// Feeds arbitrary bytes to the runtime as a plan's FlatBuffers payload (the
// file's frame and CRC are bypassed: a crafted plan can carry a good
// checksum), then prepares the CPU executor for every rank of a plan that
// passes validatePlan and runs one microbatch program on rank 0, its
// generated kernels' reference forms in their place. Refusals
// are expected; crashes, hangs, sanitizer reports and unbounded memory are
// bugs. Built by scripts/fuzz.sh with clang and -fsanitize=fuzzer,address,
// seeded with plans loomc writes.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Plan.h"
#include "loom/runtime/Backend.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace rt = loom::runtime;

namespace {
// What one input may make the executor allocate: validatePlan bounds plans
// far above this; the fuzzer only skips the big ones to stay fast.
constexpr int64_t kMaxFuzzArenaBytes = int64_t(64) << 20;
constexpr int64_t kMaxFuzzRanks = 8;

int64_t arenaBytes(const loom::plan::PlanT &p) {
  int64_t sum = 0;
  for (int64_t b : p.arena_bytes)
    sum += b;
  return sum;
}

/// Prepares the executor of `piece` for every rank of the mesh (no
/// communicator: collectives on an axis larger than 1 are refused, which is
/// fine) and runs the microbatch program of the first.
void exercise(const loom::plan::PlanT &top, const loom::plan::PlanT &piece) {
  if (arenaBytes(piece) > kMaxFuzzArenaBytes)
    return;
  int64_t ranks = 1;
  for (const auto &axis : top.mesh)
    ranks *= axis->size; // validatePlan bounded the product
  if (ranks > kMaxFuzzRanks)
    ranks = kMaxFuzzRanks;
  for (int64_t r = 0; r < ranks; ++r) {
    rt::RankContext context;
    // A plan's generated host C++ is code it carries, compiled and run as it
    // stands (docs/codegen.md, "A plan is code"): a crafted kernel source can
    // do anything, by design. What must hold for any bytes is the loader and
    // the kernels' reference forms, which every kernel instruction carries
    // and the decoder checks: those are what this target runs.
    context.generatedKernels = false;
    int64_t rest = r;
    context.coords.assign(piece.mesh.size(), 0);
    for (size_t a = piece.mesh.size(); a-- > 0;) {
      context.coords[a] = rest % piece.mesh[a]->size;
      rest /= piece.mesh[a]->size;
    }
    auto executor = rt::createExecutor("cpu", piece, context);
    if (!executor.ok())
      continue;
    if (r == 0) {
      rt::StepParams state;
      (void)(*executor)->run(rt::ProgramKind::Microbatch, state);
    }
  }
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto plan = rt::readPlanPayload(data, size, "the fuzzed plan");
  if (!plan.ok())
    return 0;
  const loom::plan::PlanT &p = **plan;
  if (p.chunks.empty())
    exercise(p, p);
  else
    for (const auto &chunk : p.chunks)
      exercise(p, *chunk);
  return 0;
}
