//===- PlanKernels.h - a plan's CUDA kernels, compiled ----------*- C++ -*-===//
//
// The CUDA backend's load step for generated kernels, and CI's check that
// every kernel the compiler emits compiles: the plan's CUDA prelude and
// every kernel's cuda_source (chunks included) through NVRTC, with one
// verdict per kernel. Needs the toolkit's NVRTC, no GPU or driver.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_PLANKERNELS_H
#define LOOM_RUNTIME_CUDA_PLANKERNELS_H

#include "loom/runtime/Plan.h"
#include "loom/runtime/cuda/NvrtcCompiler.h"

#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

struct PlanKernelResult {
  std::string name;
  std::string family;
  /// -1 for the plan's own kernels, else the chunk (Plan.chunks) it is in.
  int chunk = -1;
  /// The kernel's index in its plan's (or chunk's) kernels.
  int index = 0;
  bool ok = false;
  /// PTX text or cubin bytes holding the kernel's entry point when ok. Kernels
  /// compiled in one NVRTC program share one image (one module to load).
  std::shared_ptr<const std::string> image;
  /// NVRTC's log for the program the kernel was in (warnings, or the errors
  /// when !ok), or why its image lacks the entry point.
  std::string log;
};

/// One translation unit: `plan`'s CUDA prelude then each kernel's source
/// (empty for a plan without kernels). Chunks are not included.
std::string planCudaSource(const plan::PlanT &plan);

/// Compiles every generated kernel of `plan` and of its chunks for sm_`sm`
/// (a cubin) or compute_`sm` (PTX), in the order plan.kernels then each
/// chunk's kernels. A kernel is ok only when NVRTC succeeds and its entry
/// point is in the image.
std::vector<PlanKernelResult>
compilePlanKernels(const plan::PlanT &plan, NvrtcOutput output, int sm = 90);

/// Whether `image` (PTX text or an ELF cubin) defines the kernel entry point
/// `name`: a `.entry name(` in PTX, a function symbol in the cubin's symbol
/// table.
bool imageHasEntry(const std::string &image, NvrtcOutput output,
                   const std::string &name);

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_PLANKERNELS_H
