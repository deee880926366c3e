//===- Device.h - what the CUDA backend needs of a GPU ----------*- C++ -*-===//
//
// Internal to the CUDA backend. CudaExecutor (CudaExecutor.cpp) runs a plan
// through this interface; two devices implement it:
//   - CudaDevice (CudaDevice.cpp): a real GPU through the CUDA driver and
//     runtime APIs, cuBLASLt for GEMMs, NVRTC-compiled modules, streams,
//     events and CUDA graphs;
//   - EmulatedDevice (emulation/EmulatedDevice.cpp): host memory, the same
//     kernel sources compiled as host C++ under emulation/CudaEmulation.h,
//     and a host GEMM in place of cuBLASLt. It is how the backend's kernels
//     and their launches are tested on machines without a GPU (CI's); it is
//     the `cuda-emulated` backend (docs/testing.md).
// Kernels are launched by entry name (a hand-written kernel of
// runtime/cuda/kernels/ or a generated kernel of the plan) with arguments by
// value; work is enqueued on the compute stream unless it says otherwise.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_DEVICE_H
#define LOOM_RUNTIME_CUDA_DEVICE_H

#include "loom/runtime/Decoder.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {
class Tracer;
namespace cuda {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// One kernel argument, by value. The kind must match the kernel's
/// parameter: Pointer for `T *`, I64 for `long long`, I32 for `int`, F32 for
/// `float`, F64 for `double` (the emulated device checks it; a GPU would
/// read garbage).
struct KernelArg {
  enum Kind : uint8_t { Pointer, I32, I64, F32, F64 } kind = Pointer;
  union {
    void *p;
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
  };
  KernelArg() : p(nullptr) {}
  KernelArg(const void *v) : kind(Pointer), p(const_cast<void *>(v)) {}
  static KernelArg i32v(int32_t v) {
    KernelArg a;
    a.kind = I32;
    a.i32 = v;
    return a;
  }
  static KernelArg i64v(int64_t v) {
    KernelArg a;
    a.kind = I64;
    a.i64 = v;
    return a;
  }
  static KernelArg f32v(float v) {
    KernelArg a;
    a.kind = F32;
    a.f32 = v;
    return a;
  }
  static KernelArg f64v(double v) {
    KernelArg a;
    a.kind = F64;
    a.f64 = v;
    return a;
  }
};

struct Launch {
  std::string kernel; // entry name
  Dim3 grid, block;
  size_t sharedBytes = 0; // dynamic shared memory
  std::vector<KernelArg> args;
};

/// c = alpha · op(a) · op(b) + beta · c on row-major operands (shape as the
/// decoder computes it), in the buffers' own element types (f32, bf16 or
/// f16), accumulating in f32.
struct GemmCall {
  MatmulShape shape;
  const void *a = nullptr, *b = nullptr;
  void *c = nullptr;
  plan::DType aType = plan::DType::F32, bType = plan::DType::F32,
              cType = plan::DType::F32;
  float alpha = 1, beta = 0;
};

/// The operand types a device GEMM takes (cuBLASLt with f32 compute): A and
/// B of one type, C of theirs or f32 for 16-bit A and B. Other mixes go
/// through f32 views (BindGemm.cpp); the emulated device refuses them too,
/// so CI sees what a GPU would.
inline bool gemmTypesSupported(plan::DType a, plan::DType b, plan::DType c) {
  if (a != b)
    return false;
  if (a == plan::DType::F32)
    return c == plan::DType::F32;
  if (a == plan::DType::BF16 || a == plan::DType::F16)
    return c == a || c == plan::DType::F32;
  return false;
}

enum class Stream { Compute, Comm };

class Device {
public:
  virtual ~Device();

  /// "NVIDIA H200 (sm_90, 139.8 GiB, device 0)", "CUDA emulation on the
  /// host".
  virtual std::string describe() const = 0;
  /// Whether launches are emulated on the host (device pointers are host
  /// pointers then).
  virtual bool emulated() const = 0;

  /// Device memory, 256-byte aligned. Out of memory: an error saying how
  /// many bytes were asked for `what` and how many are free.
  virtual Result<void *> allocate(size_t bytes, const std::string &what) = 0;
  virtual void release(void *p) = 0;

  /// Compiles (or finds in the on-disk cache) and loads a plan's generated
  /// kernels: `cudaSource` is the plan's CUDA prelude and kernels
  /// (planCudaSource), `entries` their names.
  virtual Status loadPlanKernels(const std::string &cudaSource,
                                 const std::vector<std::string> &entries,
                                 Tracer *tracer, int traceTrack) = 0;

  /// Enqueues a kernel on the compute stream.
  virtual Status launch(const Launch &launch) = 0;
  /// Enqueues a GEMM on the compute stream.
  virtual Status gemm(const GemmCall &call) = 0;
  /// Enqueues a clear of `bytes` at `p`.
  virtual Status clear(void *p, size_t bytes, Stream stream = Stream::Compute) = 0;
  /// Enqueues a device-to-device copy.
  virtual Status copy(void *dst, const void *src, size_t bytes,
                      Stream stream = Stream::Compute) = 0;
  /// Host to device, through pinned staging: `src` may be reused when this
  /// returns; ordered after the work enqueued before on `stream`.
  virtual Status upload(void *dst, const void *src, size_t bytes,
                        Stream stream = Stream::Compute) = 0;
  /// Device to host: waits for the work enqueued on `stream` and the copy.
  virtual Status download(void *dst, const void *src, size_t bytes,
                          Stream stream = Stream::Compute) = 0;
  /// `waiter` waits (on the device, the host does not block) for the work
  /// enqueued on `signaller` so far: an event recorded on one, waited on by
  /// the other.
  virtual Status order(Stream signaller, Stream waiter) = 0;
  /// Waits for everything enqueued on both streams.
  virtual Status synchronize() = 0;
  /// The CUDA stream behind `stream` (a cudaStream_t), for a library that
  /// enqueues on it itself (NCCL, through DeviceCollectives); null on a
  /// device without CUDA streams (the emulated one runs work as it is
  /// enqueued, so there the caller's work is done when a call returns).
  virtual void *nativeStream(Stream) { return nullptr; }

  /// CUDA graphs of the compute stream's work. beginCapture: what is
  /// enqueued next is recorded, not run (launch arguments are copied as
  /// they are then). endCapture: the recorded work becomes graph `*graph`
  /// (an id returned before is updated in place when the work has the same
  /// shape, else replaced). replay: enqueues the graph.
  virtual bool supportsGraphs() const = 0;
  virtual Status beginCapture() = 0;
  virtual Status endCapture(int *graph) = 0;
  virtual Status replay(int graph) = 0;
};

/// The GPU `ordinal` (a CUDA device index), or why there is none: no
/// driver, no device, an ordinal past the last. Only in a build with the
/// CUDA toolkit (LOOM_HAVE_CUDA); else an error saying so.
Result<std::unique_ptr<Device>> openCudaDevice(int ordinal);
/// The host emulation of a device (always built).
std::unique_ptr<Device> openEmulatedDevice();

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_DEVICE_H
