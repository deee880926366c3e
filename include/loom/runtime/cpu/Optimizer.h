//===- Optimizer.h - AdamW, gradient clipping, LR schedules -----*- C++ -*-===//
//
// The optimizer math of a training step, as Megatron-LM runs it: AdamW with
// decoupled weight decay (Loshchilov & Hutter), clipping by the global norm
// of all gradients, and a learning rate that warms up linearly and then
// decays (cosine or linear) to a minimum.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_OPTIMIZER_H
#define LOOM_RUNTIME_CPU_OPTIMIZER_H

#include <cstdint>

namespace loom {
namespace runtime {
namespace cpu {

struct AdamW {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

/// One AdamW step on `n` elements at learning rate `lr` and weight decay
/// `weightDecay` (0 for parameters excluded from decay). `step` counts from
/// 1 (a smaller one is taken as 1) and drives the bias correction. The
/// gradient used is g = grad · gradScale (normalisation, clipping and the
/// loss scale in one factor):
///   m = β1·m + (1-β1)·g,  v = β2·v + (1-β2)·g²
///   p -= lr · ( (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps) + wd · p )
void adamwStep(const AdamW &config, double lr, double weightDecay, int64_t step,
               float *param, const float *grad, float *m, float *v, int64_t n,
               double gradScale = 1.0);

/// The sum of squares of `n` gradient elements, in double.
double sumOfSquares(const float *grad, int64_t n);

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

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_OPTIMIZER_H
