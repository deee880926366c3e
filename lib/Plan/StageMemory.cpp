//===- StageMemory.cpp - what each pipeline stage's rank holds ------------===//
//
// Sums a plan's arenas per stage: every chunk of a stage is one executor
// with its own arenas and its own shadow scratch (loom/Plan/StageMemory.h).
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/StageMemory.h"
#include "loom/Plan/PlanBuilder.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/ExecutorSupport.h"

#include <algorithm>

namespace loom {

namespace {
void addPlan(const plan::PlanT &p, StageMemory &m, bool withShadows) {
  int64_t kinds = 0;
  for (const auto &b : p.buffers) {
    if (b->arena != plan::Arena::Persistent)
      continue;
    int64_t bytes = alignBuffer(b->bytes);
    switch (b->kind) {
    case plan::BufferKind::Parameter:
      m.parameters += bytes;
      break;
    case plan::BufferKind::Gradient:
      m.gradients += bytes;
      break;
    case plan::BufferKind::OptimizerState:
      m.optimizerState += bytes;
      break;
    default: // a view of a parameter: inside its storage
      continue;
    }
    kinds += bytes;
  }
  auto arena = [&](plan::Arena a) {
    size_t i = size_t(a);
    return i < p.arena_bytes.size() ? p.arena_bytes[i] : int64_t(0);
  };
  // The arena as laid out: what the kinds leave is padding.
  m.persistentPadding +=
      std::max<int64_t>(0, arena(plan::Arena::Persistent) - kinds);
  m.workspace += arena(plan::Arena::Workspace);
  int64_t slots = p.stash_slots;
  m.stashSlotBytes += arena(plan::Arena::Stash);
  m.stash += slots * arena(plan::Arena::Stash);
  m.stashSlots += slots;
  if (!withShadows)
    return;
  // The shadows depend on the operands' types only, not on the rank.
  runtime::Result<runtime::DecodedPlan> decoded = runtime::decodePlan(p);
  if (decoded.ok())
    m.shadows +=
        int64_t(runtime::shadowScratchBytes(p, *decoded, kCudaShadowAlignment));
}
} // namespace

std::vector<StageMemory> stageMemory(const plan::PlanT &plan,
                                     bool withShadows) {
  if (plan.chunks.empty()) {
    StageMemory m;
    addPlan(plan, m, withShadows);
    return {m};
  }
  int64_t stages = 1;
  for (const auto &axis : plan.mesh)
    if (axis->name == "pp")
      stages = axis->size;
  std::vector<StageMemory> out;
  out.resize(static_cast<size_t>(stages));
  for (size_t s = 0; s < out.size(); ++s)
    out[s].stage = int64_t(s);
  for (const auto &chunk : plan.chunks)
    addPlan(*chunk, out[size_t(chunk->chunk_index % stages)], withShadows);
  return out;
}

} // namespace loom
