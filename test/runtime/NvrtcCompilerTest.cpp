//===- NvrtcCompilerTest.cpp - device code compiles without a GPU ---------===//
//
// NVRTC needs the toolkit but no GPU or driver, so these run in CI.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cuda/NvrtcCompiler.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace loom::runtime::cuda;

namespace {

// A kernel that draws dropout-style uniforms from the shared Philox header,
// with bf16 from the toolkit's headers.
const char *kPhiloxKernel = R"cuda(
#include <cuda_bf16.h>
#include "loom/runtime/Philox.h"
extern "C" __global__ void uniforms(float *out, __nv_bfloat16 *half_out, unsigned n,
                                    unsigned key) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  loom::runtime::PhiloxCounter c = loom::runtime::philox4x32_10({{i, 0, 0, 0}}, {{key, 0}});
  out[i] = loom::runtime::uniformOpen01(c.word[0]);
  half_out[i] = __float2bfloat16(out[i]);
}
)cuda";

NvrtcRequest request(const char *source, NvrtcOutput output) {
  NvrtcRequest r;
  r.source = source;
  r.name = "uniforms.cu";
  r.smVersion = 90;
  r.output = output;
  r.includeDirs = {LOOM_SOURCE_INCLUDE_DIR};
  return r;
}

TEST(NvrtcCompilerTest, ReportsItsVersion) {
  EXPECT_GE(nvrtcVersion(), 12000); // CUDA 12 or newer
}

TEST(NvrtcCompilerTest, CompilesThePhiloxHeaderToPtx) {
  NvrtcResult result =
      compileWithNvrtc(request(kPhiloxKernel, NvrtcOutput::Ptx));
  ASSERT_TRUE(result.ok) << result.log;
  EXPECT_NE(result.image.find(".target sm_90"), std::string::npos);
  EXPECT_NE(result.image.find(".entry uniforms"), std::string::npos);
  // The Philox multipliers survive into the device code.
  EXPECT_NE(result.image.find("-766435501"),
            std::string::npos) // 0xD2511F53 as s32
      << "expected the Philox multiplier in the PTX";
}

TEST(NvrtcCompilerTest, CompilesToAHopperCubin) {
  NvrtcResult result =
      compileWithNvrtc(request(kPhiloxKernel, NvrtcOutput::Cubin));
  ASSERT_TRUE(result.ok) << result.log;
  ASSERT_GE(result.image.size(), 4u);
  EXPECT_EQ(result.image.substr(0, 4), std::string("\x7f"
                                                   "ELF"));
}

TEST(NvrtcCompilerTest, ReportsErrorsWithFileAndLine) {
  const char *broken = "extern \"C\" __global__ void k(float *x) {\n  x[0] = "
                       "undefined_name;\n}\n";
  NvrtcRequest r = request(broken, NvrtcOutput::Ptx);
  r.name = "broken.cu";
  NvrtcResult result = compileWithNvrtc(r);
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.image.empty());
  EXPECT_NE(result.log.find("broken.cu(2)"), std::string::npos) << result.log;
  EXPECT_NE(result.log.find("undefined_name"), std::string::npos) << result.log;
}

TEST(NvrtcCompilerTest, FindsTheToolkitHeadersAtRunTime) {
  // A CUDA_HOME without headers is skipped in favour of the build's toolkit.
  ASSERT_EQ(setenv("CUDA_HOME", "/nonexistent-cuda", 1), 0);
  std::string fallback = cudaIncludeDir();
  EXPECT_NE(fallback.find("include"), std::string::npos);
  // A CUDA_HOME with headers wins.
  std::string root = fallback.substr(0, fallback.rfind("/include"));
  ASSERT_EQ(setenv("CUDA_HOME", root.c_str(), 1), 0);
  EXPECT_EQ(cudaIncludeDir(), root + "/include");
  unsetenv("CUDA_HOME");
  EXPECT_TRUE(compileWithNvrtc(request(kPhiloxKernel, NvrtcOutput::Ptx)).ok);
}

} // namespace
