//===- ElementwiseCases.cpp - arithmetic, casts, activations, fills -------===//

#include "Cases.h"
#include "Reference.h"

#include "loom/runtime/cpu/Kernels.h"

#include <cmath>
#include <limits>

using namespace loom::conformance;
namespace kern = loom::runtime::cpu;
namespace plan = loom::plan;
using loom::runtime::numElements;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

//===--- add, sub, mul, div with broadcasting
//------------------------------===//

void runBinary(const BackendEntry &backend, Op op, kern::BinaryKind kind,
               const Shape &aShape, const Shape &bShape, const Shape &yShape) {
  OneInstruction t(backend);
  BufferId a = t.buffer("a", plan::DType::F32, aShape),
           b = t.buffer("b", plan::DType::F32, bShape),
           y = t.buffer("y", plan::DType::F32, yShape);
  t.instruction(op, {a, b}, {y});
  if (!t.prepare())
    return;
  std::vector<double> av = uniform(numElements(aShape), 21);
  // A divisor away from zero.
  std::vector<double> bv = kind == kern::BinaryKind::Div
                               ? uniform(numElements(bShape), 22, 0.5, 2)
                               : uniform(numElements(bShape), 22);
  t.upload(a, av);
  t.upload(b, bv);
  ASSERT_OK(t.run());
  std::vector<double> want(size_t(numElements(yShape)));
  kern::broadcastBinary<double>(kind, av.data(), aShape, bv.data(), bShape,
                                want.data(), yShape);
  t.expect(y, want, Family::Elementwise);
}

} // namespace

CONFORMANCE_CASE(Add, same_shape) {
  runBinary(backend, Op::Add, kern::BinaryKind::Add, {2, 3, 4}, {2, 3, 4},
            {2, 3, 4});
}
CONFORMANCE_CASE(Add, broadcast_inner) {
  runBinary(backend, Op::Add, kern::BinaryKind::Add, {2, 3, 4}, {3, 1},
            {2, 3, 4});
}
CONFORMANCE_CASE(Sub, broadcast_left) {
  runBinary(backend, Op::Sub, kern::BinaryKind::Sub, {4}, {2, 3, 4}, {2, 3, 4});
}
CONFORMANCE_CASE(Mul, broadcast_both) {
  runBinary(backend, Op::Mul, kern::BinaryKind::Mul, {2, 1, 4}, {3, 1},
            {2, 3, 4});
}
CONFORMANCE_CASE(Div, by_a_scalar) {
  runBinary(backend, Op::Div, kern::BinaryKind::Div, {2, 3, 4}, {1}, {2, 3, 4});
}
CONFORMANCE_CASE(Div, same_shape) {
  runBinary(backend, Op::Div, kern::BinaryKind::Div, {3, 5}, {3, 5}, {3, 5});
}

//===--- neg, scale, accumulate -------------------------------------------===//

namespace {
void runScale(const BackendEntry &backend, Op op, std::vector<AttrValue> attrs,
              double factor, bool accumulate) {
  OneInstruction t(backend);
  BufferId x = t.buffer("x", plan::DType::F32, {3, 7}),
           y = t.buffer("y", plan::DType::F32, {21});
  t.instruction(op, {x}, {y}, std::move(attrs));
  if (!t.prepare())
    return;
  std::vector<double> xv = uniform(21, 31), yv = uniform(21, 32);
  t.upload(x, xv);
  t.upload(y, yv);
  ASSERT_OK(t.run());
  std::vector<double> want(21);
  for (size_t i = 0; i < want.size(); ++i)
    want[i] = accumulate ? yv[i] + xv[i] : factor * xv[i];
  t.expect(y, want, Family::Elementwise);
}
} // namespace

CONFORMANCE_CASE(Neg, plain) { runScale(backend, Op::Neg, {}, -1, false); }
CONFORMANCE_CASE(Scale, factor) {
  runScale(backend, Op::Scale, {realAttr(Attr::Factor, 0.125)}, 0.125, false);
}
CONFORMANCE_CASE(Scale, negative_factor) {
  runScale(backend, Op::Scale, {realAttr(Attr::Factor, -3.5)}, -3.5, false);
}
CONFORMANCE_CASE(Accumulate, into_the_output) {
  runScale(backend, Op::Accumulate, {}, 1, true);
}

