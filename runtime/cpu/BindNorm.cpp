//===- BindNorm.cpp - the CPU backend's layernorm and rmsnorm -------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <memory>

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const NormInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.x), *w = b.f32(r.weight),
        *bias = r.layer ? b.f32(r.bias) : nullptr, *y = b.f32(r.y);
  int64_t rows = r.rows, cols = r.cols;
  double eps = r.eps;
  bool layer = r.layer;
  auto stats = std::make_shared<std::vector<float>>(size_t(2 * rows));
  return Kernel([=](const StepParams &, StepOutputs &) {
    float *mean = stats->data(), *rstd = mean + rows;
    if (layer)
      layerNorm<float>(x, w, bias, y, mean, rstd, rows, cols, eps);
    else
      rmsNorm<float>(x, w, y, rstd, rows, cols, eps);
    return Status::success();
  });
}

Result<Kernel> bind(const NormGradInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.x), *w = b.f32(r.weight), *dy = b.f32(r.dy),
        *dx = b.f32(r.dx), *dw = b.f32(r.dweight),
        *db = r.layer ? b.f32(r.dbias) : nullptr;
  int64_t rows = r.rows, cols = r.cols;
  double eps = r.eps;
  bool layer = r.layer;
  // The statistics are recomputed from x rather than stored.
  auto scratch = std::make_shared<std::vector<float>>(
      size_t(rows * cols + 2 * rows + cols));
  return Kernel([=](const StepParams &, StepOutputs &) {
    float *y = scratch->data(), *mean = y + rows * cols, *rstd = mean + rows,
          *zeros = rstd + rows;
    std::fill(dw, dw + cols, 0.0f);
    if (layer) {
      std::fill(zeros, zeros + cols, 0.0f);
      std::fill(db, db + cols, 0.0f);
      layerNorm<float>(x, w, zeros, y, mean, rstd, rows, cols, eps);
      layerNormBackward<float>(x, w, mean, rstd, dy, dx, dw, db, rows, cols);
    } else {
      rmsNorm<float>(x, w, y, rstd, rows, cols, eps);
      rmsNormBackward<float>(x, w, rstd, dy, dx, dw, rows, cols);
    }
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
