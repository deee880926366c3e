//===- BindNorm.cpp - the CUDA backend's layernorm and rmsnorm ------------===//
//
// The forward on kernels/Norm.cu, one block per row. The backward in four
// launches (Norm.cu says why): per-row statistics, then dweight and dbias as
// deterministic column sums (partials over fixed chunks of rows into
// scratch, then the chunks added in order), then dx. dweight and dbias are
// overwritten, as the CPU backend zeroes them before it accumulates.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "BindRows.h"

namespace loom {
namespace runtime {
namespace cuda {

namespace {
/// Row chunks of the column sums: enough (column, chunk) threads to fill
/// the device, few enough that the partials stay small.
int64_t normChunks(int64_t rows) {
  constexpr int64_t kMaxChunks = 128;
  return rows < 1 ? 1 : rows < kMaxChunks ? rows : kMaxChunks;
}
} // namespace

Result<Work> bind(const NormInstr &r, const Instruction &inst, Binder &b) {
  Device *d = &b.device();
  const float *x = b.f32(r.x), *w = b.f32(r.weight),
              *bias = r.layer ? b.f32(r.bias) : nullptr;
  float *y = b.f32(r.y);
  int64_t rows = r.rows, cols = r.cols;
  float eps = float(r.eps);
  return Work([=](const StepParams &) {
    return enqueue(*d, inst,
                   launchOf("loom_norm_forward", rowGrid(rows),
                            rowThreads(cols),
                            {x, w, bias, y, KernelArg::i64v(rows),
                             KernelArg::i64v(cols), KernelArg::f32v(eps)}));
  });
}

Result<Work> bind(const NormGradInstr &r, const Instruction &inst, Binder &b) {
  Device *d = &b.device();
  const float *x = b.f32(r.x), *w = b.f32(r.weight), *dy = b.f32(r.dy);
  float *dx = b.f32(r.dx), *dw = b.f32(r.dweight),
        *db = r.layer ? b.f32(r.dbias) : nullptr;
  int64_t rows = r.rows, cols = r.cols, chunks = normChunks(rows);
  int layer = r.layer ? 1 : 0;
  float eps = float(r.eps);
  // Four statistics per row, then the partials: dweight's, and dbias's.
  size_t statsFloats = size_t(4 * rows),
         partialFloats = size_t(chunks * cols * (layer ? 2 : 1));
  Result<void *> scratch = b.scratch(
      (statsFloats + partialFloats) * sizeof(float), "norm gradient partials");
  if (!scratch.ok())
    return Status::error(scratch.message());
  float *stats = static_cast<float *>(*scratch), *partial = stats + statsFloats;
  std::vector<Launch> steps = {
      launchOf("loom_norm_backward_stats", rowGrid(rows), rowThreads(cols),
               {x, w, dy, stats, KernelArg::i64v(rows), KernelArg::i64v(cols),
                KernelArg::i32v(layer), KernelArg::f32v(eps)}),
      launchOf(
          "loom_norm_backward_partials", gridFor(chunks * cols), kBlockThreads,
          {x, dy, stats, partial, KernelArg::i64v(rows), KernelArg::i64v(cols),
           KernelArg::i64v(chunks), KernelArg::i32v(layer)}),
      launchOf(
          "loom_norm_backward_columns", gridFor(cols), kBlockThreads,
          {partial, dw, db, KernelArg::i64v(cols), KernelArg::i64v(chunks)}),
      launchOf("loom_norm_backward_dx", gridFor(rows * cols), kBlockThreads,
               {x, w, dy, stats, dx, KernelArg::i64v(rows),
                KernelArg::i64v(cols), KernelArg::i32v(layer)}),
  };
  return Work([=](const StepParams &) {
    for (const Launch &l : steps)
      if (Status s = enqueue(*d, inst, l); !s.ok())
        return s;
    return Status::success();
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
