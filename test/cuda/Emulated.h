//===- Emulated.h - launching library kernels in tests ----------*- C++ -*-===//

#ifndef LOOM_TEST_CUDA_EMULATED_H
#define LOOM_TEST_CUDA_EMULATED_H

#include "Device.h"
#include "emulation/EmulatedLibrary.h"

#include <gtest/gtest.h>

namespace loom {
namespace test {

using runtime::cuda::Dim3;
using runtime::cuda::KernelArg;

/// Launches a library kernel on the host; "" or why it failed (no such
/// kernel, arguments that do not match, a deadlock).
inline std::string launchKernel(const std::string &kernel, Dim3 grid,
                                Dim3 block, std::vector<KernelArg> args,
                                size_t sharedBytes = 0) {
  runtime::cuda::Launch l;
  l.kernel = kernel;
  l.grid = grid;
  l.block = block;
  l.sharedBytes = sharedBytes;
  l.args = std::move(args);
  std::string error;
  if (!runtime::cuda::launchEmulatedLibraryKernel(l, error))
    return "the kernel library has no kernel '" + kernel + "'";
  return error;
}
inline KernelArg i64(int64_t v) { return KernelArg::i64v(v); }
inline KernelArg i32(int32_t v) { return KernelArg::i32v(v); }
inline KernelArg f32(float v) { return KernelArg::f32v(v); }
inline KernelArg f64(double v) { return KernelArg::f64v(v); }

} // namespace test
} // namespace loom

#endif // LOOM_TEST_CUDA_EMULATED_H
