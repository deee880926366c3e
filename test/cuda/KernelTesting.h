//===- KernelTesting.h - what the kernel tests share ------------*- C++ -*-===//
//
// Inputs drawn from a fixed seed, comparisons with the CPU reference
// kernels' results (bit for bit, or within a tolerance like the
// conformance suite's), and the grids the tests launch: the binders' own,
// and awkward ones (one block, a block smaller than a warp's multiple of
// the work) that grid-stride loops must cover.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CUDA_KERNELTESTING_H
#define LOOM_TEST_CUDA_KERNELTESTING_H

#include "Emulated.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace loom {
namespace test {

/// n floats uniform in [lo, hi), the same on every run for a seed.
inline std::vector<float> randomFloats(size_t n, unsigned seed,
                                       float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(gen);
  return v;
}

/// Every element's bits equal (NaNs of the same payload, -0 apart from +0).
inline void expectSameBits(const std::vector<float> &got,
                           const std::vector<float> &want,
                           const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t g, w;
    std::memcpy(&g, &got[i], 4);
    std::memcpy(&w, &want[i], 4);
    if (g != w) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i]
                    << ", the CPU's " << want[i];
      return;
    }
  }
}

/// |got - want| <= abs + rel · |want| for every element.
inline void expectClose(const std::vector<float> &got,
                        const std::vector<float> &want, double rel, double abs,
                        const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], w = want[i];
    bool same = (std::isnan(g) && std::isnan(w)) || g == w ||
                std::fabs(g - w) <= abs + rel * std::fabs(w);
    if (!same) {
      ADD_FAILURE() << what << ": element " << i << " is " << g
                    << ", the CPU's " << w;
      return;
    }
  }
}

/// The grids a kernel over n elements is launched with in the tests: the
/// binders' (256 threads, a block per 256 elements), one block of 64
/// threads, and 3 blocks of 32 (both smaller than most of the work).
struct TestGrid {
  Dim3 grid, block;
  std::string name;
};
inline std::vector<TestGrid> testGrids(int64_t n, unsigned threads = 256) {
  unsigned blocks = unsigned(std::max<int64_t>(1, (n + threads - 1) / threads));
  return {{Dim3{blocks, 1, 1}, Dim3{threads, 1, 1}, "the binder's grid"},
          {Dim3{1, 1, 1}, Dim3{64, 1, 1}, "one block of 64"},
          {Dim3{3, 1, 1}, Dim3{32, 1, 1}, "3 blocks of 32"}};
}

} // namespace test
} // namespace loom

#endif // LOOM_TEST_CUDA_KERNELTESTING_H
