//===- BindElementwise.cpp - the CPU backend's elementwise kernels --------===//
//
// Arithmetic with broadcasting, scaling and accumulation, casts,
// activations and their gradients, broadcasts, fills and dropout.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

#include <cstring>

#include <algorithm>

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const BinaryInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.a), *w = b.f32(r.b), *y = b.f32(r.y);
  BinaryInstr s = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    broadcastBinary<float>(s.kind, x, s.aShape, w, s.bShape, y, s.yShape);
    return Status::success();
  });
}

Result<Kernel> bind(const ScaleInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  int64_t n = r.n;
  float factor = r.factor;
  bool add = r.accumulate;
  return Kernel([=](const StepParams &, StepOutputs &) {
    scale<float>(x, y, n, factor, add);
    return Status::success();
  });
}

Result<Kernel> bind(const CastInstr &r, const Instruction &, Binder &b) {
  int64_t n = r.n;
  float *y = b.f32(r.y);
  if (r.from == plan::DType::I32) {
    const int32_t *x = b.as<int32_t>(r.x);
    return Kernel([=](const StepParams &, StepOutputs &) {
      castElements<float, int32_t>(x, y, n, false);
      return Status::success();
    });
  }
  // Between float types: the f32 views are copied (the executor widens
  // and rounds the 16-bit sides).
  float *x = b.f32(r.x);
  bool add = r.accumulate;
  return Kernel([=](const StepParams &, StepOutputs &) {
    castElements<float, float>(x, y, n, add);
    return Status::success();
  });
}

Result<Kernel> bind(const ActivationInstr &r, const Instruction &,
                    Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  Activation kind = r.kind;
  int64_t n = r.n;
  return Kernel([=](const StepParams &, StepOutputs &) {
    activation<float>(kind, x, y, n);
    return Status::success();
  });
}

Result<Kernel> bind(const ActivationGradInstr &r, const Instruction &,
                    Binder &b) {
  float *x = b.f32(r.x), *dy = b.f32(r.dy), *dx = b.f32(r.dx);
  Activation kind = r.kind;
  int64_t n = r.n;
  return Kernel([=](const StepParams &, StepOutputs &) {
    activationBackward<float>(kind, x, dy, dx, n);
    return Status::success();
  });
}

Result<Kernel> bind(const BroadcastInstr &r, const Instruction &,
                    Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  Shape xs = r.xShape, ys = r.yShape;
  return Kernel([=](const StepParams &, StepOutputs &) {
    float zero = 0;
    broadcastBinary<float>(BinaryKind::Add, x, xs, &zero, Shape{}, y, ys);
    return Status::success();
  });
}

Result<Kernel> bind(const FillInstr &r, const Instruction &, Binder &b) {
  float *y = b.f32(r.y);
  int64_t n = r.n;
  float value = r.value;
  bool seed = r.lossScale;
  return Kernel([=](const StepParams &params, StepOutputs &) {
    std::fill(y, y + n, seed ? float(params.lossScale) : value);
    return Status::success();
  });
}

Result<Kernel> bind(const DropoutInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  Block block = r.block;
  double rate = r.rate;
  std::string site = r.site;
  int64_t globalN = numElements(block.global);
  int64_t n = r.n;
  return Kernel([=](const StepParams &params, StepOutputs &) {
    if (!params.training) { // evaluation: x passes unchanged
      if (y != x)
        std::memmove(y, x, size_t(n) * sizeof(float));
      return Status::success();
    }
    dropoutBlock<float>(x, y, block, params.microbatch * globalN, rate,
                        dropoutKey(params.seed, site, params.step));
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
