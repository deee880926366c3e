//===- DeviceCollectivesOverLocal.h - NCCL's path, emulated --*- C++ -*-===//
//
// A test-only communicator that gives the CUDA executor's device-collective
// path (Communicator::deviceCollectives, the path the nccl communicator
// takes on a GPU) something to run on without a GPU: its host calls
// forward to a local communicator's handle, and its DeviceCollectives run
// the same collectives on the emulated device's memory (host memory)
// through that handle, queued on the emulated comm stream
// (runtime/cuda/emulation/EmulatedStream.h) so that they run when the
// executor orders the comm stream before its next work, not before.
//
// Semantics are the nccl communicator's (DeviceCollectives.h): NCCL's
// contiguous layouts (an all-gather's out is [n, count], a reduce-scatter's
// in is [n, count]), in place allowed (in == out for an all-reduce, in at
// member g's block of out for an all-gather, out at this member's block of
// in for a reduce-scatter), a send copies its data on the stream and does
// not wait for the receiver, a rank does not send to itself, and max is
// fmax (a NaN is lost where another member has a number). Sums are the
// local communicator's, in group order, so a run through this path gives
// the host path's bits exactly (NCCL's ring sums would not).
//
// Only for the cuda-emulated backend: a stream it is handed must be the
// emulated device's comm stream (a null stream, the compute stream's
// there, is refused: the executor must enqueue device collectives on the
// comm stream).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CONFORMANCE_DEVICECOLLECTIVESOVERLOCAL_H
#define LOOM_TEST_CONFORMANCE_DEVICECOLLECTIVESOVERLOCAL_H

