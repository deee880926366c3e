//===- GradientBuckets.h - when each dp gradient bucket is final -*- C++
//-*-===//
//
// The backend-neutral half of overlapping data parallelism's gradient
// all-reduces with the backward (Megatron's --overlap-grad-reduce). The
// optimizer program starts with one all_reduce over dp per bucket of
// gradients (a contiguous span of f32 buffers of the persistent arena). In
// the step's last microbatch, a bucket's gradients are final once the last
// microbatch instruction touching its span has run: from then on a backend
// may reduce the bucket while the backward goes on, and the optimizer's
// all_reduce only waits for it.
//
//   std::vector<GradientBucket> buckets =
//       analyzeGradientBuckets(plan, decoded, externallyWritten);
//   for (const GradientBucket &b : buckets)
//     if (b.overlapped()) ... // reduce after microbatch instruction
//     b.readyAfter
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_GRADIENTBUCKETS_H
#define LOOM_RUNTIME_GRADIENTBUCKETS_H

#include "loom/runtime/Decoder.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// One dp bucket all_reduce of the optimizer program.
struct GradientBucket {
  /// Its index in the optimizer program.
  size_t instruction = 0;
  /// The span it reduces: `count` f32 elements of `arena` from byte
  /// `offset`.
  int32_t arena = 0;
  int64_t offset = 0;
  size_t count = 0;
  /// The microbatch instruction after which the span is final within a
  /// microbatch (the last one that writes or reads any byte of it), or -1
  /// when the bucket is not overlapped (`why` says why).
  int64_t readyAfter = -1;
  std::string why;

  bool overlapped() const { return readyAfter >= 0; }
};

/// The dp gradient buckets of `decoded`'s optimizer program (the plan's
/// all_reduces over the mesh axis "dp" that reduce a span in place), in
/// program order. A bucket is not overlapped when nothing in the microbatch
/// program touches its span, when an optimizer instruction before it writes
/// its span, when `externallyWritten` (buffers the runtime writes between
/// the microbatches and the optimizer, such as a pipeline's tied gradients)
/// overlaps it, or when the microbatch program has a collective of its own
/// on the bucket's axis (the overlapped reduction would race it for the
/// communicator's order). Empty for a plan without dp.
std::vector<GradientBucket>
analyzeGradientBuckets(const plan::PlanT &plan, const DecodedPlan &decoded,
                       const std::vector<BufferId> &externallyWritten = {});

/// Whether buffer `id` of `plan` shares a byte with `bucket`'s span.
bool bufferOverlapsBucket(const plan::PlanT &plan, BufferId id,
                          const GradientBucket &bucket);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_GRADIENTBUCKETS_H
