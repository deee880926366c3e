//===- NcclUnavailable.cpp - the nccl communicator in a build without it --===//
//
// Compiled instead of NcclCommunicator.cpp when CMake found no NCCL (or no
// CUDA toolkit, or -DLOOM_ENABLE_CUDA=OFF): the factory says so, so that
// `--comm nccl` fails with the reason rather than at link time.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cuda/CudaBackend.h"

namespace loom {
namespace runtime {
namespace cuda {

bool ncclAvailable() { return false; }

Result<std::unique_ptr<Communicator>> createNcclCommunicator(
    const MeshShape &, int64_t, int,
    const std::function<Result<std::string>(const std::string &,
                                            const std::string &)> &,
    const ProcessCommOptions &) {
  return Status::error(
      "the nccl communicator: Loom was built without NCCL (" LOOM_NCCL_MISSING
      "); rebuild with a CUDA toolkit and NCCL (libnccl.so and nccl.h, "
      "found in the toolkit's directories or through CMAKE_PREFIX_PATH)");
}

} // namespace cuda
} // namespace runtime
} // namespace loom
