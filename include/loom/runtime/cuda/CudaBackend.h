//===- CudaBackend.h - the CUDA backends' factories -------------*- C++ -*-===//
//
// `cuda`: a plan on an NVIDIA GPU (RankContext::device), with cuBLASLt
// GEMMs, NVRTC-compiled kernels and CUDA graphs; fails saying so when the
// machine has no usable GPU or the build has no CUDA toolkit.
// `cuda-emulated`: the same executor, kernels and launches on the host
// emulation of a device (runtime/cuda/emulation), for testing the CUDA
// backend without a GPU (docs/cuda.md).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_CUDABACKEND_H
#define LOOM_RUNTIME_CUDA_CUDABACKEND_H

#include "loom/runtime/Executor.h"

#include <memory>

namespace loom {
namespace runtime {
namespace cuda {

Result<std::unique_ptr<Executor>> createCudaExecutor(const plan::PlanT &plan,
                                                     RankContext rank);
Result<std::unique_ptr<Executor>>
createEmulatedCudaExecutor(const plan::PlanT &plan, RankContext rank);

/// "" when GPU 0 can be opened; else why not (no toolkit in this build, no
/// driver, no device).
std::string cudaUnavailableReason();

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_CUDABACKEND_H
