//===- Emit.h - a kernel description as host C++ and CUDA C++ ---*- C++ -*-===//
//
// One emitter prints a kernel's scalar math (ScalarEmitter in Emit.cpp);
// the host and CUDA emitters wrap it in their loops or threads. The ABI of
// the emitted code (docs/codegen.md):
//
//   host:  extern "C" int NAME(void *const *args, const long long *ints,
//                              const double *reals);
//          returns 0, or 1 + the index of the first failed check.
//   CUDA:  extern "C" __global__ void NAME(T0 *a0, ...,
//                                          const long long *ints,
//                                          const double *reals, int *status);
//          (ints and reals in device memory: a captured CUDA graph replays
//          with each step's values written there)
//          launched as `launch` says; sets *status like the host's return.
//
// Each source needs its target's prelude (the shared math: exp, tanh,
// Philox) before it; the plan carries the preludes once.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_CODEGEN_EMIT_H
#define LOOM_CODEGEN_EMIT_H

#include "loom/Codegen/Kernel.h"

#include <string>
#include <vector>

namespace loom {
namespace codegen {

/// How a CUDA kernel is launched.
struct LaunchRule {
  /// "elementwise": a grid-stride loop over the elements; "rows": a block
  /// per row (grid-stride over rows).
  std::string rule;
  int64_t grid = 0;  // blocks (for a runtime extent: the most blocks)
  int64_t block = 0; // threads per block
  /// Outputs the backend must zero before the launch (sums written with
  /// atomics that overwrite the output).
  std::vector<int> zeroArgs;
};

struct EmittedKernel {
  std::string entry;
  std::string hostSource;
  std::string cudaSource;
  LaunchRule launch;
};

/// The shared definitions each target's kernels need, printed once per
/// translation unit: the math both targets share and the Philox stream.
std::string hostPrelude();
std::string cudaPrelude();

EmittedKernel emitKernel(const KernelDesc &kernel);

/// A whole translation unit for one target: the prelude and the kernels.
std::string hostModule(const std::string &prelude,
                       const std::vector<std::string> &kernels);

} // namespace codegen
} // namespace loom

#endif // LOOM_CODEGEN_EMIT_H