//===--- cast
//----------------------------------------------------------------===//

namespace {
/// Casts `values` (stored as `from`) to `to`; with `accumulate`, added to
/// what the output holds. The reference rounds the exact result once.
void runCast(const BackendEntry &backend, plan::DType from, plan::DType to,
             const std::vector<double> &values, bool accumulate = false) {
  OneInstruction t(backend);
  int64_t n = int64_t(values.size());
  BufferId x = t.buffer("x", from, {n}), y = t.buffer("y", to, {n});
  std::vector<AttrValue> attrs;
  if (accumulate)
    attrs.push_back(intAttr(Attr::Accumulate, 1));
  t.instruction(Op::Cast, {x}, {y}, std::move(attrs));
  if (!t.prepare())
    return;
  std::vector<double> before = uniform(n, 41, -1, 1, to);
  // What the input buffer holds: the specials rounded to its type.
  std::vector<double> stored = values;
  if (from != plan::DType::I32)
    for (double &v : stored)
      v = reference::roundTo(v, from);
  t.upload(x, stored);
  t.upload(y, before);
  ASSERT_OK(t.run());
  std::vector<double> want(values.size());
  for (size_t i = 0; i < want.size(); ++i)
    want[i] =
        reference::roundTo(accumulate ? before[i] + stored[i] : stored[i], to);
  t.expect(y, want, Family::Cast);
}

/// Random values with the cases rounding gets wrong: ties (to even),
/// subnormals, overflow, infinities and NaN.
std::vector<double> withSpecials(std::vector<double> values,
                                 std::vector<double> specials) {
  values.insert(values.end(), specials.begin(), specials.end());
  return values;
}
} // namespace

CONFORMANCE_CASE(Cast, f32_to_bf16) {
  runCast(
      backend, plan::DType::F32, plan::DType::BF16,
      withSpecials(uniform(40, 42, -3, 3),
                   {0.0, -0.0, 1.0, 1 + 0x1p-8, 1 + 3 * 0x1p-8, -1 - 0x1p-8,
                    1 + 0x1p-8 + 0x1p-20, 1e-40, 3.4e38, kInf, -kInf, kNaN}));
}
CONFORMANCE_CASE(Cast, bf16_to_f32) {
  runCast(backend, plan::DType::BF16, plan::DType::F32,
          withSpecials(uniform(40, 43, -3, 3, plan::DType::BF16),
                       {0.0, 0x1p-130, 0x1p127, kInf, kNaN}));
}
CONFORMANCE_CASE(Cast, f32_to_f16) {
  runCast(backend, plan::DType::F32, plan::DType::F16,
          withSpecials(uniform(40, 44, -3, 3),
                       {0.0, 1 + 0x1p-11, 1 + 3 * 0x1p-11, 65504, 65519, 65520,
                        -70000, 1e-6, 6e-8, 2e-8, 0x1p-14, kInf, kNaN}));
}
CONFORMANCE_CASE(Cast, f16_to_f32) {
  runCast(backend, plan::DType::F16, plan::DType::F32,
          withSpecials(uniform(40, 45, -3, 3, plan::DType::F16),
                       {0.0, 0x1p-24, 65504, -kInf, kNaN}));
}
CONFORMANCE_CASE(Cast, i32_to_f32) {
  runCast(backend, plan::DType::I32, plan::DType::F32,
          withSpecials(integers(20, 46, -1000, 1000),
                       {0, 16777217, -16777219, 2147483647, -2147483648.0}));
}
CONFORMANCE_CASE(Cast, i32_to_bf16) {
  runCast(backend, plan::DType::I32, plan::DType::BF16,
          withSpecials(integers(20, 47, -1000, 1000), {257, 259, 65535}));
}
// A bf16 gradient added into its f32 master gradient.
CONFORMANCE_CASE(Cast, bf16_to_f32_accumulate) {
  runCast(backend, plan::DType::BF16, plan::DType::F32,
          uniform(30, 48, -1, 1, plan::DType::BF16), /*accumulate=*/true);
}

//===--- activations and their gradients
//-----------------------------------===//

