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

#include <functional>
#include <memory>
#include <string>

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

/// The `nccl` communicator: one rank per process, on GPU `device` (a CUDA
/// index; NCCL refuses two ranks of one job on one GPU). Rank 0 makes
/// NCCL's unique id and `broadcastFromRank0(key, valueAtRoot)` hands it to
/// every rank (MPI_Bcast under mpirun, the job's TCP store otherwise; the
/// value at other ranks is ignored); then a world communicator (non-blocking
/// init, polled with the options' timeout and monitor) and one communicator
/// per group of each axis longer than 1, split from it. It implements
/// deviceCollectives() for the cuda executor; its host-memory calls stage
/// through device memory. Sums are NCCL's, not in group order:
/// docs/distributed.md, "NCCL". Fails saying why without a GPU, or in a
/// build without NCCL.
Result<std::unique_ptr<Communicator>> createNcclCommunicator(
    const MeshShape &mesh, int64_t rank, int device,
    const std::function<Result<std::string>(const std::string &key,
                                            const std::string &valueAtRoot)>
        &broadcastFromRank0,
    const ProcessCommOptions &options);
/// Whether this build has the nccl communicator.
bool ncclAvailable();

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_CUDABACKEND_H
