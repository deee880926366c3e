//===- Compare.h - kernel results against the reference kernels -*- C++ -*-===//
//
// What the kernel tests share: random inputs and the conformance suite's
// comparison (|got - want| <= atol + rtol · |want|, test/conformance).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CUDA_COMPARE_H
#define LOOM_TEST_CUDA_COMPARE_H

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace loom {
namespace test {

/// n floats uniform in [lo, hi), the same for the same seed.
inline std::vector<float> randomFloats(size_t n, uint32_t seed, float lo = -1,
                                       float hi = 1) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(gen);
  return v;
}

/// Every element within the tolerance; the first few that are not, named.
inline void expectClose(const std::vector<float> &got,
                        const std::vector<float> &want, double rtol,
                        double atol, const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], w = want[i];
    bool ok = std::isnan(w) ? std::isnan(g)
                            : std::abs(g - w) <= atol + rtol * std::abs(w);
    if (ok)
      continue;
    ++bad;
    if (reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "] = " << g << ", want " << w
                    << " (off by " << std::abs(g - w) << ")";
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size()
                     << " elements outside the tolerance";
}

} // namespace test
} // namespace loom

#endif // LOOM_TEST_CUDA_COMPARE_H
