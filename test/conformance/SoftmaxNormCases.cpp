//===- SoftmaxNormCases.cpp - softmax (causal, masked), norms and grads ---===//

#include "Cases.h"

#include "loom/runtime/cpu/Kernels.h"

#include <cmath>

using namespace loom::conformance;
namespace kern = loom::runtime::cpu;
namespace plan = loom::plan;
using loom::runtime::numElements;

//===--- softmax
//--------------------------------------------------------------===//

namespace {
struct SoftmaxCase {
  Shape x;
  bool causal = false;
  double scale = 1;
  Shape mask;                     // empty: no mask
  std::vector<double> maskValues; // of the mask's shape
};

void runSoftmax(const BackendEntry &backend, const SoftmaxCase &sc) {
  OneInstruction t(backend);
  BufferId x = t.buffer("scores", plan::DType::F32, sc.x);
  BufferId mask =
      sc.mask.empty() ? -1 : t.buffer("mask", plan::DType::I1, sc.mask);
  BufferId y = t.buffer("probs", plan::DType::F32, sc.x);
  std::vector<BufferId> inputs = {x};
  if (mask >= 0)
    inputs.push_back(mask);
  t.instruction(
      Op::Softmax, inputs, {y},
      {intAttr(Attr::Causal, sc.causal), realAttr(Attr::Scale, sc.scale)});
  if (!t.prepare())
    return;
  int64_t n = numElements(sc.x);
  std::vector<double> xv = uniform(n, 81, -3, 3);
  t.upload(x, xv);
  if (mask >= 0)
    t.upload(mask, sc.maskValues);
  ASSERT_OK(t.run());
  // The reference takes the mask broadcast to the scores, one byte each.
  std::vector<uint8_t> wide;
  if (mask >= 0) {
    std::vector<double> zero = {0.0}, full(static_cast<size_t>(n));
    kern::broadcastBinary<double>(kern::BinaryKind::Add, sc.maskValues.data(),
                                  sc.mask, zero.data(), {}, full.data(), sc.x);
    wide.assign(full.begin(), full.end());
  }
  kern::SoftmaxShape s;
  s.cols = sc.x.back();
  s.rows = n / s.cols;
  s.queries = sc.x.size() >= 2 ? sc.x[sc.x.size() - 2] : 1;
  s.causal = sc.causal;
  s.scale = sc.scale;
  std::vector<double> want(static_cast<size_t>(n));
  kern::softmax<double>(s, xv.data(), mask >= 0 ? wide.data() : nullptr,
                        want.data());
  t.expect(y, want, Family::Softmax);

  // The masking from its definition, not the kernel's: query q sees key j
  // when j <= q + (keys - queries) (causal) and the mask keeps it; every
  // other probability is 0 and those are not, and a row that sees a key
  // sums to 1.
  std::vector<double> got = t.download(y);
  if (got.size() != size_t(n))
    return;
  int64_t leaks = 0, hidden = 0, badSums = 0;
  for (int64_t r = 0; r < s.rows; ++r) {
    int64_t q = r % s.queries;
    double sum = 0;
    bool sees = false;
    for (int64_t j = 0; j < s.cols; ++j) {
      bool visible = (!sc.causal || j <= q + (s.cols - s.queries)) &&
                     (mask < 0 || wide[size_t(r * s.cols + j)]);
      double p = got[size_t(r * s.cols + j)];
      leaks += !visible && p != 0;
      hidden += visible && p == 0;
      sees |= visible;
      sum += p;
    }
    badSums += sees && std::abs(sum - 1) > 1e-5;
  }
  EXPECT_EQ(leaks, 0) << "probabilities of masked keys are not 0";
  EXPECT_EQ(hidden, 0) << "keys that are not masked have probability 0";
  EXPECT_EQ(badSums, 0) << "rows that see a key do not sum to 1";
}
} // namespace

CONFORMANCE_CASE(Softmax, scaled) {
  runSoftmax(backend, {{2, 3, 5}, false, 0.5});
}
CONFORMANCE_CASE(Softmax, causal_square) {
  runSoftmax(backend, {{2, 4, 4}, true, 1});
}
// Fewer queries than keys (a cache of earlier keys): query q sees keys
// j <= q + (keys - queries).
CONFORMANCE_CASE(Softmax, causal_more_keys) {
  runSoftmax(backend, {{2, 3, 5}, true, 0.25});
}
// A padding mask broadcast over the batch; row 1 masks every key (0s out).
CONFORMANCE_CASE(Softmax, masked) {
  runSoftmax(backend, {{2, 3, 5},
                       false,
                       0.7,
                       {3, 5},
                       {1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1}});
}
CONFORMANCE_CASE(Softmax, masked_and_causal) {
  runSoftmax(backend,
             {{2, 4, 4}, true, 1, {2, 1, 4}, {1, 1, 1, 0, 0, 1, 1, 1}});
}

