//===- GradientBuckets.cpp - when each dp gradient bucket is final --------===//
//
// Found from the decoded operands: a bucket is ready after the last
// microbatch instruction whose operands (a generated kernel's reference
// form's too) share a byte with its span. Reads count as well as writes: an
// instruction reading a gradient after the reduction started would read
// half-reduced values.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/GradientBuckets.h"

#include <algorithm>

namespace loom {
namespace runtime {

bool bufferOverlapsBucket(const plan::PlanT &plan, BufferId id,
                          const GradientBucket &bucket) {
  if (id < 0 || size_t(id) >= plan.buffers.size())
    return false;
  const plan::BufferT &b = *plan.buffers[size_t(id)];
  int64_t end = bucket.offset + int64_t(bucket.count) * 4;
  return int32_t(b.arena) == bucket.arena && b.bytes > 0 && b.offset < end &&
         bucket.offset < b.offset + b.bytes;
}

namespace {

/// Whether `inst` (or its reference form) has an operand in the span.
bool touches(const plan::PlanT &plan, const Instruction &inst,
             const GradientBucket &bucket, bool writesOnly) {
  auto any = [&](const std::vector<BufferId> &ids) {
    return std::any_of(ids.begin(), ids.end(), [&](BufferId id) {
      return bufferOverlapsBucket(plan, id, bucket);
    });
  };
  if (any(inst.outputs) || (!writesOnly && any(inst.inputs)))
    return true;
  if (const auto *k = std::get_if<KernelInstr>(&inst.record))
    for (const Instruction &ref : k->reference)
      if (touches(plan, ref, bucket, writesOnly))
        return true;
  return false;
}

/// The mesh axis of a collective that talks to other ranks; -1 for the rest.
int collectiveAxis(const Instruction &inst) {
  if (const auto *r = std::get_if<AllReduceInstr>(&inst.record))
    return r->axis;
  if (const auto *g = std::get_if<GatherScatterInstr>(&inst.record))
    return g->op == Op::AllSlice ? -1 : g->axis;
  if (const auto *g = std::get_if<BucketShardInstr>(&inst.record))
    return g->axis;
  if (const auto *n = std::get_if<GradNormInstr>(&inst.record))
    return n->axis;
  if (const auto *k = std::get_if<KernelInstr>(&inst.record))
    for (const Instruction &ref : k->reference)
      if (int axis = collectiveAxis(ref); axis >= 0)
        return axis;
  return -1;
}

} // namespace

std::vector<GradientBucket>
analyzeGradientBuckets(const plan::PlanT &plan, const DecodedPlan &decoded,
                       const std::vector<BufferId> &externallyWritten) {
  std::vector<GradientBucket> buckets;
  int dp = -1;
  for (size_t a = 0; a < plan.mesh.size(); ++a)
    if (plan.mesh[a]->name == "dp")
      dp = int(a);
  if (dp < 0)
    return buckets;
  const std::vector<Instruction> &opt = decoded.optimizer.instructions;
  const std::vector<Instruction> &mb = decoded.microbatch.instructions;
  bool microbatchTalksOnDp =
      std::any_of(mb.begin(), mb.end(), [&](const Instruction &i) {
        return collectiveAxis(i) == dp;
      });
  for (size_t k = 0; k < opt.size(); ++k) {
    // A bucket's all_reduce, or the distributed optimizer's reduce_scatter
    // of its span (handed to the comm thread alike).
    const auto *r = std::get_if<AllReduceInstr>(&opt[k].record);
    const auto *s = std::get_if<BucketShardInstr>(&opt[k].record);
    if (s && s->op != Op::ReduceScatter)
      s = nullptr;
    if (!(r && r->axis == dp && r->x == r->y) && !(s && s->axis == dp))
      continue;
    GradientBucket bucket;
    bucket.instruction = k;
    const plan::BufferT &first = *plan.buffers[size_t(r ? r->x : s->first)];
    bucket.arena = int32_t(first.arena);
    bucket.offset = first.offset;
    bucket.count = r ? r->count : s->shard * size_t(s->parts);
    for (size_t i = 0; i < mb.size(); ++i)
      if (touches(plan, mb[i], bucket, /*writesOnly=*/false))
        bucket.readyAfter = int64_t(i);
    if (bucket.readyAfter < 0)
      bucket.why = "no microbatch instruction writes its gradients";
    for (size_t before = 0; before < k && bucket.overlapped(); ++before)
      if (touches(plan, opt[before], bucket, /*writesOnly=*/true)) {
        bucket.readyAfter = -1;
        bucket.why = "optimizer instruction " + std::to_string(before) +
                     " writes its gradients first";
      }
    for (BufferId id : externallyWritten)
      if (bucket.overlapped() && bufferOverlapsBucket(plan, id, bucket)) {
        bucket.readyAfter = -1;
        bucket.why = "the runtime writes '" + plan.buffers[size_t(id)]->name +
                     "' after the microbatches";
      }
    if (bucket.overlapped() && microbatchTalksOnDp) {
      bucket.readyAfter = -1;
      bucket.why = "the microbatch program has collectives over dp";
    }
    buckets.push_back(std::move(bucket));
  }
  return buckets;
}

} // namespace runtime
} // namespace loom
