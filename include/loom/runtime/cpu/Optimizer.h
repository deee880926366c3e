//===- Optimizer.h - the CPU backend's optimizer kernels --------*- C++ -*-===//
//
// AdamW with decoupled weight decay (Loshchilov & Hutter) and the sum of
// squares of the global gradient norm, as Megatron-LM runs them. The
// clipping coefficient and the learning-rate schedule are backend-neutral
// (loom/runtime/Optimizer.h).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_OPTIMIZER_H
#define LOOM_RUNTIME_CPU_OPTIMIZER_H

#include "loom/runtime/Optimizer.h"

#include <cstdint>

namespace loom {
namespace runtime {
namespace cpu {

using runtime::AdamW;


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

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_OPTIMIZER_H