CONFORMANCE_CASE(SoftmaxGrad, scaled) {
  OneInstruction t(backend);
  Shape shape = {2, 3, 6};
  BufferId y = t.buffer("probs", plan::DType::F32, shape),
           dy = t.buffer("dprobs", plan::DType::F32, shape),
           dx = t.buffer("dscores", plan::DType::F32, shape);
  t.instruction(Op::SoftmaxGrad, {y, dy}, {dx}, {realAttr(Attr::Scale, 0.5)});
  if (!t.prepare())
    return;
  kern::SoftmaxShape s;
  s.rows = 6;
  s.cols = 6;
  s.scale = 1;
  // y is a softmax's output, as in a plan.
  std::vector<double> scores = uniform(36, 82, -2, 2), probs(36);
  kern::softmax<double>(s, scores.data(), nullptr, probs.data());
  std::vector<double> yv; // as the f32 buffer holds them
  for (float f : asFloats(probs))
    yv.push_back(f);
  std::vector<double> dyv = uniform(36, 83);
  t.upload(y, yv);
  t.upload(dy, dyv);
  ASSERT_OK(t.run());
  s.scale = 0.5;
  std::vector<double> want(36);
  kern::softmaxBackward<double>(s, yv.data(), dyv.data(), want.data());
  t.expect(dx, want, Family::Softmax);
}

//===--- layernorm, rmsnorm
//---------------------------------------------------===//

namespace {
void runNorm(const BackendEntry &backend, bool layer) {
  OneInstruction t(backend);
  const int64_t rows = 4, cols = 6;
  const double eps = 1e-5;
  BufferId x = t.buffer("x", plan::DType::F32, {2, 2, cols}),
           w = t.buffer("weight", plan::DType::F32, {cols}),
           b = layer ? t.buffer("bias", plan::DType::F32, {cols}) : -1,
           y = t.buffer("y", plan::DType::F32, {2, 2, cols});
  if (layer)
    t.instruction(Op::LayerNorm, {x, w, b}, {y}, {realAttr(Attr::Eps, eps)});
  else
    t.instruction(Op::RmsNorm, {x, w}, {y}, {realAttr(Attr::Eps, eps)});
  if (!t.prepare())
    return;
  // Rows off zero mean, so the mean matters.
  std::vector<double> xv = uniform(rows * cols, 91, -1, 3),
                      wv = uniform(cols, 92, 0.5, 1.5), bv = uniform(cols, 93);
  t.upload(x, xv);
  t.upload(w, wv);
  if (layer)
    t.upload(b, bv);
  ASSERT_OK(t.run());
  std::vector<double> want(size_t(rows * cols)), mean(rows), rstd(rows);
  if (layer)
    kern::layerNorm<double>(xv.data(), wv.data(), bv.data(), want.data(),
                            mean.data(), rstd.data(), rows, cols, eps);
  else
    kern::rmsNorm<double>(xv.data(), wv.data(), want.data(), rstd.data(), rows,
                          cols, eps);
  t.expect(y, want, Family::Norm);
}

void runNormGrad(const BackendEntry &backend, bool layer) {
  OneInstruction t(backend);
  const int64_t rows = 5, cols = 8;
  const double eps = 1e-5;
  BufferId x = t.buffer("x", plan::DType::F32, {rows, cols}),
           w = t.buffer("weight", plan::DType::F32, {cols}),
           dy = t.buffer("dy", plan::DType::F32, {rows, cols}),
           dx = t.buffer("dx", plan::DType::F32, {rows, cols}),
           dw = t.buffer("dweight", plan::DType::F32, {cols}),
           db = layer ? t.buffer("dbias", plan::DType::F32, {cols}) : -1;
  if (layer)
    t.instruction(Op::LayerNormGrad, {x, w, dy}, {dx, dw, db},
                  {realAttr(Attr::Eps, eps)});
  else
    t.instruction(Op::RmsNormGrad, {x, w, dy}, {dx, dw},
                  {realAttr(Attr::Eps, eps)});
  if (!t.prepare())
    return;
  std::vector<double> xv = uniform(rows * cols, 94, -1, 3),
                      wv = uniform(cols, 95, 0.5, 1.5),
                      dyv = uniform(rows * cols, 96);
  t.upload(x, xv);
  t.upload(w, wv);
  t.upload(dy, dyv);
  // The weight's and bias's gradients are results, not sums into the
  // outputs: what they held before does not count.
  t.upload(dw, uniform(cols, 97));
  if (layer)
    t.upload(db, uniform(cols, 98));
  ASSERT_OK(t.run());
  std::vector<double> y(size_t(rows * cols)), mean(rows), rstd(rows),
      zeros(size_t(cols), 0.0);
  std::vector<double> dxWant(size_t(rows * cols)), dwWant(size_t(cols), 0.0),
      dbWant(size_t(cols), 0.0);
  if (layer) {
    kern::layerNorm<double>(xv.data(), wv.data(), zeros.data(), y.data(),
                            mean.data(), rstd.data(), rows, cols, eps);
    kern::layerNormBackward<double>(xv.data(), wv.data(), mean.data(),
                                    rstd.data(), dyv.data(), dxWant.data(),
                                    dwWant.data(), dbWant.data(), rows, cols);
  } else {
    kern::rmsNorm<double>(xv.data(), wv.data(), y.data(), rstd.data(), rows,
                          cols, eps);
    kern::rmsNormBackward<double>(xv.data(), wv.data(), rstd.data(), dyv.data(),
                                  dxWant.data(), dwWant.data(), rows, cols);
  }
  t.expect(dx, dxWant, Family::Norm);
  t.expect(dw, dwWant, Family::Norm);
  if (layer)
    t.expect(db, dbWant, Family::Norm);
}
} // namespace

CONFORMANCE_CASE(LayerNorm, rows) { runNorm(backend, true); }
CONFORMANCE_CASE(RmsNorm, rows) { runNorm(backend, false); }
CONFORMANCE_CASE(LayerNormGrad, rows) { runNormGrad(backend, true); }
CONFORMANCE_CASE(RmsNormGrad, rows) { runNormGrad(backend, false); }
