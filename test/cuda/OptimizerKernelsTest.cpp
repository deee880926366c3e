//===- OptimizerKernelsTest.cpp - Optimizer.cu against the CPU ------------===//
//
// The gradient norm (per-block partials, then one block) against the CPU's
// sumOfSquares, its determinism and its non-finite flag, and AdamW against
// runtime/cpu/Optimizer.cpp's adamwStep with the clipping of
// runtime/Optimizer.cpp, reading the norm from device step values as the
// binder launches it.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "KernelTesting.h"
#include "loom/runtime/Optimizer.h"
#include "loom/runtime/cpu/Optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom {
namespace test {
namespace {

namespace rt = runtime;
using rt::cuda::DeviceStepValues;

/// BindOptimizer.cpp's blocks per gradient.
int64_t squaresBlocks(int64_t n) {
  return std::min<int64_t>(512, std::max<int64_t>(1, (n + 255) / 256));
}

/// grad_norm as the binder enqueues it: each gradient's partials, then the
/// one-block sum in `mode` (0 store, 1 add to gradSquares, 2 the norm).
std::string gradNorm(const std::vector<std::vector<float>> &grads, int mode,
                     double gradScale, DeviceStepValues &values,
                     double *stored) {
  int64_t total = 0;
  for (const std::vector<float> &g : grads)
    total += squaresBlocks(int64_t(g.size()));
  std::vector<double> partials(size_t(total), -1.0);
  int64_t at = 0;
  for (const std::vector<float> &g : grads) {
    int64_t n = int64_t(g.size()), blocks = squaresBlocks(n);
    std::string e = launchKernel("loom_optimizer_squares",
                                 Dim3{unsigned(blocks), 1, 1}, Dim3{256, 1, 1},
                                 {g.data(), i64(n), partials.data() + at});
    if (!e.empty())
      return e;
    at += blocks;
  }
  return launchKernel("loom_optimizer_norm", Dim3{1, 1, 1}, Dim3{256, 1, 1},
                      {partials.data(), i64(total), i32(mode), f64(gradScale),
                       stored, &values.gradSquares, &values.gradNorm,
                       &values.nonFinite});
}

std::vector<std::vector<float>> someGradients() {
  // One element, a block's worth less one, several blocks, and more than
  // kMaxSquaresBlocks blocks' worth (the grid-stride loop's second lap).
  std::vector<std::vector<float>> grads;
  unsigned seed = 20;
  for (int64_t n : {1, 255, 1000, 140000})
    grads.push_back(randomFloats(size_t(n), seed++, -0.1f, 0.1f));
  return grads;
}

TEST(OptimizerKernels, GradNormAsTheCpu) {
  std::vector<std::vector<float>> grads = someGradients();
  double squares = 0;
  for (const std::vector<float> &g : grads)
    squares += rt::cpu::sumOfSquares(g.data(), int64_t(g.size()));
  double gradScale = 0.25;

  DeviceStepValues values{};
  values.nonFinite = 7;
  ASSERT_EQ(gradNorm(grads, 2, gradScale, values, nullptr), "");
  double want = std::sqrt(squares) * gradScale;
  // Double sums in another order: equal to about 1e-15 relative.
  EXPECT_NEAR(values.gradNorm, want, 1e-13 * want);
  EXPECT_EQ(values.nonFinite, 0);

  // The same launches give the same bits.
  DeviceStepValues again{};
  ASSERT_EQ(gradNorm(grads, 2, gradScale, again, nullptr), "");
  EXPECT_EQ(std::memcmp(&again.gradNorm, &values.gradNorm, sizeof(double)), 0);

  // A pipeline chunk's partial adds its squares to the step's.
  DeviceStepValues chunk{};
  chunk.gradSquares = 1.5;
  ASSERT_EQ(gradNorm(grads, 1, gradScale, chunk, nullptr), "");
  EXPECT_NEAR(chunk.gradSquares, 1.5 + squares, 1e-13 * squares);
  EXPECT_EQ(chunk.gradNorm, 0.0);

  // Before an all-reduce: the sum, stored for the host.
  DeviceStepValues untouched{};
  double stored = -1;
  ASSERT_EQ(gradNorm(grads, 0, gradScale, untouched, &stored), "");
  EXPECT_NEAR(stored, squares, 1e-13 * squares);
  EXPECT_EQ(untouched.gradNorm, 0.0);
  EXPECT_EQ(untouched.gradSquares, 0.0);

  // No gradients counted on this rank: a norm of 0.
  DeviceStepValues none{};
  none.gradNorm = 3;
  ASSERT_EQ(gradNorm({}, 2, gradScale, none, nullptr), "");
  EXPECT_EQ(none.gradNorm, 0.0);
}

TEST(OptimizerKernels, GradNormFlagsInfAndNaN) {
  for (float bad : {std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN(), 3e38f}) {
    std::vector<std::vector<float>> grads = someGradients();
    grads[2][500] = bad;
    DeviceStepValues values{};
    ASSERT_EQ(gradNorm(grads, 2, 1.0, values, nullptr), "");
    // 3e38² overflows f32 but not the double sum: finite, as on the CPU.
    double cpuNorm = 0;
    for (const std::vector<float> &g : grads)
      cpuNorm += rt::cpu::sumOfSquares(g.data(), int64_t(g.size()));
    cpuNorm = std::sqrt(cpuNorm);
    EXPECT_EQ(values.nonFinite, std::isfinite(cpuNorm) ? 0 : 1) << bad;
  }
}

struct AdamCase {
  double clipGrad, norm, gradScale, weightDecay;
  int64_t step;
};

TEST(OptimizerKernels, AdamWAsTheCpu) {
  rt::AdamW adam;
  adam.beta1 = 0.9;
  adam.beta2 = 0.95;
  adam.eps = 1e-8;
  double lr = 3e-4;
  std::vector<AdamCase> cases = {
      {0.0, 2.0, 0.5, 0.1, 1},   // no clipping
      {1.0, 4.0, 0.5, 0.1, 1},   // clipped to 1
      {1.0, 0.5, 1.0, 0.0, 10},  // under the clip; no decay
      {1.0, 0.0, 1.0, 0.1, 0},   // step 0 counts as 1
  };
  for (int64_t n : {1, 300, 1025}) {
    std::vector<float> p0 = randomFloats(size_t(n), 30);
    std::vector<float> g = randomFloats(size_t(n), 31, -0.5f, 0.5f);
    std::vector<float> m0 = randomFloats(size_t(n), 32, -0.01f, 0.01f);
    std::vector<float> v0 = randomFloats(size_t(n), 33, 0.0f, 1e-4f);
    for (const AdamCase &c : cases) {
      std::vector<float> wp = p0, wm = m0, wv = v0;
      double scale = c.gradScale * rt::clipCoefficient(c.norm, c.clipGrad);
      rt::cpu::adamwStep(adam, lr, c.weightDecay, c.step, wp.data(), g.data(),
                         wm.data(), wv.data(), n, scale);
      // The constants as BindOptimizer.cpp computes them.
      int64_t step = std::max<int64_t>(c.step, 1);
      double c1 = 1.0 - std::pow(adam.beta1, double(step));
      double c2 = 1.0 - std::pow(adam.beta2, double(step));
      DeviceStepValues values{};
      values.gradNorm = c.norm;
      for (const TestGrid &grid : testGrids(n)) {
        std::vector<float> p = p0, m = m0, v = v0;
        ASSERT_EQ(
            launchKernel(
                "loom_optimizer_adamw", grid.grid, grid.block,
                {p.data(), g.data(), m.data(), v.data(), i64(n),
                 &values.gradNorm, &values.nonFinite, f64(c.gradScale),
                 f64(c.clipGrad), f32(float(adam.beta1)),
                 f32(float(adam.beta2)), f32(float(1.0 - adam.beta1)),
                 f32(float(1.0 - adam.beta2)), f32(float(1.0 / c1)),
                 f32(float(1.0 / c2)), f32(float(adam.eps)), f32(float(lr)),
                 f32(float(c.weightDecay))}),
            "");
        std::string what = "adamw n=" + std::to_string(n) + " clip " +
                           std::to_string(c.clipGrad) + " norm " +
                           std::to_string(c.norm) + ", " + grid.name;
        expectSameBits(p, wp, what + " (param)");
        expectSameBits(m, wm, what + " (m)");
        expectSameBits(v, wv, what + " (v)");
      }
    }
  }
}

TEST(OptimizerKernels, AdamWSkipsANonFiniteStep) {
  int64_t n = 100;
  std::vector<float> p0 = randomFloats(size_t(n), 40), p = p0;
  std::vector<float> g = randomFloats(size_t(n), 41), m(size_t(n), 0.0f),
                     v(size_t(n), 0.0f);
  DeviceStepValues values{};
  values.gradNorm = std::numeric_limits<double>::infinity();
  values.nonFinite = 1;
  ASSERT_EQ(launchKernel("loom_optimizer_adamw", Dim3{1, 1, 1},
                         Dim3{128, 1, 1},
                         {p.data(), g.data(), m.data(), v.data(), i64(n),
                          &values.gradNorm, &values.nonFinite, f64(1.0),
                          f64(1.0), f32(0.9f), f32(0.999f), f32(0.1f),
                          f32(0.001f), f32(10.0f), f32(1000.0f), f32(1e-8f),
                          f32(1e-3f), f32(0.1f)}),
            "");
  expectSameBits(p, p0, "param");
  expectSameBits(m, std::vector<float>(size_t(n), 0.0f), "m");
}

// The fused optimizer's norm-dependent scalars, written on the device into
// its step slots: gradScale (which the slot holds) times the clip
// coefficient, exactly as runtime/Optimizer.cpp's clipCoefficient, for
// ordinary, infinite and NaN norms with clipping on and off; and the skip
// flag.
TEST(OptimizerKernels, NormScalarsAsTheHostComputesThem) {
  const double inf = std::numeric_limits<double>::infinity(),
               nan = std::numeric_limits<double>::quiet_NaN();
  for (double norm : {0.0, 0.5, 3.0, inf, nan})
    for (double maxNorm : {0.0, 1.0}) {
      double gradScale = 0.25, out = gradScale;
      int nonFinite = std::isfinite(norm) ? 0 : 1;
      ASSERT_EQ(launchKernel("loom_optimizer_norm_scalar", Dim3{1, 1, 1},
                             Dim3{32, 1, 1},
                             {&norm, &nonFinite, &out, i32(0), &maxNorm}),
                "");
      double want = gradScale * rt::clipCoefficient(norm, maxNorm);
      EXPECT_TRUE(out == want || (std::isnan(out) && std::isnan(want)))
          << "norm " << norm << " max " << maxNorm << ": " << out << " vs "
          << want;
      double skipped = -1;
      ASSERT_EQ(launchKernel("loom_optimizer_norm_scalar", Dim3{1, 1, 1},
                             Dim3{32, 1, 1},
                             {&norm, &nonFinite, &skipped, i32(1), &maxNorm}),
                "");
      EXPECT_EQ(skipped, nonFinite ? 1.0 : 0.0) << "norm " << norm;
    }
}

} // namespace
} // namespace test
} // namespace loom