namespace {
void runActivation(const BackendEntry &backend, Op op, kern::Activation kind,
                   bool grad, std::vector<AttrValue> attrs = {}) {
  OneInstruction t(backend);
  const int64_t n = 40;
  BufferId x = t.buffer("x", plan::DType::F32, {4, 10}),
           dy = grad ? t.buffer("dy", plan::DType::F32, {4, 10}) : -1,
           y = t.buffer(grad ? "dx" : "y", plan::DType::F32, {4, 10});
  if (grad)
    t.instruction(op, {x, dy}, {y}, std::move(attrs));
  else
    t.instruction(op, {x}, {y}, std::move(attrs));
  if (!t.prepare())
    return;
  std::vector<double> xv = uniform(n, 51, -4, 4), dyv = uniform(n, 52);
  t.upload(x, xv);
  if (grad)
    t.upload(dy, dyv);
  ASSERT_OK(t.run());
  std::vector<double> want(static_cast<size_t>(n));
  if (grad)
    kern::activationBackward<double>(kind, xv.data(), dyv.data(), want.data(),
                                     n);
  else
    kern::activation<double>(kind, xv.data(), want.data(), n);
  t.expect(y, want, Family::Activation);
}
} // namespace

CONFORMANCE_CASE(Relu, plain) {
  runActivation(backend, Op::Relu, kern::Activation::Relu, false);
}
CONFORMANCE_CASE(Silu, plain) {
  runActivation(backend, Op::Silu, kern::Activation::Silu, false);
}
CONFORMANCE_CASE(Gelu, erf) {
  runActivation(backend, Op::Gelu, kern::Activation::Gelu, false,
                {textAttr(Attr::Approximate, "none")});
}
CONFORMANCE_CASE(Gelu, tanh) {
  runActivation(backend, Op::Gelu, kern::Activation::GeluTanh, false,
                {textAttr(Attr::Approximate, "tanh")});
}
CONFORMANCE_CASE(ReluGrad, plain) {
  runActivation(backend, Op::ReluGrad, kern::Activation::Relu, true);
}
CONFORMANCE_CASE(SiluGrad, plain) {
  runActivation(backend, Op::SiluGrad, kern::Activation::Silu, true);
}
CONFORMANCE_CASE(GeluGrad, erf) {
  runActivation(backend, Op::GeluGrad, kern::Activation::Gelu, true,
                {textAttr(Attr::Approximate, "none")});
}
CONFORMANCE_CASE(GeluGrad, tanh) {
  runActivation(backend, Op::GeluGrad, kern::Activation::GeluTanh, true,
                {textAttr(Attr::Approximate, "tanh")});
}

//===--- broadcast, fill, loss_grad_seed
//------------------------------------===//

namespace {
void runBroadcast(const BackendEntry &backend, const Shape &xShape,
                  const Shape &yShape) {
  OneInstruction t(backend);
  BufferId x = t.buffer("x", plan::DType::F32, xShape),
           y = t.buffer("y", plan::DType::F32, yShape);
  t.instruction(Op::Broadcast, {x}, {y});
  if (!t.prepare())
    return;
  std::vector<double> xv = uniform(numElements(xShape), 61);
  t.upload(x, xv);
  ASSERT_OK(t.run());
  std::vector<double> zero = {0.0}, want(size_t(numElements(yShape)));
  kern::broadcastBinary<double>(kern::BinaryKind::Add, xv.data(), xShape,
                                zero.data(), {}, want.data(), yShape);
  t.expect(y, want, Family::Elementwise);
}

void runFill(const BackendEntry &backend, Op op, plan::DType dtype,
             double value, double lossScale, double expected) {
  OneInstruction t(backend);
  BufferId y = t.buffer("y", dtype, {3, 5});
  t.instruction(op, {}, {y}, {realAttr(Attr::Value, value)});
  if (!t.prepare())
    return;
  t.upload(y, uniform(15, 62, -1, 1, dtype));
  StepParams params;
  params.lossScale = lossScale;
  ASSERT_OK(t.run(params));
  t.expect(y, std::vector<double>(15, expected), Family::Elementwise);
}
} // namespace

