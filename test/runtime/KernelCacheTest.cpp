//===- KernelCacheTest.cpp - NVRTC cubins cached on disk, without a GPU ---===//
//
// The CUDA device's kernel cache needs the toolkit's NVRTC, no GPU: these run
// in CI. Each test has its own cache directory.
//
//===----------------------------------------------------------------------===//

#include "KernelCache.h"

#include "TempDir.h"
#include "loom/runtime/cuda/NvrtcCompiler.h"
#include "loom/runtime/cuda/PlanKernels.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fstream>
#include <regex>
#include <sys/stat.h>

using namespace loom::runtime;
using namespace loom::runtime::cuda;

namespace loom::runtime::cuda {
extern const char *const kKernelLibrarySource; // KernelLibrarySource.cpp
}

namespace {

const char *kScale = R"cuda(
extern "C" __global__ void scale(float *x, long long n, float by) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    x[i] *= by;
}
)cuda";

class KernelCacheTest : public TempDir {
protected:
  Result<std::string> compile(const std::string &source, int sm,
                              std::vector<std::string> options,
                              KernelCacheReport &report) {
    return compileCached(source, "scale.cu", sm, options, &report, dir);
  }
  std::string read(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  /// The names in the cache directory ending in `suffix`.
  std::vector<std::string> filesEndingIn(const std::string &suffix) {
    std::vector<std::string> names;
    DIR *d = opendir(dir.c_str());
    for (dirent *e = d ? readdir(d) : nullptr; e; e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        names.push_back(name);
    }
    if (d)
      closedir(d);
    return names;
  }
};

TEST_F(KernelCacheTest, MissThenHit) {
  KernelCacheReport cold, warm;
  Result<std::string> first = compile(kScale, 90, {}, cold);
  ASSERT_TRUE(first.ok()) << first.message();
  EXPECT_FALSE(cold.cacheHit);
  EXPECT_FALSE(cold.rebuilt);
  EXPECT_TRUE(cold.uncached.empty()) << cold.uncached;
  EXPECT_EQ(first->compare(0, 4,
                           "\x7f"
                           "ELF"),
            0)
      << "a cubin is an ELF file";
  EXPECT_TRUE(imageHasEntry(*first, NvrtcOutput::Cubin, "scale"));
  EXPECT_EQ(cold.cubinPath, dir + "/" + cold.key + ".cubin");
  EXPECT_EQ(read(cold.cubinPath), *first);
  EXPECT_EQ(read(dir + "/" + cold.key + ".cu"), kScale);
  EXPECT_GT(cold.seconds, 0);

  Result<std::string> second = compile(kScale, 90, {}, warm);
  ASSERT_TRUE(second.ok()) << second.message();
  EXPECT_TRUE(warm.cacheHit);
  EXPECT_EQ(warm.key, cold.key);
  EXPECT_EQ(*second, *first);
  // Reading a cubin is much cheaper than NVRTC's compile.
  EXPECT_LT(warm.seconds, cold.seconds);
}

TEST_F(KernelCacheTest, ACorruptedEntryIsRecompiledNotLoaded) {
  KernelCacheReport report;
  Result<std::string> original = compile(kScale, 90, {}, report);
  ASSERT_TRUE(original.ok()) << original.message();
  std::string path = report.cubinPath;

  // One flipped byte: the checksum no longer matches.
  std::string damaged = *original;
  damaged[damaged.size() / 2] ^= 0x5A;
  write(report.key + ".cubin", damaged);
  Result<std::string> again = compile(kScale, 90, {}, report);
  ASSERT_TRUE(again.ok()) << again.message();
  EXPECT_FALSE(report.cacheHit);
  EXPECT_TRUE(report.rebuilt);
  EXPECT_EQ(*again, *original);
  EXPECT_EQ(read(path), *original);

  // A truncated cubin, and a missing checksum.
  write(report.key + ".cubin", original->substr(0, 100));
  ASSERT_TRUE(compile(kScale, 90, {}, report).ok());
  EXPECT_TRUE(report.rebuilt);
  ASSERT_EQ(std::remove((path + ".sha256").c_str()), 0);
  ASSERT_TRUE(compile(kScale, 90, {}, report).ok());
  EXPECT_TRUE(report.rebuilt);

  Result<std::string> warm = compile(kScale, 90, {}, report);
  ASSERT_TRUE(warm.ok());
  EXPECT_TRUE(report.cacheHit);
  EXPECT_EQ(*warm, *original);
}

TEST_F(KernelCacheTest, AnotherSmOrOptionsIsAnotherEntry) {
  KernelCacheReport hopper, ampere, lineInfo, hopperAgain;
  ASSERT_TRUE(compile(kScale, 90, {}, hopper).ok());
  ASSERT_TRUE(compile(kScale, 80, {}, ampere).ok());
  ASSERT_TRUE(compile(kScale, 90, {"--generate-line-info"}, lineInfo).ok());
  EXPECT_FALSE(ampere.cacheHit);
  EXPECT_FALSE(lineInfo.cacheHit);
  EXPECT_NE(hopper.key, ampere.key);
  EXPECT_NE(hopper.key, lineInfo.key);
  EXPECT_NE(ampere.key, lineInfo.key);
  EXPECT_EQ(filesEndingIn(".cubin").size(), 3u);
  // And the source: one more character, one more entry.
  EXPECT_NE(kernelCacheKey(kScale, 90, {}),
            kernelCacheKey(std::string(kScale) + " ", 90, {}));
  // The options' boundaries are part of the key.
  EXPECT_NE(kernelCacheKey(kScale, 90, {"-a", "b"}),
            kernelCacheKey(kScale, 90, {"-ab"}));
  ASSERT_TRUE(compile(kScale, 90, {}, hopperAgain).ok());
  EXPECT_TRUE(hopperAgain.cacheHit);
  EXPECT_EQ(hopperAgain.key, hopper.key);
}

TEST_F(KernelCacheTest, AnNvrtcErrorIsReportedWithItsLogAndNotCached) {
  KernelCacheReport report;
  Result<std::string> bad = compileCached(
      "extern \"C\" __global__ void broken(float *x) { x[0] = undeclared; }\n",
      "broken.cu", 90, {}, &report, dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("NVRTC cannot compile broken.cu for sm_90"),
            std::string::npos)
      << bad.message();
  // NVRTC's own log: the file, the line and the identifier.
  EXPECT_NE(bad.message().find("broken.cu(1)"), std::string::npos)
      << bad.message();
  EXPECT_NE(bad.message().find("undeclared"), std::string::npos)
      << bad.message();
  EXPECT_TRUE(filesEndingIn(".cubin").empty());
  EXPECT_TRUE(filesEndingIn(".sha256").empty());
}

TEST_F(KernelCacheTest, AnUnusableCacheDirectoryStillCompiles) {
  std::string file = write("not-a-directory", "x");
  KernelCacheReport report;
  Result<std::string> cubin =
      compileCached(kScale, "scale.cu", 90, {}, &report, file + "/cache");
  ASSERT_TRUE(cubin.ok()) << cubin.message();
  EXPECT_FALSE(report.cacheHit);
  EXPECT_TRUE(report.cubinPath.empty());
  EXPECT_NE(report.uncached.find("not a directory"), std::string::npos)
      << report.uncached;
  EXPECT_TRUE(imageHasEntry(*cubin, NvrtcOutput::Cubin, "scale"));
}

TEST_F(KernelCacheTest, LOOM_KERNEL_CACHEChoosesTheDirectory) {
  std::string chosen = dir + "/from-env";
  ASSERT_EQ(setenv("LOOM_KERNEL_CACHE", chosen.c_str(), 1), 0);
  KernelCacheReport report;
  Result<std::string> cubin =
      compileCached(kScale, "scale.cu", 90, {}, &report);
  unsetenv("LOOM_KERNEL_CACHE");
  ASSERT_TRUE(cubin.ok()) << cubin.message();
  EXPECT_EQ(report.cubinPath, chosen + "/" + report.key + ".cubin");
  struct stat st;
  EXPECT_EQ(stat(report.cubinPath.c_str(), &st), 0);
}

// What the GPU device does when it opens: the whole kernel library through
// the cache for sm_90, every LOOM_KERNEL_ENTRY an entry of the cubin.
TEST_F(KernelCacheTest, TheKernelLibraryCompilesThroughTheCache) {
  std::string source = kKernelLibrarySource;
  KernelCacheReport report;
  Result<std::string> cubin =
      compileCached(source, "loom-kernel-library.cu", 90, {}, &report, dir);
  ASSERT_TRUE(cubin.ok()) << cubin.message();
  std::regex entry(R"(\nLOOM_KERNEL_ENTRY\((\w+)\))");
  int entries = 0;
  for (std::sregex_iterator it(source.begin(), source.end(), entry), end;
       it != end; ++it, ++entries)
    EXPECT_TRUE(imageHasEntry(*cubin, NvrtcOutput::Cubin, (*it)[1].str()))
        << (*it)[1].str();
  std::printf("the kernel library: %d entries, compiled in %.2f s\n", entries,
              report.seconds);
}

} // namespace
