//===- BindDataMovement.cpp - the CUDA backend's reductions and copies ----===//
//
// Reductions over any set of dimensions, transposes, split and concat, as
// the CPU backend's runtime/cpu/BindDataMovement.cpp, onto
// runtime/cuda/kernels/DataMovement.cu. Loops are collapsed and uploaded
// once, at bind time (KernelGeometry.h). Zeroing is the lead's.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "KernelGeometry.h"

#include <algorithm>

namespace loom {
namespace runtime {
namespace cuda {

namespace {
KernelArg i64(int64_t v) { return KernelArg::i64v(v); }
KernelArg i32(int32_t v) { return KernelArg::i32v(v); }

/// Outputs at or above this many, or this few terms per output, take one
/// thread per output (the CPU's order, enough threads to fill a GPU);
/// others one block per output.
constexpr int64_t kSerialOutputs = 32768;
constexpr int64_t kSerialTerms = 16;
} // namespace

Result<Work> bind(const ReduceInstr &r, const Instruction &inst, Binder &b) {
  const float *x = b.f32(r.x);
  float *y = b.f32(r.y);
  ReduceLoops loops = reduceLoops(r.xShape, r.reduced);
  int64_t outputs = r.outElements;
  // The CPU's divisor for a mean: x's elements per output.
  double count =
      double(numElements(r.xShape)) / double(std::max<int64_t>(1, outputs));
  int op = r.max ? 2 : r.mean ? 1 : 0;
  std::vector<int64_t> flat = loops.flat();
  Result<const long long *> g =
      deviceGeometry(b, flat, "reduction loops of " + inst.label);
  if (!g.ok())
    return Status::error(g.message());
  std::vector<KernelArg> args = {x,
                                 y,
                                 i64(outputs),
                                 i64(loops.terms),
                                 i32(loops.kept.rank()),
                                 i32(loops.reduced.rank()),
                                 *g,
                                 i32(op),
                                 KernelArg::f64v(count)};
  bool serial = outputs >= kSerialOutputs || loops.terms <= kSerialTerms;
  Launch l = serial ? launchOf("loom_data_reduce_serial", gridFor(outputs),
                               kBlockThreads, args)
                    : launchOf("loom_data_reduce_tree", gridFor(outputs, 1),
                               kBlockThreads, args);
  Device &d = b.device();
  return launchWork(d, inst, std::move(l));
}

Result<Work> bind(const TransposeInstr &r, const Instruction &inst, Binder &b) {
  return stridedGatherWork(b, inst, "loom_data_transpose",
                           transposeLoop(r.xShape, r.permutation), b.f32(r.x),
                           b.f32(r.y), numElements(r.xShape),
                           "transpose strides of " + inst.label);
}

Result<Work> bind(const SplitConcatInstr &r, const Instruction &inst,
                  Binder &b) {
  float *whole = b.f32(r.whole);
  std::vector<Launch> launches;
  int64_t first = 0;
  for (auto [id, size] : r.pieces) {
    int64_t n = r.outer * size * r.inner;
    launches.push_back(launchOf(
        "loom_data_split_concat", gridFor(n), kBlockThreads,
        {whole, b.f32(id), i64(r.outer), i64(r.inner), i64(r.wholeAxis),
         i64(first), i64(size), i32(r.split ? 1 : 0)}));
    first += size;
  }
  Device &d = b.device();
  return Work([&d, &inst, launches](const StepParams &) {
    for (const Launch &l : launches)
      if (Status s = enqueue(d, inst, l); !s.ok())
        return s;
    return Status::success();
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
