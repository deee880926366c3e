//===- Optimizer.h - AdamW settings, clipping, LR schedules -----*- C++ -*-===//
//
// The backend-neutral optimizer math of a training step, as Megatron-LM
// runs it: AdamW's settings (the update itself is a kernel of each
// backend), clipping by the global norm of all gradients, and a learning
// rate that warms up linearly and then decays (cosine or linear) to a
// minimum. The Session computes these per step and hands them to the
// backend in StepParams.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_OPTIMIZER_H
#define LOOM_RUNTIME_OPTIMIZER_H

#include <cstdint>

namespace loom {
namespace runtime {

struct AdamW {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

/// Megatron's clipping: the factor that brings the global norm to
/// `maxNorm`, min(1, maxNorm / (norm + 1e-6)); 1 when maxNorm <= 0 (off).
double clipCoefficient(double globalNorm, double maxNorm);

/// Linear warm-up to `maxLr` over `warmupSteps`, then decay to `minLr` at
/// `decaySteps` (cosine or linear), then `minLr`. Steps count from 1 and
/// step s uses maxLr · s / warmupSteps during warm-up (Megatron's scheduler
/// is one step behind: its first step uses 0). With decaySteps <=
/// warmupSteps there is no decay: the rate stays at maxLr.
struct LearningRateSchedule {
  enum class Decay { Cosine, Linear, Constant };
  double maxLr = 3e-4, minLr = 0;
  int64_t warmupSteps = 0, decaySteps = 0;
  Decay decay = Decay::Cosine;

  double at(int64_t step) const;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_OPTIMIZER_H
