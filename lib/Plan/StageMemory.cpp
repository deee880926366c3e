//===- StageMemory.cpp - what each pipeline stage's rank holds ------------===//
//
// Sums a plan's arenas per stage: every chunk of a stage is one executor
// with its own arenas (loom/Plan/StageMemory.h).
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/StageMemory.h"
#include "loom/Plan/PlanBuilder.h"

namespace loom {

namespace {
void addPlan(const plan::PlanT &p, StageMemory &m) {
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
    default:
      m.optimizerState += bytes;
      break;
    }
  }
  m.workspace += p.arena_bytes[size_t(plan::Arena::Workspace)];
  int64_t slots = p.stash_slots;
  m.stash += slots * p.arena_bytes[size_t(plan::Arena::Stash)];
  m.stashSlots += slots;
}
} // namespace

std::vector<StageMemory> stageMemory(const plan::PlanT &plan) {
  if (plan.chunks.empty()) {
    StageMemory m;
    addPlan(plan, m);
    return {m};
  }
  int64_t stages = plan.mesh.size() > 1 ? plan.mesh[1]->size : 1;
  std::vector<StageMemory> out(static_cast<size_t>(stages));
  for (size_t s = 0; s < out.size(); ++s)
    out[s].stage = int64_t(s);
  for (const auto &chunk : plan.chunks)
    addPlan(*chunk, out[size_t(chunk->chunk_index % stages)]);
  return out;
}

} // namespace loom
