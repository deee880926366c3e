//===- Optimizer.cpp - the CPU backend's AdamW and gradient squares -------===//

#include "loom/runtime/cpu/Optimizer.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace loom {
namespace runtime {
namespace cpu {

void adamwStep(const AdamW &c, double lr, double weightDecay, int64_t step,
               float *param, const float *grad, float *m, float *v, int64_t n,
               double gradScale) {
  step = std::max<int64_t>(step, 1); // steps count from 1
  const double correction1 = 1.0 - std::pow(c.beta1, double(step));
  const double correction2 = 1.0 - std::pow(c.beta2, double(step));
  // In float, so the loop vectorises; every element is independent, so
  // threads change nothing in the result. 1 - beta is taken in double and
  // rounded once: in float, 1 - float(0.999) is 1.3e-5 (relative) short of
  // 0.001, which makes every early update too large.
  const float b1 = float(c.beta1), b2 = float(c.beta2);
  const float c1 = float(1.0 - c.beta1), c2 = float(1.0 - c.beta2);
  const float inv1 = float(1.0 / correction1), inv2 = float(1.0 / correction2);
  const float eps = float(c.eps), rate = float(lr), decay = float(weightDecay);
  const float scale = float(gradScale);
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] * scale;
    float mi = b1 * m[i] + c1 * g;
    float vi = b2 * v[i] + c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    float update = (mi * inv1) / (std::sqrt(vi * inv2) + eps);
    param[i] -= rate * (update + decay * param[i]);
  }
}

double sumOfSquares(const float *grad, int64_t n) {
  // Fixed chunks summed in order: the same bits on any number of threads.
  constexpr int64_t kChunk = int64_t(1) << 16;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(std::max<int64_t>(chunks, 1)), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    double sum = 0;
    for (int64_t i = c * kChunk, end = std::min(n, i + kChunk); i < end; ++i)
      sum += double(grad[i]) * double(grad[i]);
    partial[size_t(c)] = sum;
  }
  double sum = 0;
  for (double p : partial)
    sum += p;
  return sum;
}

} // namespace cpu
} // namespace runtime
} // namespace loom
