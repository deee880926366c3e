//===- StageMemory.h - what each pipeline stage's rank holds ----*- C++ -*-===//
//
// The bytes one rank of each pipeline stage needs, read from a built plan
// (its memory plan, not a formula): the persistent arena by kind, the
// workspace arena, the stash (one copy per microbatch in flight) and the
// scratch the executors allocate for the f32 shadows of 16-bit operands. The
// `--explain` report prints it, `--recompute auto` compares it with the
// budget, and the CPU runtime's measured allocations are checked against
// it (docs/memory.md).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_STAGEMEMORY_H
#define LOOM_PLAN_STAGEMEMORY_H

#include "loom/runtime/Plan.h"

#include <cstdint>
#include <vector>

namespace loom {

struct StageMemory {
  int64_t stage = 0;
  /// The persistent arena by kind (each buffer's aligned size).
  int64_t parameters = 0, gradients = 0, optimizerState = 0;
  /// The rest of the persistent arena: the distributed optimizer's padding
  /// of each bucket to dp equal shards (views of parameters lie inside
  /// them and count nothing).
  int64_t persistentPadding = 0;
  /// The workspace arena: activations and gradients in flight within one
  /// run of a microbatch program (its peak, as the planner laid it out).
  int64_t workspace = 0;
  /// The stash: one slot per microbatch in flight × the slot's bytes,
  /// summed over the stage's chunks.
  int64_t stash = 0;
  int64_t stashSlots = 0;
  /// One slot of each chunk's stash, summed over the stage's chunks.
  int64_t stashSlotBytes = 0;
  /// The CUDA executor's scratch for the f32 shadows of 16-bit operands
  /// (runtime::shadowScratchBytes at its 256-byte alignment; the CPU
  /// executor's, at 64 bytes, is at most this), per chunk, summed.
  int64_t shadows = 0;
  int64_t persistent() const {
    return parameters + gradients + optimizerState + persistentPadding;
  }
  /// What the executors allocate for the plan: the arenas and the shadows.
  int64_t total() const { return persistent() + workspace + stash + shadows; }
};

/// The alignment the CUDA executor rounds each shadow up to.
constexpr size_t kCudaShadowAlignment = 256;

/// One entry per pipeline stage (one for a plan without a pipeline).
/// `withShadows` = false skips decoding the programs (the shadows stay 0):
/// a solver comparing recomputation choices of one precision may.
std::vector<StageMemory> stageMemory(const plan::PlanT &plan,
                                     bool withShadows = true);

} // namespace loom

#endif // LOOM_PLAN_STAGEMEMORY_H
