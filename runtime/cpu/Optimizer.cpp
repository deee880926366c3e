//===- Optimizer.cpp - AdamW, gradient clipping, LR schedules -------------===//

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
  // Elements are independent: threads change nothing in the result.
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    double g = grad[i] * gradScale;
    double mi = c.beta1 * m[i] + (1.0 - c.beta1) * g;
    double vi = c.beta2 * v[i] + (1.0 - c.beta2) * g * g;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    double update = (mi / correction1) / (std::sqrt(vi / correction2) + c.eps);
    double p = param[i];
    param[i] = static_cast<float>(p - lr * (update + weightDecay * p));
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

double clipCoefficient(double globalNorm, double maxNorm) {
  if (maxNorm <= 0)
    return 1.0;
  return std::min(1.0, maxNorm / (globalNorm + 1e-6));
}

double LearningRateSchedule::at(int64_t step) const {
  if (warmupSteps > 0 && step <= warmupSteps)
    return maxLr * double(step) / double(warmupSteps);
  if (decay == Decay::Constant || decaySteps <= warmupSteps)
    return maxLr;
  if (step >= decaySteps)
    return minLr;
  double progress =
      double(step - warmupSteps) / double(decaySteps - warmupSteps);
  double coefficient = decay == Decay::Cosine
                           ? 0.5 * (1.0 + std::cos(M_PI * progress))
                           : 1.0 - progress;
  return minLr + (maxLr - minLr) * coefficient;
}

} // namespace cpu
} // namespace runtime
} // namespace loom
