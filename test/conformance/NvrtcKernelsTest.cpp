//===- NvrtcKernelsTest.cpp - every generated CUDA kernel compiles --------===//
//
// Every CUDA kernel the compiler generates for the tiny GPT (one rank, tp=2,
// each chunk of pp=2) and for GPT-2 124M (B4 x T64, f32, one rank) compiles
// with NVRTC to a sm_90 cubin that defines its entry point. NVRTC needs the
// toolkit but no GPU, so this runs in CI; without a toolkit (LOOM_HAVE_CUDA
// off) each test skips and says why. The CPU backend runs the host C++ of
// the same kernels (KernelCases.cpp); running the CUDA ones is the CUDA
// backend's job.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#ifdef LOOM_HAVE_CUDA
#include "loom/runtime/cuda/PlanKernels.h"
#endif

#include <gtest/gtest.h>

namespace plan = loom::plan;

namespace {

#ifndef LOOM_HAVE_CUDA
#define REQUIRE_NVRTC()                                                        \
  GTEST_SKIP() << "built without a CUDA toolkit (LOOM_HAVE_CUDA is off): "     \
                  "NVRTC is not available; point CMake at one with "           \
                  "-DCUDAToolkit_ROOT=..."
#else
#define REQUIRE_NVRTC()                                                        \
  do {                                                                         \
  } while (false)

namespace cuda = loom::runtime::cuda;

std::unique_ptr<plan::PlanT>
fusedPlan(mlir::OwningOpRef<mlir::ModuleOp> module) {
  if (!module || mlir::failed(loom::fuseTrainingStep(*module)))
    return nullptr;
  loom::PlanOptions options;
  options.optimizer.decay_style = "cosine"; // loomc's default
  auto built = loom::buildPlan(*module, options);
  return mlir::succeeded(built) ? std::move(*built) : nullptr;
}

/// The fused plan of the tiny GPT on `mesh`.
std::unique_ptr<plan::PlanT> tinyGptPlan(mlir::MLIRContext &context,
                                         llvm::StringRef mesh) {
  return fusedPlan(buildTinyGpt(context, 2, 4, "f32", mesh));
}

/// examples/gpt.loom at its own size (GPT-2 124M) with a 64-token sequence,
/// micro and global batch 4, f32, one rank: what loomc builds for
/// `-D seq=64 --micro-batch-size 4 --global-batch-size 4`.
std::unique_ptr<plan::PlanT> gpt2Plan(mlir::MLIRContext &context) {
  return fusedPlan(buildGpt(context, {{"seq", "64"}}, 4, 4));
}

size_t kernelCount(const plan::PlanT &p) {
  size_t n = p.kernels.size();
  for (const auto &chunk : p.chunks)
    n += chunk->kernels.size();
  return n;
}

/// Every kernel of `p` compiles to a sm_90 cubin holding its entry point.
void expectAllCompile(const plan::PlanT &p, const std::string &what) {
  size_t want = kernelCount(p);
  ASSERT_GT(want, 0u) << what << " has no generated kernels";
  std::vector<cuda::PlanKernelResult> results =
      cuda::compilePlanKernels(p, cuda::NvrtcOutput::Cubin, 90);
  ASSERT_EQ(results.size(), want) << what;
  for (const cuda::PlanKernelResult &r : results) {
    std::string where =
        what + " kernel " + r.name + " (" + r.family +
        (r.chunk >= 0 ? ", chunk " + std::to_string(r.chunk) : std::string()) +
        ")";
    const plan::PlanT &owner = r.chunk < 0 ? p : *p.chunks[size_t(r.chunk)];
    ASSERT_LT(size_t(r.index), owner.kernels.size()) << where;
    EXPECT_EQ(owner.kernels[size_t(r.index)]->name, r.name) << where;
    EXPECT_TRUE(r.ok) << where << " does not compile:\n" << r.log;
    if (!r.ok)
      continue;
    ASSERT_TRUE(r.image) << where;
    // An ELF cubin, with the kernel's code section: checked here by bytes,
    // independently of the symbol-table reading of imageHasEntry.
    EXPECT_EQ(r.image->compare(0, 4,
                               "\x7f"
                               "ELF"),
              0)
        << where;
    EXPECT_NE(r.image->find(".text." + r.name + '\0'), std::string::npos)
        << where << ": no code section for the entry point";
    EXPECT_TRUE(cuda::imageHasEntry(*r.image, cuda::NvrtcOutput::Cubin, r.name))
        << where;
  }
}

#endif // LOOM_HAVE_CUDA

class NvrtcKernelsTest : public ::testing::Test {
protected:
  NvrtcKernelsTest() { loadTinyGptDialects(context); }
  mlir::MLIRContext context;
};

} // namespace

TEST_F(NvrtcKernelsTest, TinyGptOneRankCompilesForSm90) {
  REQUIRE_NVRTC();
#ifdef LOOM_HAVE_CUDA
  std::unique_ptr<plan::PlanT> p = tinyGptPlan(context, "");
  ASSERT_TRUE(p);
  expectAllCompile(*p, "the tiny GPT's");
#endif
}

TEST_F(NvrtcKernelsTest, TinyGptTp2CompilesForSm90) {
  REQUIRE_NVRTC();
#ifdef LOOM_HAVE_CUDA
  std::unique_ptr<plan::PlanT> p = tinyGptPlan(context, "tp=2");
  ASSERT_TRUE(p);
  expectAllCompile(*p, "the tiny GPT's (tp=2)");
#endif
}

