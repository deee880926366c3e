//===- BindDataMovement.cpp - the CPU backend's reductions and copies -----===//
//
// Reductions over dimensions, transposes, split and concat, and clearing
// buffers.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

#include <cstring>

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const ReduceInstr &r, const Instruction &, Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  ReduceInstr s = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    reduceDims<float>(x, s.xShape, s.reduced, s.max, s.mean, y,
                      s.outElements);
    return Status::success();
  });
}

Result<Kernel> bind(const TransposeInstr &r, const Instruction &,
                    Binder &b) {
  float *x = b.f32(r.x), *y = b.f32(r.y);
  Shape xs = r.xShape;
  std::vector<int64_t> perm = r.permutation;
  return Kernel([=](const StepParams &, StepOutputs &) {
    transpose<float>(x, xs, perm, y);
    return Status::success();
  });
}

Result<Kernel> bind(const SplitConcatInstr &r, const Instruction &,
                    Binder &b) {
  float *whole = b.f32(r.whole);
  std::vector<float *> pieces;
  std::vector<int64_t> sizes;
  for (auto [id, size] : r.pieces) {
    pieces.push_back(b.f32(id));
    sizes.push_back(size);
  }
  SplitConcatInstr s = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    splitConcat<float>(s.split, whole, pieces, sizes, s.outer, s.inner,
                       s.wholeAxis);
    return Status::success();
  });
}

Result<Kernel> bind(const ZeroInstr &r, const Instruction &, Binder &b) {
  std::vector<std::pair<void *, size_t>> regions;
  for (BufferId id : r.buffers)
    regions.push_back({b.storage(id), b.bytes(id)});
  return Kernel([=](const StepParams &, StepOutputs &) {
    for (auto [p, bytes] : regions)
      std::memset(p, 0, bytes);
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
