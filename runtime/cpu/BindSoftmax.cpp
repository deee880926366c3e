//===- BindSoftmax.cpp - the CPU backend's softmax (attention's) ----------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

#include <memory>

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const SoftmaxInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  const uint8_t *mask =
      r.mask != kNoBuffer ? b.as<uint8_t>(r.mask) : nullptr;
  SoftmaxShape s = r.shape;
  Shape xs = r.xShape, maskShape = r.maskShape;
  auto wide = std::make_shared<std::vector<uint8_t>>();
  return Kernel([=](const StepParams &, StepOutputs &) {
    const uint8_t *m = nullptr;
    if (mask) { // broadcast the mask to the scores' shape
      std::vector<float> narrow(mask, mask + numElements(maskShape));
      std::vector<float> full(size_t(numElements(xs))), zero(1, 0.0f);
      broadcastBinary<float>(BinaryKind::Add, narrow.data(), maskShape,
                             zero.data(), Shape{}, full.data(), xs);
      wide->assign(full.begin(), full.end());
      m = wide->data();
    }
    softmax<float>(s, x, m, y);
    return Status::success();
  });
}

Result<Kernel> bind(const SoftmaxGradInstr &r, const Instruction &,
                    Binder &b) {
  float *y = b.f32(r.y), *dy = b.f32(r.dy), *dx = b.f32(r.dx);
  SoftmaxShape s = r.shape;
  return Kernel([=](const StepParams &, StepOutputs &) {
    softmaxBackward<float>(s, y, dy, dx);
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
