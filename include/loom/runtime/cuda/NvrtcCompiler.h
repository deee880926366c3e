//===- NvrtcCompiler.h - CUDA C++ to PTX or cubin with NVRTC ----*- C++ -*-===//
//
// The runtime compiles the kernels the compiler emits with NVRTC. This needs
// the CUDA toolkit's NVRTC library but no GPU or driver.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_NVRTCCOMPILER_H
#define LOOM_RUNTIME_CUDA_NVRTCCOMPILER_H

#include <string>
#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

enum class NvrtcOutput { Ptx, Cubin };

struct NvrtcRequest {
  std::string source;
  /// Shown in diagnostics: `name(line): error: ...`.
  std::string name = "kernel.cu";
  /// The SM version, e.g. 90 for Hopper: `compute_90` for PTX, `sm_90` for a
  /// cubin.
  int smVersion = 90;
  NvrtcOutput output = NvrtcOutput::Ptx;
  /// Extra include directories; the toolkit's own include directory is always
  /// added.
  std::vector<std::string> includeDirs;
  std::vector<std::string> options;
};

struct NvrtcResult {
  bool ok = false;
  /// PTX text or cubin bytes when ok.
  std::string image;
  /// NVRTC's log (warnings, or the errors when !ok), or what failed before it
  /// ran.
  std::string log;
};

NvrtcResult compileWithNvrtc(const NvrtcRequest &request);

/// The toolkit's include directory handed to NVRTC: $CUDA_HOME/include or
/// $CUDA_PATH/include when it holds cuda_runtime.h, else the build's toolkit.
std::string cudaIncludeDir();

/// NVRTC's version as major * 1000 + minor * 10 (CUDA's convention), or -1.
int nvrtcVersion();

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_NVRTCCOMPILER_H
