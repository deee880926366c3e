//===- EmulatedStream.h - the emulated device's comm stream -----*- C++ -*-===//
//
// What Device::nativeStream(Stream::Comm) returns on the emulated device:
// the `void *stream` a DeviceCollectives implementation is handed there
// (the nccl communicator gets a cudaStream_t on a GPU). Host work enqueued
// on it does not run when it is enqueued but when something waits for the
// comm stream: order(Comm, ...), synchronize(), or any of the device's own
// calls on the comm stream. The compute stream still runs its work at once,
// so work the executor forgets to order after a collective or a pipeline
// send or receive (order(Comm, Compute)) reads or overwrites the buffer
// before the comm stream got to it, as it could on a GPU. Only tests use it
// (test/conformance/DeviceCollectivesOverLocal.h); nothing in the runtime
// enqueues on it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_EMULATION_EMULATEDSTREAM_H
#define LOOM_RUNTIME_CUDA_EMULATION_EMULATEDSTREAM_H

#include "loom/runtime/Status.h"

#include <functional>

namespace loom {
namespace runtime {
namespace cuda {

class EmulatedStream {
public:
  virtual ~EmulatedStream() = default;
  /// Runs `work` after the stream's earlier work, when the stream is next
  /// waited for. An error fails that wait (and drops the work queued after
  /// it), as a failed NCCL call fails the next synchronisation on a GPU.
  virtual void enqueue(std::function<Status()> work) = 0;

  /// The handle behind a stream the emulated device gave (null stays
  /// null). Only for a stream of the emulated device: a GPU's is a
  /// cudaStream_t.
  static EmulatedStream *from(void *stream) {
    return static_cast<EmulatedStream *>(stream);
  }
};

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_EMULATION_EMULATEDSTREAM_H
