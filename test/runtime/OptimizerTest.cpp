//===- OptimizerTest.cpp - AdamW, clipping and schedules by hand ----------===//

#include "loom/runtime/cpu/Optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <vector>

using namespace loom::runtime;
using namespace loom::runtime::cpu;

namespace {

TEST(OptimizerTest, AdamWMatchesItsDefinition) {
  AdamW adam{0.9, 0.95, 1e-8};
  float p[2] = {1.0f, -2.0f}, m[2] = {0, 0}, v[2] = {0, 0};
  const float g1[2] = {0.5f, -0.25f}, g2[2] = {-1.0f, 0.75f};
  // Step 1: bias correction makes m̂ = g and v̂ = g², so the update is
  // g / (|g| + eps) = sign(g), plus decoupled weight decay on p.
  adamwStep(adam, 0.1, 0.01, 1, p, g1, m, v, 2);
  double p0 = 1.0 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.01 * 1.0);
  double p1 = -2.0 - 0.1 * (-0.25 / (0.25 + 1e-8) + 0.01 * -2.0);
  EXPECT_NEAR(p[0], p0, 1e-6);
  EXPECT_NEAR(p[1], p1, 1e-6);
  // Step 2, worked out from the recurrences.
  double m0 = 0.9 * 0.05 + 0.1 * -1.0;           // m after step 1 is 0.1·g1
  double v0 = 0.95 * (0.05 * 0.25) + 0.05 * 1.0; // v after step 1 is 0.05·g1²
  double update0 = (m0 / (1 - 0.81)) / (std::sqrt(v0 / (1 - 0.9025)) + 1e-8);
  double expected0 = p0 - 0.1 * (update0 + 0.01 * p0);
  adamwStep(adam, 0.1, 0.01, 2, p, g2, m, v, 2);
  EXPECT_NEAR(m[0], m0, 1e-7);
  EXPECT_NEAR(v[0], v0, 1e-7);
  EXPECT_NEAR(p[0], expected0, 1e-6);
}

TEST(OptimizerTest, AdamWAtBeta2Of0999MatchesDoublePrecisionAdamW) {
  // With beta2 = 0.999, 1 - beta2 taken in float is 1.3e-5 (relative) short
  // of 0.001: v comes out too small and the step-1 update 6.4e-6 too large
  // (later ones by less, as v's history dominates). At 0.95, the case
  // above, the error hides. Ten steps of AdamW in double; at each, one
  // float step from the same moments (rounded to float) and a parameter of
  // 0, so the parameter's rounding does not hide the update's error: the
  // update (O(1)) must agree to 1e-6, where float rounding gives ~2e-7.
  const AdamW adam{0.9, 0.999, 1e-8};
  const double lr = 0.5; // exact in float: p = -lr * update, unrounded
  const int n = 64, steps = 10;
  std::vector<double> md(n, 0), vd(n, 0);
  double worst = 0;
  for (int t = 1; t <= steps; ++t) {
    std::vector<float> g(n), m(n), v(n), p(n, 0.0f);
    for (int i = 0; i < n; ++i) {
      g[i] = float(std::cos(0.11 * i * t + 0.3 * t) + 0.2);
      m[i] = float(md[i]);
      v[i] = float(vd[i]);
      md[i] = m[i];
      vd[i] = v[i];
    }
    adamwStep(adam, lr, 0.0, t, p.data(), g.data(), m.data(), v.data(), n);
    for (int i = 0; i < n; ++i) {
      double gi = g[i];
      md[i] = adam.beta1 * md[i] + (1 - adam.beta1) * gi;
      vd[i] = adam.beta2 * vd[i] + (1 - adam.beta2) * gi * gi;
      double update =
          (md[i] / (1 - std::pow(adam.beta1, t))) /
          (std::sqrt(vd[i] / (1 - std::pow(adam.beta2, t))) + adam.eps);
      worst = std::max(worst, std::abs(-double(p[i]) / lr - update));
    }
  }
  EXPECT_LT(worst, 1e-6) << "AdamW's updates differ from AdamW in double";
  std::cout << "  largest update error: " << worst << "\n";
}

TEST(OptimizerTest, ClippingByGlobalNorm) {
  const float a[2] = {3, 0}, b[1] = {4};
  double norm = std::sqrt(sumOfSquares(a, 2) + sumOfSquares(b, 1));
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_NEAR(clipCoefficient(norm, 1.0), 1.0 / (5.0 + 1e-6), 1e-15);
  EXPECT_EQ(clipCoefficient(norm, 10.0), 1.0);
  EXPECT_EQ(clipCoefficient(norm, 0.0), 1.0); // clipping off
}

TEST(OptimizerTest, WarmupThenCosineOrLinearDecay) {
  LearningRateSchedule s{1e-3, 1e-4, 10, 100,
                         LearningRateSchedule::Decay::Cosine};
  EXPECT_DOUBLE_EQ(s.at(1), 1e-4); // 1/10 of the way up
  EXPECT_DOUBLE_EQ(s.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  // Halfway through the decay, cosine and linear agree: min + (max-min)/2.
  EXPECT_NEAR(s.at(55), 5.5e-4, 1e-15);
  // A quarter of the way: cosine 1e-4 + 9e-4·(1 + cos(π/4))/2.
  double quarter = 10 + 0.25 * 90;
  EXPECT_NEAR(s.at(int64_t(quarter)),
              1e-4 + 9e-4 * 0.5 * (1 + std::cos(M_PI * (22.0 / 90.0))), 1e-15);
  EXPECT_DOUBLE_EQ(s.at(100), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(1000), 1e-4);
  s.decay = LearningRateSchedule::Decay::Linear;
  EXPECT_NEAR(s.at(55), 5.5e-4, 1e-15);
  EXPECT_NEAR(s.at(32), 1e-3 - 9e-4 * (22.0 / 90.0), 1e-15);
  s.decay = LearningRateSchedule::Decay::Constant;
  EXPECT_DOUBLE_EQ(s.at(500), 1e-3);
}

} // namespace
