//===- Optimizer.cpp - clipping and learning-rate schedules --------------===//

#include "loom/runtime/Optimizer.h"

#include <algorithm>
#include <cmath>

namespace loom {
namespace runtime {

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

} // namespace runtime
} // namespace loom
