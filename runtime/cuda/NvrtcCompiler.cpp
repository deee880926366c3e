//===- NvrtcCompiler.cpp - CUDA C++ to PTX or cubin with NVRTC ------------===//

#include "loom/runtime/cuda/NvrtcCompiler.h"

#include <nvrtc.h>

#include <cstdlib>
#include <fstream>
#include <memory>

namespace loom {
namespace runtime {
namespace cuda {

namespace {
struct ProgramDeleter {
  void operator()(nvrtcProgram *program) const {
    nvrtcDestroyProgram(program);
    delete program;
  }
};
using Program = std::unique_ptr<nvrtcProgram, ProgramDeleter>;

std::string describe(const char *what, nvrtcResult status) {
  return std::string(what) + " failed: " + nvrtcGetErrorString(status);
}
} // namespace

std::string cudaIncludeDir() {
  // The toolkit an embedding application runs with may sit elsewhere than the
  // one Loom was built with: CUDA_HOME or CUDA_PATH win when they hold the
  // headers NVRTC needs.
  for (const char *variable : {"CUDA_HOME", "CUDA_PATH"}) {
    const char *root = std::getenv(variable);
    if (!root || !*root)
      continue;
    std::string dir = std::string(root) + "/include";
    if (std::ifstream(dir + "/cuda_runtime.h").good())
      return dir;
  }
  return LOOM_CUDA_INCLUDE_DIR;
}

int nvrtcVersion() {
  int major = 0, minor = 0;
  if (::nvrtcVersion(&major, &minor) != NVRTC_SUCCESS)
    return -1;
  return major * 1000 + minor * 10;
}

NvrtcResult compileWithNvrtc(const NvrtcRequest &request) {
  NvrtcResult result;
  Program program(new nvrtcProgram(nullptr));
  nvrtcResult status =
      nvrtcCreateProgram(program.get(), request.source.c_str(),
                         request.name.c_str(), 0, nullptr, nullptr);
  if (status != NVRTC_SUCCESS) {
    *program = nullptr;
    result.log = describe("nvrtcCreateProgram", status);
    return result;
  }

  std::vector<std::string> options;
  bool cubin = request.output == NvrtcOutput::Cubin;
  options.push_back(std::string("--gpu-architecture=") +
                    (cubin ? "sm_" : "compute_") +
                    std::to_string(request.smVersion));
  options.push_back("--std=c++17");
  options.push_back("--include-path=" + cudaIncludeDir());
  for (const std::string &dir : request.includeDirs)
    options.push_back("--include-path=" + dir);
  options.insert(options.end(), request.options.begin(), request.options.end());
  std::vector<const char *> argv;
  for (const std::string &option : options)
    argv.push_back(option.c_str());

  status =
      nvrtcCompileProgram(*program, static_cast<int>(argv.size()), argv.data());
  size_t logSize = 0;
  if (nvrtcGetProgramLogSize(*program, &logSize) == NVRTC_SUCCESS &&
      logSize > 1) {
    result.log.resize(logSize);
    nvrtcGetProgramLog(*program, result.log.data());
    result.log.resize(logSize - 1); // drop the terminating NUL
  }
  if (status != NVRTC_SUCCESS) {
    if (result.log.empty())
      result.log = describe("nvrtcCompileProgram", status);
    return result;
  }

  size_t size = 0;
  status = cubin ? nvrtcGetCUBINSize(*program, &size)
                 : nvrtcGetPTXSize(*program, &size);
  if (status != NVRTC_SUCCESS) {
    result.log =
        describe(cubin ? "nvrtcGetCUBINSize" : "nvrtcGetPTXSize", status);
    return result;
  }
  result.image.resize(size);
  status = cubin ? nvrtcGetCUBIN(*program, result.image.data())
                 : nvrtcGetPTX(*program, result.image.data());
  if (status != NVRTC_SUCCESS) {
    result.image.clear();
    result.log = describe(cubin ? "nvrtcGetCUBIN" : "nvrtcGetPTX", status);
    return result;
  }
  if (!cubin && !result.image.empty() && result.image.back() == '\0')
    result.image.pop_back(); // PTX comes NUL-terminated
  result.ok = true;
  return result;
}

} // namespace cuda
} // namespace runtime
} // namespace loom