TEST_F(NvrtcKernelsTest, TinyGptPp2ChunksCompileForSm90) {
  REQUIRE_NVRTC();
#ifdef LOOM_HAVE_CUDA
  std::unique_ptr<plan::PlanT> p = tinyGptPlan(context, "pp=2");
  ASSERT_TRUE(p);
  ASSERT_FALSE(p->chunks.empty()) << "pp=2 should give a plan of chunks";
  for (const auto &chunk : p->chunks)
    EXPECT_FALSE(chunk->kernels.empty())
        << "chunk " << chunk->chunk_index << " has no generated kernels";
  expectAllCompile(*p, "the tiny GPT's (pp=2)");
#endif
}

TEST_F(NvrtcKernelsTest, Gpt2SmallB4T64CompilesForSm90) {
  REQUIRE_NVRTC();
#ifdef LOOM_HAVE_CUDA
  std::unique_ptr<plan::PlanT> p = gpt2Plan(context);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->vocab_size, 50257);
  expectAllCompile(*p, "GPT-2 124M's (B4 x T64)");
#endif
}

// A kernel that does not compile is reported by name with NVRTC's error,
// and the plan's other kernels still get an image; a source that compiles
// without defining its entry point is not ok either.
TEST_F(NvrtcKernelsTest, ReportsWhichKernelFails) {
  REQUIRE_NVRTC();
#ifdef LOOM_HAVE_CUDA
  std::unique_ptr<plan::PlanT> p = tinyGptPlan(context, "");
  ASSERT_TRUE(p);
  ASSERT_GE(p->kernels.size(), 2u);
  size_t n = p->kernels.size();
  auto broken = std::make_unique<plan::KernelT>(*p->kernels[0]);
  broken->name = "loom_broken";
  broken->cuda_source = "extern \"C\" __global__ void loom_broken(float *a) "
                        "{ a[0] = loom_no_such_builtin(a[1]); }\n";
  auto misnamed = std::make_unique<plan::KernelT>(*p->kernels[0]);
  misnamed->name = "loom_misnamed";
  misnamed->cuda_source =
      "extern \"C\" __global__ void loom_other(float *a) { a[0] = 1.0f; }\n";
  p->kernels.push_back(std::move(broken));
  p->kernels.push_back(std::move(misnamed));

  std::vector<cuda::PlanKernelResult> results =
      cuda::compilePlanKernels(*p, cuda::NvrtcOutput::Cubin, 90);
  ASSERT_EQ(results.size(), n + 2);
  for (size_t k = 0; k < n; ++k) {
    EXPECT_TRUE(results[k].ok) << results[k].name << ":\n" << results[k].log;
    if (results[k].ok) {
      EXPECT_TRUE(cuda::imageHasEntry(
          *results[k].image, cuda::NvrtcOutput::Cubin, results[k].name));
    }
  }
  const cuda::PlanKernelResult &b = results[n];
  EXPECT_EQ(b.name, "loom_broken");
  EXPECT_FALSE(b.ok);
  EXPECT_FALSE(b.image);
  EXPECT_NE(b.log.find("loom_no_such_builtin"), std::string::npos) << b.log;
  EXPECT_NE(b.log.find("loom_broken"), std::string::npos)
      << "the log should name the kernel's program:\n"
      << b.log;
  const cuda::PlanKernelResult &m = results[n + 1];
  EXPECT_EQ(m.name, "loom_misnamed");
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.log.find("no entry point 'loom_misnamed'"), std::string::npos)
      << m.log;
#endif
}

// The entry-point check is exact: a name that is a prefix of a kernel's, or
// is not there, is not found, in PTX as in a cubin.
TEST_F(NvrtcKernelsTest, EntryPointCheckIsExact) {
  REQUIRE_NVRTC();
#ifdef LOOM_HAVE_CUDA
  plan::PlanT p;
  auto kernel = std::make_unique<plan::KernelT>();
  kernel->name = "loom_k10_scale";
  kernel->cuda_source = "extern \"C\" __global__ void loom_k10_scale(float *a) "
                        "{ a[threadIdx.x] *= 2.0f; }\n";
  p.kernels.push_back(std::move(kernel));
  for (cuda::NvrtcOutput output :
       {cuda::NvrtcOutput::Ptx, cuda::NvrtcOutput::Cubin}) {
    std::vector<cuda::PlanKernelResult> results =
        cuda::compilePlanKernels(p, output, 90);
    ASSERT_EQ(results.size(), 1u);
    ASSERT_TRUE(results[0].ok) << results[0].log;
    const std::string &image = *results[0].image;
    EXPECT_TRUE(cuda::imageHasEntry(image, output, "loom_k10_scale"));
    EXPECT_FALSE(cuda::imageHasEntry(image, output, "loom_k1"));
    EXPECT_FALSE(cuda::imageHasEntry(image, output, "loom_k10_scale2"));
    EXPECT_FALSE(cuda::imageHasEntry(image, output, ""));
    EXPECT_FALSE(cuda::imageHasEntry(image,
                                     output == cuda::NvrtcOutput::Ptx
                                         ? cuda::NvrtcOutput::Cubin
                                         : cuda::NvrtcOutput::Ptx,
                                     "loom_k10_scale"))
        << "PTX read as a cubin (or the reverse) has no entry points";
  }
#endif
}
