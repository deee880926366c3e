//===- BindGemm.cpp - the CPU backend's GEMMs -----------------------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const MatmulInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.a), *w = b.f32(r.b), *y = b.f32(r.c);
  MatmulShape s = r.shape;
  float beta = r.beta;
  return Kernel([=](const StepParams &, StepOutputs &) {
    matmul<float>(s, x, w, y, beta);
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
