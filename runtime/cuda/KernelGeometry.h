//===- KernelGeometry.h - strided loops for the CUDA kernels ----*- C++ -*-===//
//
// Internal to the CUDA backend. The host half of the strided kernels of
// runtime/cuda/kernels/Elementwise.cu and DataMovement.cu: a loop over an
// index space with a stride per operand, collapsed (size-1 dimensions
// dropped, adjacent dimensions every operand walks contiguously merged) so
// that the kernels divide as little as they can, then flattened into the
// `long long` array a kernel reads (sizes, then each operand's strides).
// The binders build the arrays once at bind time; the tests build them here
// too, so what they launch is what the binders launch.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_KERNELGEOMETRY_H
#define LOOM_RUNTIME_CUDA_KERNELGEOMETRY_H

#include "Bind.h"
#include "loom/runtime/Decoder.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

/// A loop over `sizes` (row-major: the last dimension fastest) and, per
/// operand, the stride of each dimension in its elements.
struct StridedLoop {
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> strides; // [operand][dimension]

  int rank() const { return int(sizes.size()); }
  /// Every operand walks the loop's elements in order, one after another.
  bool contiguous() const {
    if (sizes.size() > 1)
      return false;
    for (const std::vector<int64_t> &s : strides)
      if (!s.empty() && s[0] != 1)
        return false;
    return true;
  }
  /// sizes, then each operand's strides: the kernels' geometry.
  std::vector<int64_t> flat() const {
    std::vector<int64_t> out = sizes;
    for (const std::vector<int64_t> &s : strides)
      out.insert(out.end(), s.begin(), s.end());
    return out;
  }
};

/// The same loop with size-1 dimensions dropped and dimension d merged into
/// d + 1 wherever every operand's stride[d] is stride[d + 1] · size[d + 1].
/// A loop with a zero size is left as it is (it has no elements).
inline StridedLoop collapse(const StridedLoop &loop) {
  for (int64_t s : loop.sizes)
    if (s == 0)
      return loop;
  StridedLoop out;
  out.strides.resize(loop.strides.size());
  for (size_t d = 0; d < loop.sizes.size(); ++d) {
    if (loop.sizes[d] == 1)
      continue;
    bool merge = !out.sizes.empty();
    for (size_t o = 0; merge && o < loop.strides.size(); ++o)
      merge = out.strides[o].back() == loop.strides[o][d] * loop.sizes[d];
    if (merge) {
      out.sizes.back() *= loop.sizes[d];
      for (size_t o = 0; o < loop.strides.size(); ++o)
        out.strides[o].back() = loop.strides[o][d];
      continue;
    }
    out.sizes.push_back(loop.sizes[d]);
    for (size_t o = 0; o < loop.strides.size(); ++o)
      out.strides[o].push_back(loop.strides[o][d]);
  }
  return out;
}

/// Row-major strides of `shape`.
inline std::vector<int64_t> rowMajorStrides(const Shape &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;)
    strides[d - 1] = strides[d] * shape[d];
  return strides;
}

/// Strides of an operand of `shape` broadcast to `outShape` (numpy's
/// alignment from the right): 0 along the dimensions it broadcasts, as the
/// CPU's broadcastStrides.
inline std::vector<int64_t> broadcastStrides(const Shape &shape,
                                             const Shape &outShape) {
  std::vector<int64_t> strides(outShape.size(), 0);
  int64_t stride = 1;
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    int64_t o = i + int64_t(outShape.size() - shape.size());
    strides[size_t(o)] = shape[size_t(i)] == 1 ? 0 : stride;
    stride *= shape[size_t(i)];
  }
  return strides;
}

/// The two operands of a broadcast binary op over y's shape, collapsed.
inline StridedLoop broadcastLoop(const Shape &aShape, const Shape &bShape,
                                 const Shape &yShape) {
  StridedLoop loop;
  loop.sizes = yShape;
  loop.strides = {broadcastStrides(aShape, yShape),
                  broadcastStrides(bShape, yShape)};
  return collapse(loop);
}
/// One operand broadcast to y's shape, collapsed.
inline StridedLoop broadcastLoop(const Shape &xShape, const Shape &yShape) {
  StridedLoop loop;
  loop.sizes = yShape;
  loop.strides = {broadcastStrides(xShape, yShape)};
  return collapse(loop);
}

