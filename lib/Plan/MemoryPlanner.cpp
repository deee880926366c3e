//===- MemoryPlanner.cpp - the arenas' layout: offsets for every buffer ---===//
//
// The persistent arena holds what lives across steps, each gradient bucket
// of data parallelism a contiguous range. The workspace is greedy by size (as
// TFLite's and XLA's heap simulators start from): the largest buffer first,
// each at the lowest offset that no buffer alive at the same time occupies.
// Lifetimes are instruction intervals of the microbatch program, inclusive at
// both ends, so an instruction never writes over one of its own inputs. In a
// pipeline chunk, what the forward step leaves for the backward step goes to
// the Stash arena, of which the runtime keeps one copy per microbatch in
// flight (stash_slots, from the schedule).
//
//===----------------------------------------------------------------------===//

#include "Lowering.h"
#include "loom/Plan/PlanBuilder.h"

#include <algorithm>
#include <limits>

namespace loom {

/// The persistent arena: parameters, then the gradients in reverse order of
/// declaration (the order the backward finishes them; a data-parallel
/// bucket is a contiguous range of them), then AdamW's moments. With the
/// distributed optimizer the parameters are in the gradients' order too.
int64_t detail::layoutPersistent(plan::PlanT &p) {
  int64_t bytes = 0;
  auto place = [&](int32_t id) {
    plan::BufferT &b = *p.buffers[id];
    b.offset = bytes;
    bytes += alignBuffer(b.bytes);
  };
  if (p.distributed_optimizer) {
    // Each dp bucket's parameters, then its gradients, laid out alike (a
    // shard is one element range of both), each span padded to dp shards:
    // the optimizer program's all_gathers and reduce_scatters name them.
    int64_t dp = 1;
    for (const auto &axis : p.mesh)
      if (axis->name == "dp")
        dp = axis->size;
    for (const char *op : {"all_gather", "reduce_scatter"})
      for (const auto &inst : p.optimizer->instructions) {
        const plan::AttributeT *shard = runtime::findAttr(*inst, "shard");
        if (inst->op != op || !shard)
          continue;
        int64_t begin = bytes;
        for (int32_t id : inst->inputs)
          place(id);
        bytes = begin + shard->ints[0] * dp * 4;
      }
    for (size_t i = 0; i < p.buffers.size(); ++i)
      if (p.buffers[i]->kind == plan::BufferKind::OptimizerState &&
          p.buffers[i]->name.rfind("adam_m.", 0) == 0)
        place(int32_t(i));
    for (size_t i = 0; i < p.buffers.size(); ++i)
      if (p.buffers[i]->kind == plan::BufferKind::OptimizerState &&
          p.buffers[i]->name.rfind("adam_v.", 0) == 0)
        place(int32_t(i));
    return bytes;
  }
  for (const auto &param : p.parameters)
    place(param->value);
  for (auto it = p.parameters.rbegin(); it != p.parameters.rend(); ++it)
    place((*it)->grad);
  for (const auto &param : p.parameters)
    place(param->moment1);
  for (const auto &param : p.parameters)
    place(param->moment2);
  return bytes;
}

mlir::LogicalResult planWorkspace(plan::PlanT &p,
                                  const std::vector<int32_t> &aliasOf) {
  size_t n = p.buffers.size();
  auto root = [&](int32_t id) {
    while (aliasOf[id] >= 0)
      id = aliasOf[id];
    return id;
  };
  const int64_t none = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> first(n, none), last(n, -1);
  auto touch = [&](int32_t id, int64_t k) {
    int32_t r = root(id);
    first[r] = std::min(first[r], k);
    last[r] = std::max(last[r], k);
  };
  const auto &instructions = p.microbatch->instructions;
  int64_t end = int64_t(instructions.size());
  // A pipeline chunk runs its program in two steps (PipelineRunner.cpp):
  // the forward step its first forward_end instructions, the backward step
  // the rest; the last chunk, with the loss, runs it all in its backward
  // step. What the forward step leaves for the backward step is stashed.
  bool chunk = p.activation_in >= 0 || p.activation_out >= 0;
  int64_t split = !chunk ? 0 : p.loss >= 0 ? 0 : p.forward_end;
  auto isInput = [&](int32_t id, int32_t index) {
    return index >= 0 && p.inputs[size_t(index)]->buffer == id;
  };
  for (size_t i = 0; i < n; ++i) {
    int32_t id = int32_t(i);
    if (p.buffers[i]->kind == plan::BufferKind::Input)
      // Written before the program runs; in a chunk, the gradient from the
      // next stage arrives before the backward step.
      touch(id, chunk && isInput(id, p.output_grad) ? split : -1);
    if (p.buffers[i]->kind == plan::BufferKind::Output)
      // Read after the program; in a chunk, the activation for the next
      // stage right after the forward step.
      touch(id, chunk && id == p.activation_out ? split - 1 : end);
  }
  for (int64_t k = 0; k < end; ++k)
    runtime::forEachBufferOf(*instructions[k],
                             [&](int32_t id) { touch(id, k); });

  // The stash: what lives from the forward step into the backward step.
  // The model's inputs (tokens, labels, BERT's token_types and
  // padding_mask: all but a neighbour's activation and gradient) are
  // uploaded again before each step, so they never need keeping. Every stashed
  // buffer is live at the split, so none shares bytes with another.
  int64_t stash = 0;
  if (chunk)
    for (size_t i = 0; i < n; ++i) {
      plan::BufferT &b = *p.buffers[i];
      bool reuploaded = false;
      for (const auto &input : p.inputs)
        reuploaded |= input->buffer == int32_t(i) &&
                      input->name != "activation" &&
                      input->name != "output_grad";
      if (aliasOf[i] >= 0 || b.arena != plan::Arena::Workspace ||
          first[i] == none || reuploaded || !(first[i] < split) ||
          !(last[i] >= split))
        continue;
      b.arena = plan::Arena::Stash;
      b.offset = stash;
      stash += alignBuffer(b.bytes);
      if (stash > kMaxArenaBytes)
        return mlir::failure();
    }
  p.arena_bytes[size_t(plan::Arena::Stash)] = stash;

  std::vector<int32_t> order;
  for (size_t i = 0; i < n; ++i)
    if (aliasOf[i] < 0 && p.buffers[i]->arena == plan::Arena::Workspace &&
        first[i] != none)
      order.push_back(int32_t(i));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return p.buffers[a]->bytes > p.buffers[b]->bytes;
  });

  std::vector<int32_t> placed;
  int64_t arena = 0;
  for (int32_t id : order) {
    // The placed buffers alive at the same time, by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int32_t other : placed)
      if (first[other] <= last[id] && first[id] <= last[other])
        busy.push_back({p.buffers[other]->offset,
                        p.buffers[other]->offset +
                            alignBuffer(p.buffers[other]->bytes)});
    std::sort(busy.begin(), busy.end());
    int64_t size = alignBuffer(p.buffers[id]->bytes), offset = 0;
    for (auto [begin, stop] : busy) {
      if (offset + size <= begin)
        break;
      offset = std::max(offset, stop);
    }
    // Every size is at most kMaxArenaBytes (addBuffer checks) and every
    // offset at most the arena so far, so the sum cannot overflow.
    p.buffers[id]->offset = offset;
    arena = std::max(arena, offset + size);
    if (arena > kMaxArenaBytes)
      return mlir::failure();
    placed.push_back(id);
  }
  // A view lives where its source does.
  for (size_t i = 0; i < n; ++i)
    if (aliasOf[i] >= 0) {
      const plan::BufferT &source = *p.buffers[root(int32_t(i))];
      p.buffers[i]->offset = source.offset;
      p.buffers[i]->arena = source.arena;
    }
  p.arena_bytes[size_t(plan::Arena::Workspace)] = arena;
  return mlir::success();
}

} // namespace loom
