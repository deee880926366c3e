//===- DeviceCollectives.h - collectives on device buffers ------*- C++ -*-===//
//
// What a communicator offers a device backend beside the host-memory calls
// of Communicator (Communicator::deviceCollectives()): the same collectives
// and point-to-point messages along a mesh axis, on device pointers,
// enqueued on the caller's CUDA stream (a cudaStream_t passed as void *, so
// this header needs no CUDA headers). A call returns once the work is
// enqueued; work enqueued on `stream` before it is read first, work
// enqueued after it sees its results. The nccl communicator implements it
// (runtime/cuda/NcclCommunicator.cpp).
//
// The layouts are NCCL's, contiguous per member: the CUDA executor turns an
// all-gather or reduce-scatter along an inner dimension into these with a
// device transpose (runtime/cuda/BindCollectives.cpp).
//
// Unlike the local communicator, sums are not in group order (NCCL reduces
// along a ring or tree): results are the same run to run on a fixed world,
// but not bit-identical to the cpu backend's.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_DEVICECOLLECTIVES_H
#define LOOM_RUNTIME_CUDA_DEVICECOLLECTIVES_H

#include "loom/runtime/Communicator.h"

namespace loom {
namespace runtime {

class DeviceCollectives {
public:
  virtual ~DeviceCollectives() = default;

  /// out[i] = reduce over the group of in[i]; in == out allowed.
  virtual Status allReduce(int axis, const void *in, void *out, size_t count,
                           CommDType dtype, ReduceKind op, void *stream,
                           const std::string &what) = 0;
  /// out is [n, count]: group member g's `in` at elements [g*count,
  /// (g+1)*count).
  virtual Status allGather(int axis, const void *in, void *out, size_t count,
                           CommDType dtype, void *stream,
                           const std::string &what) = 0;
  /// in is [n, count]; out (count elements) is the sum over the group of
  /// everyone's block g = this rank's group index.
  virtual Status reduceScatter(int axis, const void *in, void *out,
                               size_t count, CommDType dtype, void *stream,
                               const std::string &what) = 0;
  /// root's data (group index `root`) to every member.
  virtual Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                           int64_t root, void *stream,
                           const std::string &what) = 0;
  /// Buffered, as Communicator::send: `data` is copied on `stream`, and
  /// nothing on `stream` waits for the receiver. Messages between two
  /// members in one direction arrive in send order; the tag is a label
  /// (NCCL matches by order, not by tag).
  virtual Status send(int axis, int64_t peer, const void *data, size_t count,
                      CommDType dtype, int64_t tag, void *stream,
                      const std::string &what) = 0;
  /// Work enqueued on `stream` after this reads the message.
  virtual Status recv(int axis, int64_t peer, void *data, size_t count,
                      CommDType dtype, int64_t tag, void *stream,
                      const std::string &what) = 0;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_DEVICECOLLECTIVES_H
