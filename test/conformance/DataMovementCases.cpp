//===- DataMovementCases.cpp - reduce, transpose, split, concat, zero -----===//

#include "Cases.h"
#include "Reference.h"

#include "loom/runtime/cpu/Kernels.h"

using namespace loom::conformance;
namespace kern = loom::runtime::cpu;
namespace plan = loom::plan;
using loom::runtime::numElements;

//===--- reduce
//--------------------------------------------------------------===//

namespace {
void runReduce(const BackendEntry &backend, const char *kind,
               reference::Reduction reduction, const Shape &x,
               const std::vector<int64_t> &dims, const Shape &y) {
  OneInstruction t(backend);
  BufferId xb = t.buffer("x", plan::DType::F32, x),
           yb = t.buffer("y", plan::DType::F32, y);
  t.instruction(Op::Reduce, {xb}, {yb},
                {textAttr(Attr::Kind, kind), intsAttr(Attr::Dims, dims)});
  if (!t.prepare())
    return;
  std::vector<double> xv = uniform(numElements(x), 141, -2, 2);
  t.upload(xb, xv);
  ASSERT_OK(t.run());
  std::vector<bool> reduced(x.size(), false);
  for (int64_t d : dims)
    reduced[size_t(d)] = true;
  std::vector<double> want(static_cast<size_t>(numElements(y)));
  kern::reduceDims<double>(
      xv.data(), x, reduced, reduction == reference::Reduction::Max,
      reduction == reference::Reduction::Mean, want.data(), numElements(y));
  expectReferencesAgree(want, reference::reduce(xv, x, dims, reduction),
                        "reduce");
  t.expect(yb, want, Family::Reduction);
}
} // namespace

// A bias gradient: the sum over the leading dimensions.
CONFORMANCE_CASE(Reduce, sum_leading) {
  runReduce(backend, "sum", reference::Reduction::Sum, {2, 3, 4}, {0, 1}, {4});
}
// The reduced dimension kept as 1.
CONFORMANCE_CASE(Reduce, sum_middle_kept) {
  runReduce(backend, "sum", reference::Reduction::Sum, {2, 3, 4}, {1},
            {2, 1, 4});
}
CONFORMANCE_CASE(Reduce, sum_everything) {
  runReduce(backend, "sum", reference::Reduction::Sum, {2, 3, 4}, {0, 1, 2},
            {});
}
CONFORMANCE_CASE(Reduce, mean_outer_and_inner) {
  runReduce(backend, "mean", reference::Reduction::Mean, {2, 3, 4}, {0, 2},
            {3});
}
CONFORMANCE_CASE(Reduce, max_last) {
  runReduce(backend, "max", reference::Reduction::Max, {2, 3, 5}, {2}, {2, 3});
}
CONFORMANCE_CASE(Reduce, max_leading) {
  runReduce(backend, "max", reference::Reduction::Max, {4, 3}, {0}, {3});
}

//===--- transpose
//-----------------------------------------------------------===//

namespace {
void runTranspose(const BackendEntry &backend, const Shape &x,
                  const std::vector<int64_t> &perm) {
  Shape y;
  for (int64_t d : perm)
    y.push_back(x[size_t(d)]);
  OneInstruction t(backend);
  BufferId xb = t.buffer("x", plan::DType::F32, x),
           yb = t.buffer("y", plan::DType::F32, y);
  t.instruction(Op::Transpose, {xb}, {yb}, {intsAttr(Attr::Permutation, perm)});
  if (!t.prepare())
    return;
  std::vector<double> xv = uniform(numElements(x), 151);
  t.upload(xb, xv);
  ASSERT_OK(t.run());
  std::vector<double> want(xv.size());
  kern::transpose<double>(xv.data(), x, perm, want.data());
  t.expect(yb, want, Family::DataMovement);
}
} // namespace

CONFORMANCE_CASE(Transpose, matrix) { runTranspose(backend, {3, 5}, {1, 0}); }
// Attention's heads: [b, s, h] -> [h, b, s].
CONFORMANCE_CASE(Transpose, rotate_rank3) {
  runTranspose(backend, {2, 3, 4}, {2, 0, 1});
}
CONFORMANCE_CASE(Transpose, swap_middle_rank4) {
  runTranspose(backend, {2, 3, 4, 5}, {0, 2, 1, 3});
}

//===--- split, concat
//-------------------------------------------------------===//