CONFORMANCE_CASE(Broadcast, inner_ones) {
  runBroadcast(backend, {3, 1}, {2, 3, 4});
}
CONFORMANCE_CASE(Broadcast, leading) { runBroadcast(backend, {4}, {2, 3, 4}); }
CONFORMANCE_CASE(Fill, value) {
  runFill(backend, Op::Fill, plan::DType::F32, 0.375, 1, 0.375);
}
CONFORMANCE_CASE(Fill, bf16_value) {
  runFill(backend, Op::Fill, plan::DType::BF16, -2.5, 1, -2.5);
}
// The loss gradient's seed is the step's loss scale, not the attribute.
CONFORMANCE_CASE(LossGradSeed, loss_scale) {
  runFill(backend, Op::LossGradSeed, plan::DType::F32, 1, 1024, 1024);
}
CONFORMANCE_CASE(LossGradSeed, unscaled) {
  runFill(backend, Op::LossGradSeed, plan::DType::F32, 1, 1, 1);
}

//===--- dropout
//------------------------------------------------------------===//

namespace {
struct DropoutCase {
  Op op;
  Shape global;
  std::vector<int64_t> shardAxis; // empty: the whole tensor
  int64_t tp = 1;
};

/// Runs the op on every block of the tensor (one executor per tp
/// coordinate) and compares each with the whole tensor's dropout at the
/// block: a partition draws the mask the whole tensor draws.
void runDropout(const BackendEntry &backend, const DropoutCase &dc) {
  const double rate = 0.3;
  const std::string site = "layers.1.attention_dropout";
  StepParams params;
  params.seed = 99;
  params.step = 3;
  params.microbatch = 1;
  int64_t globalN = numElements(dc.global);
  std::vector<double> whole = uniform(globalN, 71);
  std::vector<double> masked(static_cast<size_t>(globalN));
  kern::dropout<double>(
      whole.data(), masked.data(), globalN, params.microbatch * globalN, rate,
      kern::dropoutKey(params.seed, site, uint64_t(params.step)));
  int64_t dropped = 0;
  for (double v : masked)
    dropped += v == 0;
  ASSERT_GT(dropped, 0);
  ASSERT_LT(dropped, globalN);

  Shape local = dc.global;
  int64_t splitDim = -1;
  for (size_t d = 0; d < dc.shardAxis.size(); ++d)
    if (dc.shardAxis[d] >= 0) {
      local[d] /= dc.tp;
      splitDim = int64_t(d);
    }
  for (int64_t coord = 0; coord < dc.tp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, dc.tp);
    BufferId x = t.buffer("x", plan::DType::F32, local),
             y = t.buffer("y", plan::DType::F32, local);
    std::vector<AttrValue> attrs = {realAttr(Attr::Rate, rate),
                                    textAttr(Attr::Site, site)};
    if (!dc.shardAxis.empty()) {
      attrs.push_back(intsAttr(Attr::ShardAxis, dc.shardAxis));
      attrs.push_back(intsAttr(Attr::GlobalShape, dc.global));
    }
    t.instruction(dc.op, {x}, {y}, std::move(attrs));
    if (!t.prepare({0, 0, coord}))
      return;
    std::vector<int64_t> offset(local.size(), 0);
    if (splitDim >= 0)
      offset[size_t(splitDim)] = coord * local[size_t(splitDim)];
    t.upload(x, blockOf(whole, dc.global, local, offset));
    ASSERT_OK(t.run(params));
    t.expect(y, blockOf(masked, dc.global, local, offset), Family::Dropout);
  }
}
} // namespace

CONFORMANCE_CASE(Dropout, whole) {
  runDropout(backend, {Op::Dropout, {2, 3, 8}, {}, 1});
}
// Columns split over a 2-rank tp axis: each rank's block is strided in the
// whole tensor.
CONFORMANCE_CASE(Dropout, block_of_columns) {
  runDropout(backend, {Op::Dropout, {2, 3, 8}, {-1, -1, 2}, 2});
}
CONFORMANCE_CASE(Dropout, block_of_rows) {
  runDropout(backend, {Op::Dropout, {6, 5}, {2, -1}, 2});
}
CONFORMANCE_CASE(DropoutGrad, whole) {
  runDropout(backend, {Op::DropoutGrad, {5, 7}, {}, 1});
}
CONFORMANCE_CASE(DropoutGrad, block_of_columns) {
  runDropout(backend, {Op::DropoutGrad, {3, 2, 6}, {-1, -1, 2}, 2});
}
