//===- EmulatedLibrary.h - the kernel library under emulation ---*- C++ -*-===//
//
// The hand-written CUDA kernels (runtime/cuda/kernels/) compiled as host C++
// under CudaEmulation.h (LoomCudaKernelsEmulated): the emulated device and
// the kernel tests (test/cuda) launch them here by entry name.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_EMULATEDLIBRARY_H
#define LOOM_RUNTIME_CUDA_EMULATEDLIBRARY_H

#include "Device.h"

#include <string>
#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

/// Runs the library kernel `l.kernel` on the host; false when the library
/// has no such kernel. `error` is "" or why the launch failed (arguments
/// that do not match the kernel's parameters, a bad grid, a deadlock).
bool launchEmulatedLibraryKernel(const Launch &l, std::string &error);
/// The library's entry names.
std::vector<std::string> emulatedLibraryKernels();

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_EMULATEDLIBRARY_H