/// y = transpose(x, perm) as a loop over y with x's stride along each of
/// y's dimensions (one operand), collapsed.
inline StridedLoop transposeLoop(const Shape &xShape,
                                 const std::vector<int64_t> &perm) {
  std::vector<int64_t> in = rowMajorStrides(xShape);
  StridedLoop loop;
  loop.strides.resize(1);
  for (int64_t p : perm) {
    loop.sizes.push_back(xShape[size_t(p)]);
    loop.strides[0].push_back(in[size_t(p)]);
  }
  return collapse(loop);
}

/// A reduction as two loops over x: the kept dimensions (output o is their
/// row-major index) and the reduced ones (in x's order), each with x's
/// strides, collapsed; `terms` is the number of elements per output.
struct ReduceLoops {
  StridedLoop kept, reduced;
  int64_t terms = 1;
  /// kept.flat() then reduced.flat(): the kernels' geometry.
  std::vector<int64_t> flat() const {
    std::vector<int64_t> out = kept.flat(), r = reduced.flat();
    out.insert(out.end(), r.begin(), r.end());
    return out;
  }
};
inline ReduceLoops reduceLoops(const Shape &xShape,
                               const std::vector<bool> &reducedDims) {
  std::vector<int64_t> strides = rowMajorStrides(xShape);
  ReduceLoops loops;
  loops.kept.strides.resize(1);
  loops.reduced.strides.resize(1);
  for (size_t d = 0; d < xShape.size(); ++d) {
    StridedLoop &l = reducedDims[d] ? loops.reduced : loops.kept;
    l.sizes.push_back(xShape[d]);
    l.strides[0].push_back(strides[d]);
    if (reducedDims[d])
      loops.terms *= xShape[d];
  }
  loops.kept = collapse(loops.kept);
  loops.reduced = collapse(loops.reduced);
  return loops;
}

/// Dropout's global indices of a rank's block: a loop over the block's
/// elements with the whole tensor's strides (one operand), collapsed, and
/// the global index of its first element (`offset`, the microbatch's first,
/// included).
struct DropoutLoop {
  StridedLoop loop;
  int64_t first = 0;
};
inline DropoutLoop dropoutLoop(const Block &block, int64_t offset) {
  DropoutLoop d;
  d.first = offset;
  d.loop.strides.resize(1);
  if (!block.split) {
    // The whole tensor: the global index is offset + i.
    d.loop.sizes = {numElements(block.local)};
    d.loop.strides[0] = {1};
    return d;
  }
  std::vector<int64_t> global = rowMajorStrides(block.global);
  for (size_t k = 0; k < block.local.size(); ++k)
    d.first += block.offset[k] * global[k];
  d.loop.sizes = block.local;
  d.loop.strides[0] = global;
  d.loop = collapse(d.loop);
  return d;
}

/// A kernel's geometry array in the instruction's device scratch, uploaded
/// once at bind time (the upload is ordered before any work on the compute
/// stream); null for an empty array.
inline Result<const long long *>
deviceGeometry(Binder &b, const std::vector<int64_t> &flat,
               const std::string &what) {
  static_assert(sizeof(long long) == sizeof(int64_t), "kernels read long long");
  if (flat.empty())
    return static_cast<const long long *>(nullptr);
  size_t bytes = flat.size() * sizeof(int64_t);
  Result<void *> p = b.scratch(bytes, what);
  if (!p.ok())
    return Status::error(p.message());
  if (Status s = b.device().upload(*p, flat.data(), bytes); !s.ok())
    return s;
  return static_cast<const long long *>(*p);
}

/// The work of a gather kernel `kernel(x, y, n, rank, geometry)` walking
/// `loop` (a broadcast, a transpose): its geometry in the instruction's
/// scratch unless the loop is contiguous (rank 0: a copy).
inline Result<Work> stridedGatherWork(Binder &b, const Instruction &inst,
                                      const char *kernel,
                                      const StridedLoop &loop, const float *x,
                                      float *y, int64_t n,
                                      const std::string &what) {
  int rank = loop.contiguous() ? 0 : loop.rank();
  const long long *geometry = nullptr;
  if (rank > 0) {
    Result<const long long *> g = deviceGeometry(b, loop.flat(), what);
    if (!g.ok())
      return Status::error(g.message());
    geometry = *g;
  }
  return launchWork(b.device(), inst,
                    launchOf(kernel, gridFor(n), kBlockThreads,
                             {x, y, KernelArg::i64v(n), KernelArg::i32v(rank),
                              geometry}));
}

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_KERNELGEOMETRY_H
