//===- BindSoftmax.cpp - the CUDA backend's softmax (attention's) ---------===//
//
// softmax and softmax_grad on kernels/Softmax.cu, one block per row. The
// mask (i1, one byte per element, broadcast to the scores as numpy does) is
// read in place: the kernel maps each score to its mask byte through the
// merged sizes and strides computed here once and uploaded to scratch.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "BindRows.h"

#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

namespace {
/// The scores' dimensions and the mask's strides over them (0 where it
/// broadcasts), size-1 dimensions dropped and neighbours that step as one
/// merged: sizes first, then strides. A mask of rank r aligns with the last
/// r dimensions of the scores.
std::vector<long long> maskDims(const Shape &xs, const Shape &ms) {
  size_t rank = xs.size(), lead = rank - ms.size();
  std::vector<long long> sizes, strides;
  long long stride = 1;
  std::vector<long long> maskStride(rank, 0);
  for (size_t d = rank; d-- > lead;) {
    int64_t m = ms[d - lead];
    maskStride[d] = m == 1 ? 0 : stride;
    stride *= m;
  }
  for (size_t d = 0; d < rank; ++d) {
    if (xs[d] == 1)
      continue;
    if (!sizes.empty() &&
        strides.back() == maskStride[d] * static_cast<long long>(xs[d])) {
      sizes.back() *= xs[d];
      strides.back() = maskStride[d];
      continue;
    }
    sizes.push_back(xs[d]);
    strides.push_back(maskStride[d]);
  }
  if (sizes.empty()) { // one score
    sizes.push_back(1);
    strides.push_back(0);
  }
  sizes.insert(sizes.end(), strides.begin(), strides.end());
  return sizes;
}
} // namespace

Result<Work> bind(const SoftmaxInstr &r, const Instruction &inst, Binder &b) {
  Device *d = &b.device();
  const float *x = b.f32(r.x);
  float *y = b.f32(r.y);
  const void *mask = r.mask != kNoBuffer ? b.storage(r.mask) : nullptr;
  const long long *dims = nullptr;
  int rank = 0;
  if (mask) {
    std::vector<long long> host = maskDims(r.xShape, r.maskShape);
    size_t bytes = host.size() * sizeof(long long);
    Result<void *> where = b.scratch(bytes, "softmax mask geometry");
    if (!where.ok())
      return Status::error(where.message());
    if (Status s = d->upload(*where, host.data(), bytes); !s.ok())
      return runError(inst, s.message());
    dims = static_cast<const long long *>(*where);
    rank = int(host.size() / 2);
  }
  SoftmaxShape s = r.shape;
  return Work([=](const StepParams &) {
    return enqueue(
        *d, inst,
        launchOf("loom_softmax_forward", rowGrid(s.rows), rowThreads(s.cols),
                 {x, mask, dims, KernelArg::i32v(rank), y,
                  KernelArg::i64v(s.rows), KernelArg::i64v(s.cols),
                  KernelArg::i64v(s.queries), KernelArg::i32v(s.causal),
                  KernelArg::f32v(float(s.scale))}));
  });
}

Result<Work> bind(const SoftmaxGradInstr &r, const Instruction &inst,
                  Binder &b) {
  Device *d = &b.device();
  const float *y = b.f32(r.y), *dy = b.f32(r.dy);
  float *dx = b.f32(r.dx);
  SoftmaxShape s = r.shape;
  return Work([=](const StepParams &) {
    return enqueue(
        *d, inst,
        launchOf("loom_softmax_backward", rowGrid(s.rows), rowThreads(s.cols),
                 {y, dy, dx, KernelArg::i64v(s.rows), KernelArg::i64v(s.cols),
                  KernelArg::f32v(float(s.scale))}));
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