#include "emulation/EmulatedStream.h"
#include "loom/runtime/Communicator.h"
#include "loom/runtime/cuda/DeviceCollectives.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace loom {
namespace test {

class DeviceCollectivesOverLocal final : public runtime::Communicator,
                                         public runtime::DeviceCollectives {
public:
  using Status = runtime::Status;
  using CommDType = runtime::CommDType;
  using ReduceKind = runtime::ReduceKind;

  /// `host` (a LocalCommunicatorGroup's handle) must outlive this.
  explicit DeviceCollectivesOverLocal(runtime::Communicator &host)
      : host_(host) {}

  /// How many device calls ran (a test checks the path was taken).
  int64_t deviceCalls() const { return deviceCalls_; }

  //===--- Communicator: the host calls, forwarded
  int64_t rank() const override { return host_.rank(); }
  const runtime::MeshShape &mesh() const override { return host_.mesh(); }
  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op,
                   const std::string &what) override {
    return host_.allReduce(axis, in, out, count, dtype, op, what);
  }
  Status allGather(int axis, const void *in, void *out, size_t outer,
                   size_t inner, CommDType dtype,
                   const std::string &what) override {
    return host_.allGather(axis, in, out, outer, inner, dtype, what);
  }
  Status reduceScatter(int axis, const void *in, void *out, size_t outer,
                       size_t inner, CommDType dtype,
                       const std::string &what) override {
    return host_.reduceScatter(axis, in, out, outer, inner, dtype, what);
  }
  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, const std::string &what) override {
    return host_.broadcast(axis, data, count, dtype, root, what);
  }
  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, const std::string &what) override {
    return host_.send(axis, peer, data, count, dtype, tag, what);
  }
  Status recv(int axis, int64_t peer, void *data, size_t count, CommDType dtype,
              int64_t tag, const std::string &what) override {
    return host_.recv(axis, peer, data, count, dtype, tag, what);
  }
  void abort(const std::string &why) override { host_.abort(why); }
  Status gatherToRoot(const std::vector<uint8_t> &mine,
                      std::vector<std::vector<uint8_t>> *atRoot,
                      const std::string &what) override {
    return host_.gatherToRoot(mine, atRoot, what);
  }
  Status broadcastFromRoot(std::vector<uint8_t> &bytes,
                           const std::string &what) override {
    return host_.broadcastFromRoot(bytes, what);
  }
  runtime::DeviceCollectives *deviceCollectives() override { return this; }

  //===--- DeviceCollectives: on the emulated device's comm stream
  Status allReduce(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, ReduceKind op, void *stream,
                   const std::string &what) override {
    if (op == ReduceKind::Sum)
      return onStream(stream, what, [=] {
        return host_.allReduce(axis, in, out, count, dtype, op, what);
      });
    // NCCL's max is fmax: gather every member's values, fold in group
    // order.
    return onStream(stream, what, [=]() -> Status {
      size_t n = groupSize(axis), esz = runtime::commDTypeSize(dtype);
      std::vector<unsigned char> all(n * count * esz);
      if (Status s = host_.allGather(axis, in, all.data(), 1, count * esz / 4,
                                     CommDType::F32, what);
          !s.ok())
        return s;
      for (size_t i = 0; i < count; ++i) {
        double m = element(all.data(), i, dtype);
        for (size_t g = 1; g < n; ++g)
          m = std::fmax(m, element(all.data(), g * count + i, dtype));
        if (dtype == CommDType::F32)
          static_cast<float *>(out)[i] = float(m);
        else
          static_cast<double *>(out)[i] = m;
      }
      return Status::success();
    });
  }
  Status allGather(int axis, const void *in, void *out, size_t count,
                   CommDType dtype, void *stream,
                   const std::string &what) override {
    return onStream(stream, what, [=] {
      // `in` may be this member's block of `out` (NCCL's in-place form).
      std::vector<unsigned char> mine(count * runtime::commDTypeSize(dtype));
      std::memcpy(mine.data(), in, mine.size());
      return host_.allGather(axis, mine.data(), out, 1, count, dtype, what);
    });
  }
  Status reduceScatter(int axis, const void *in, void *out, size_t count,
                       CommDType dtype, void *stream,
                       const std::string &what) override {
    return onStream(stream, what, [=] {
      // `out` may be this member's block of `in`.
      std::vector<unsigned char> all(groupSize(axis) * count *
                                     runtime::commDTypeSize(dtype));
      std::memcpy(all.data(), in, all.size());
      return host_.reduceScatter(axis, all.data(), out, 1, count, dtype, what);
    });
  }
  Status broadcast(int axis, void *data, size_t count, CommDType dtype,
                   int64_t root, void *stream,
                   const std::string &what) override {
    return onStream(stream, what, [=] {
      return host_.broadcast(axis, data, count, dtype, root, what);
    });
  }
  Status send(int axis, int64_t peer, const void *data, size_t count,
              CommDType dtype, int64_t tag, void *stream,
              const std::string &what) override {
    if (peer == coordinate(axis))
      return Status::error("a rank cannot send to itself through NCCL");
    // The local send copies and does not wait for the receiver, as the
    // nccl communicator's copy on the stream does.
    return onStream(stream, what, [=] {
      return host_.send(axis, peer, data, count, dtype, tag, what);
    });
  }
  Status recv(int axis, int64_t peer, void *data, size_t count, CommDType dtype,
              int64_t tag, void *stream, const std::string &what) override {
    if (peer == coordinate(axis))
      return Status::error("a rank cannot receive from itself through NCCL");
    return onStream(stream, what, [=] {
      return host_.recv(axis, peer, data, count, dtype, tag, what);
    });
  }

private:
  Status onStream(void *stream, const std::string &what,
                  std::function<Status()> work) {
    runtime::cuda::EmulatedStream *s =
        runtime::cuda::EmulatedStream::from(stream);
    if (!s)
      return Status::error("the device collective '" + what +
                           "' was not enqueued on the emulated device's "
                           "comm stream");
    ++deviceCalls_;
    s->enqueue(std::move(work));
    return Status::success();
  }
  size_t groupSize(int axis) const {
    return axis >= 0 && size_t(axis) < mesh().sizes.size()
               ? size_t(mesh().sizes[size_t(axis)])
               : 1;
  }
  int64_t coordinate(int axis) const {
    return axis >= 0 && size_t(axis) < mesh().sizes.size()
               ? mesh().coordinates(rank())[size_t(axis)]
               : -1;
  }
  static double element(const unsigned char *p, size_t i, CommDType dtype) {
    if (dtype == CommDType::F32) {
      float f;
      std::memcpy(&f, p + i * 4, 4);
      return f;
    }
    double d;
    std::memcpy(&d, p + i * 8, 8);
    return d;
  }

  runtime::Communicator &host_;
  int64_t deviceCalls_ = 0;
};

} // namespace test
} // namespace loom

#endif // LOOM_TEST_CONFORMANCE_DEVICECOLLECTIVESOVERLOCAL_H