namespace {
/// Splits `whole` along `axis` into pieces of the given sizes (or
/// concatenates them back), compared with the blocks of the whole.
void runSplitConcat(const BackendEntry &backend, bool split, const Shape &whole,
                    int64_t axis, const std::vector<int64_t> &sizes) {
  OneInstruction t(backend);
  BufferId wb = t.buffer("whole", plan::DType::F32, whole);
  std::vector<BufferId> pieces;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Shape s = whole;
    s[size_t(axis)] = sizes[i];
    shapes.push_back(s);
    pieces.push_back(
        t.buffer("piece" + std::to_string(i), plan::DType::F32, s));
  }
  if (split)
    t.instruction(Op::Split, {wb}, pieces, {intAttr(Attr::Axis, axis)});
  else
    t.instruction(Op::Concat, pieces, {wb}, {intAttr(Attr::Axis, axis)});
  if (!t.prepare())
    return;
  std::vector<double> wv = uniform(numElements(whole), 161);
  std::vector<std::vector<double>> blocks;
  int64_t at = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<int64_t> offset(whole.size(), 0);
    offset[size_t(axis)] = at;
    at += sizes[i];
    blocks.push_back(blockOf(wv, whole, shapes[i], offset));
  }
  if (split)
    t.upload(wb, wv);
  else
    for (size_t i = 0; i < pieces.size(); ++i)
      t.upload(pieces[i], blocks[i]);
  ASSERT_OK(t.run());
  if (split)
    for (size_t i = 0; i < pieces.size(); ++i)
      t.expect(pieces[i], blocks[i], Family::DataMovement);
  else
    t.expect(wb, wv, Family::DataMovement);
}
} // namespace

CONFORMANCE_CASE(Split, middle_axis) {
  runSplitConcat(backend, true, {2, 5, 3}, 1, {2, 3});
}
// q, k, v out of one projection.
CONFORMANCE_CASE(Split, last_axis_three) {
  runSplitConcat(backend, true, {2, 9}, 1, {3, 3, 3});
}
CONFORMANCE_CASE(Split, first_axis) {
  runSplitConcat(backend, true, {6, 4}, 0, {1, 2, 3});
}
CONFORMANCE_CASE(Concat, middle_axis) {
  runSplitConcat(backend, false, {2, 5, 3}, 1, {2, 3});
}
CONFORMANCE_CASE(Concat, first_axis) {
  runSplitConcat(backend, false, {6, 4}, 0, {1, 2, 3});
}

//===--- zero
//----------------------------------------------------------------===//

// Clears buffers of any element type; Executor::zero clears one too.
CONFORMANCE_CASE(Zero, every_type) {
  OneInstruction t(backend);
  BufferId f = t.buffer("f32", plan::DType::F32, {5}),
           i = t.buffer("i32", plan::DType::I32, {3}),
           h = t.buffer("bf16", plan::DType::BF16, {7}),
           m = t.buffer("mask", plan::DType::I1, {4}),
           p = t.buffer("grad", plan::DType::F32, {2, 3},
                        plan::Arena::Persistent),
           kept = t.buffer("kept", plan::DType::F32, {3});
  t.instruction(Op::Zero, {}, {f, i, h, m, p});
  if (!t.prepare())
    return;
  std::vector<double> keptValues = uniform(3, 171);
  t.upload(f, uniform(5, 172));
  t.upload(i, {7, -3, 12});
  t.upload(h, uniform(7, 173, -1, 1, plan::DType::BF16));
  t.upload(m, {1, 1, 0, 1});
  t.upload(p, uniform(6, 174));
  t.upload(kept, keptValues);
  ASSERT_OK(t.run());
  t.expect(f, std::vector<double>(5, 0.0), Family::DataMovement);
  t.expect(i, std::vector<double>(3, 0.0), Family::DataMovement);
  t.expect(h, std::vector<double>(7, 0.0), Family::DataMovement);
  t.expect(m, std::vector<double>(4, 0.0), Family::DataMovement);
  t.expect(p, std::vector<double>(6, 0.0), Family::DataMovement);
  t.expect(kept, keptValues, Family::DataMovement, "a buffer not zeroed");
  t.upload(i, {1, 2, 3});
  ASSERT_OK(t.executor().zero(i));
  t.expect(i, std::vector<double>(3, 0.0), Family::DataMovement,
           "Executor::zero");
}
