//===- CrossEntropyCases.cpp - cross-entropy whole and vocabulary-parallel ===//
//
// The whole op on every reduction and with ignored tokens; the
// vocabulary-parallel pieces (per-block partials, their combination, and
// both backwards) each against their definition and, chained over the
// blocks of a 2-rank tp axis, against the whole op.
//
//===----------------------------------------------------------------------===//

#include "Cases.h"
#include "Reference.h"

#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>

using namespace loom::conformance;
namespace kern = loom::runtime::cpu;
namespace plan = loom::plan;
namespace rt = loom::runtime;
using loom::runtime::numElements;

namespace {

const int64_t kIgnore = -100;
const int64_t kTokens = 6; // [2, 3]

std::vector<int64_t> asLabels(const std::vector<double> &labels) {
  return std::vector<int64_t>(labels.begin(), labels.end());
}

int64_t countedOf(const std::vector<double> &labels, int64_t ignore) {
  return std::count_if(labels.begin(), labels.end(),
                       [&](double l) { return int64_t(l) != ignore; });
}

//===--- The whole op
//-------------------------------------------------------===//

struct WholeCase {
  std::string reduction;
  std::vector<double> labels; // kTokens of them
  int64_t ignore = kIgnore;
};

void runCrossEntropy(const BackendEntry &backend, const WholeCase &wc) {
  const int64_t vocab = 7;
  bool perToken = wc.reduction == "none";
  OneInstruction t(backend);
  BufferId logits = t.buffer("logits", plan::DType::F32, {2, 3, vocab}),
           labels = t.buffer("labels", plan::DType::I32, {2, 3}),
           loss = t.buffer("loss", plan::DType::F32,
                           perToken ? Shape{2, 3} : Shape{});
  if (!perToken)
    t.sketch().setLoss(loss);
  t.instruction(Op::CrossEntropy, {logits, labels}, {loss},
                {textAttr(Attr::Reduction, wc.reduction),
                 intAttr(Attr::IgnoreIndex, wc.ignore)});
  if (!t.prepare())
    return;
  std::vector<double> lv = uniform(kTokens * vocab, 121, -2, 2);
  t.upload(logits, lv);
  t.upload(labels, wc.labels);
  ASSERT_OK(t.run());

  std::vector<int64_t> labelv = asLabels(wc.labels);
  std::vector<double> losses(kTokens);
  int64_t counted = kern::crossEntropy<double, int64_t>(
      lv.data(), labelv.data(), kTokens, vocab, wc.ignore, losses.data());
  ASSERT_EQ(counted, countedOf(wc.labels, wc.ignore));
  double sum = 0;
  for (double l : losses)
    sum += l;
  std::vector<double> want =
      perToken ? losses
               : std::vector<double>{wc.reduction == "sum" ? sum
                                     : counted ? sum / double(counted)
                                               : 0.0};
  t.expect(loss, want, Family::CrossEntropy);
  if (perToken)
    return;
  // The step's loss sum reads the scalar through the executor.
  ASSERT_OK(t.executor().accumulateLoss(loss));
  auto outputs = t.executor().readStepOutputs();
  ASSERT_TRUE(outputs.ok()) << outputs.message();
  expectClose({outputs->lossSum}, want, backend.tolerance(Family::CrossEntropy),
              "StepOutputs.lossSum");
}

} // namespace

CONFORMANCE_CASE(CrossEntropy, per_token) {
  runCrossEntropy(backend, {"none", {1, 6, 0, 3, kIgnore, 2}});
}
CONFORMANCE_CASE(CrossEntropy, sum) {
  runCrossEntropy(backend, {"sum", {4, kIgnore, 0, 6, 5, 5}});
}
CONFORMANCE_CASE(CrossEntropy, mean) {
  runCrossEntropy(backend, {"mean", {4, kIgnore, 0, 6, kIgnore, 1}});
}
CONFORMANCE_CASE(CrossEntropy, mean_of_no_tokens) {
  runCrossEntropy(backend,
                  {"mean", std::vector<double>(kTokens, double(kIgnore))});
}
CONFORMANCE_CASE(CrossEntropy, ignore_index_zero) {
  runCrossEntropy(backend, {"sum", {0, 3, 0, 6, 2, 0}, 0});
}
CONFORMANCE_CASE(CrossEntropy, out_of_range_label) {
  OneInstruction t(backend);
  BufferId logits = t.buffer("logits", plan::DType::F32, {3, 5}),
           labels = t.buffer("labels", plan::DType::I32, {3}),
           loss = t.buffer("loss", plan::DType::F32, {});
  t.instruction(
      Op::CrossEntropy, {logits, labels}, {loss},
      {textAttr(Attr::Reduction, "sum"), intAttr(Attr::IgnoreIndex, kIgnore)});
  if (!t.prepare())
    return;
  t.upload(logits, uniform(15, 122));
  t.upload(labels, {0, 5, 1});
  rt::Status s = t.run();
  ASSERT_FALSE(s.ok()) << "a label outside the classes ran without an error";
  EXPECT_NE(s.message().find("cross_entropy"), std::string::npos)
      << s.message();
}

namespace {
void runCrossEntropyGrad(const BackendEntry &backend, const WholeCase &wc) {
  const int64_t vocab = 7;
  bool perToken = wc.reduction == "none";
  OneInstruction t(backend);
  BufferId logits = t.buffer("logits", plan::DType::F32, {2, 3, vocab}),
           labels = t.buffer("labels", plan::DType::I32, {2, 3}),
           dloss = t.buffer("dloss", plan::DType::F32,
                            perToken ? Shape{2, 3} : Shape{}),
           dlogits = t.buffer("dlogits", plan::DType::F32, {2, 3, vocab});
  t.instruction(Op::CrossEntropyGrad, {logits, labels, dloss}, {dlogits},
                {textAttr(Attr::Reduction, wc.reduction),
                 intAttr(Attr::IgnoreIndex, wc.ignore)});
  if (!t.prepare())
    return;
  std::vector<double> lv = uniform(kTokens * vocab, 123, -2, 2),
                      dv = uniform(perToken ? kTokens : 1, 124, 0.5, 2);
  t.upload(logits, lv);
  t.upload(labels, wc.labels);
  t.upload(dloss, dv);
  ASSERT_OK(t.run());
  int64_t counted = countedOf(wc.labels, wc.ignore);
  std::vector<double> perTokenDloss(kTokens);
  for (int64_t i = 0; i < kTokens; ++i)
    perTokenDloss[size_t(i)] = perToken                ? dv[size_t(i)]
                               : wc.reduction == "sum" ? dv[0]
                               : counted               ? dv[0] / double(counted)
                                                       : 0.0;
  std::vector<int64_t> labelv = asLabels(wc.labels);
  std::vector<double> want(size_t(kTokens * vocab));
  ASSERT_TRUE((kern::crossEntropyBackward<double, int64_t>(
      lv.data(), labelv.data(), perTokenDloss.data(), kTokens, vocab, wc.ignore,
      want.data())));
  t.expect(dlogits, want, Family::CrossEntropy);
}
} // namespace

CONFORMANCE_CASE(CrossEntropyGrad, per_token) {
  runCrossEntropyGrad(backend, {"none", {1, 6, 0, 3, kIgnore, 2}});
}
CONFORMANCE_CASE(CrossEntropyGrad, sum) {
  runCrossEntropyGrad(backend, {"sum", {4, kIgnore, 0, 6, 5, 5}});
}
CONFORMANCE_CASE(CrossEntropyGrad, mean) {
  runCrossEntropyGrad(backend, {"mean", {4, kIgnore, 0, 6, kIgnore, 1}});
}

//===--- The vocabulary-parallel pieces
//-------------------------------------===//

namespace {

const int64_t kClasses = 8, kTp = 2, kBlock = kClasses / kTp;
const std::vector<double> kSplitLabels = {1, 7, kIgnore, 4, 3, 0};

/// The whole logits [2, 3, 8] and each token's max over its whole row (in
/// a plan: an all_reduce max of the blocks' maxima).
struct SplitLogits {
  std::vector<double> whole, max;
  SplitLogits() : whole(uniform(kTokens * kClasses, 131, -3, 3)) {
    for (int64_t t = 0; t < kTokens; ++t)
      max.push_back(*std::max_element(whole.begin() + t * kClasses,
                                      whole.begin() + (t + 1) * kClasses));
  }
  std::vector<double> block(int64_t coord) const {
    return blockOf(whole, {2, 3, kClasses}, {2, 3, kBlock},
                   {0, 0, coord * kBlock});
  }
};

std::vector<AttrValue> splitAttrs() {
  return {intAttr(Attr::IgnoreIndex, kIgnore),
          intsAttr(Attr::ShardAxis, {-1, -1, 2}),
          intsAttr(Attr::GlobalShape, {2, 3, kClasses})};
}

/// Runs cross_entropy_combine on the backend: the per-token loss.
std::vector<double> runCombine(const BackendEntry &backend,
                               const std::vector<double> &sumExp,
                               const std::vector<double> &target,
                               const std::vector<double> &labels) {
  OneInstruction t(backend);
  BufferId s = t.buffer("sum_exp", plan::DType::F32, {2, 3}),
           g = t.buffer("target", plan::DType::F32, {2, 3}),
           l = t.buffer("labels", plan::DType::I32, {2, 3}),
           y = t.buffer("loss", plan::DType::F32, {2, 3});
  t.instruction(Op::CrossEntropyCombine, {s, g, l}, {y},
                {intAttr(Attr::IgnoreIndex, kIgnore)});
  if (!t.prepare())
    return {};
  t.upload(s, sumExp);
  t.upload(g, target);
  t.upload(l, labels);
  EXPECT_OK(t.run());
  std::vector<int64_t> labelv = asLabels(labels);
  std::vector<double> want(sumExp.size());
  kern::crossEntropyCombine<double, int64_t>(sumExp.data(), target.data(),
                                             labelv.data(), kTokens, kIgnore,
                                             want.data());
  expectReferencesAgree(
      want, reference::crossEntropyCombine(sumExp, target, labels, kIgnore),
      "cross_entropy_combine");
  t.expect(y, want, Family::CrossEntropy);
  return t.download(y);
}

/// Runs cross_entropy_combine_grad on the backend: the coefficients a, b.
void runCombineGrad(const BackendEntry &backend,
                    const std::vector<double> &sumExp,
                    const std::vector<double> &labels,
                    const std::vector<double> &dloss, std::vector<double> &a,
                    std::vector<double> &b) {
  OneInstruction t(backend);
  BufferId s = t.buffer("sum_exp", plan::DType::F32, {2, 3}),
           l = t.buffer("labels", plan::DType::I32, {2, 3}),
           d = t.buffer("dloss", plan::DType::F32, {2, 3}),
           ya = t.buffer("a", plan::DType::F32, {2, 3}),
           yb = t.buffer("b", plan::DType::F32, {2, 3});
  t.instruction(Op::CrossEntropyCombineGrad, {s, l, d}, {ya, yb},
                {intAttr(Attr::IgnoreIndex, kIgnore)});
  if (!t.prepare())
    return;
  t.upload(s, sumExp);
  t.upload(l, labels);
  t.upload(d, dloss);
  EXPECT_OK(t.run());
  std::vector<int64_t> labelv = asLabels(labels);
  std::vector<double> wantA(sumExp.size()), wantB(sumExp.size()), defA, defB;
  kern::crossEntropyCombineBackward<double, int64_t>(
      sumExp.data(), labelv.data(), dloss.data(), kTokens, kIgnore,
      wantA.data(), wantB.data());
  reference::crossEntropyCombineGrad(sumExp, labels, dloss, kIgnore, defA,
                                     defB);
  expectReferencesAgree(wantA, defA, "cross_entropy_combine_grad's a");
  expectReferencesAgree(wantB, defB, "cross_entropy_combine_grad's b");
  t.expect(ya, wantA, Family::CrossEntropy);
  t.expect(yb, wantB, Family::CrossEntropy);
  a = t.download(ya);
  b = t.download(yb);
}

/// The whole cross-entropy per token, in double.
std::vector<double> wholeLosses(const std::vector<double> &logits,
                                int64_t classes,
                                const std::vector<double> &labels) {
  std::vector<int64_t> labelv = asLabels(labels);
  std::vector<double> losses(kTokens);
  EXPECT_GE((kern::crossEntropy<double, int64_t>(logits.data(), labelv.data(),
                                                 kTokens, classes, kIgnore,
                                                 losses.data())),
            0);
  return losses;
}

} // namespace

// Each tp rank's partials over its block of the classes; summed over the
// ranks (the all-reduce) and combined, the whole cross-entropy.
CONFORMANCE_CASE(CrossEntropyPartials, blocks_combine_to_the_whole) {
  SplitLogits logits;
  std::vector<double> sumExp(kTokens, 0.0), target(kTokens, 0.0);
  for (int64_t coord = 0; coord < kTp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, kTp);
    BufferId z = t.buffer("logits", plan::DType::F32, {2, 3, kBlock}),
             m = t.buffer("max", plan::DType::F32, {2, 3}),
             l = t.buffer("labels", plan::DType::I32, {2, 3}),
             s = t.buffer("sum_exp", plan::DType::F32, {2, 3}),
             g = t.buffer("target", plan::DType::F32, {2, 3});
    t.instruction(Op::CrossEntropyPartials, {z, m, l}, {s, g}, splitAttrs());
    if (!t.prepare({0, 0, coord}))
      return;
    std::vector<double> block = logits.block(coord);
    t.upload(z, block);
    t.upload(m, logits.max);
    t.upload(l, kSplitLabels);
    ASSERT_OK(t.run());
    std::vector<int64_t> labelv = asLabels(kSplitLabels);
    std::vector<double> wantS(kTokens), wantG(kTokens), defS, defG;
    ASSERT_TRUE((kern::crossEntropyPartials<double, int64_t>(
        block.data(), logits.max.data(), labelv.data(), kTokens, kBlock,
        coord * kBlock, kClasses, kIgnore, wantS.data(), wantG.data())));
    reference::crossEntropyPartials(block, logits.max, kSplitLabels, kTokens,
                                    kBlock, coord * kBlock, kIgnore, defS,
                                    defG);
    expectReferencesAgree(wantS, defS, "cross_entropy_partials' sum of exp");
    expectReferencesAgree(wantG, defG, "cross_entropy_partials' target");
    t.expect(s, wantS, Family::CrossEntropy);
    t.expect(g, wantG, Family::CrossEntropy);
    std::vector<double> gotS = t.download(s), gotG = t.download(g);
    ASSERT_EQ(gotS.size(), size_t(kTokens));
    ASSERT_EQ(gotG.size(), size_t(kTokens));
    for (int64_t i = 0; i < kTokens; ++i) {
      sumExp[size_t(i)] += gotS[size_t(i)];
      target[size_t(i)] += gotG[size_t(i)];
    }
  }
  std::vector<double> loss = runCombine(backend, sumExp, target, kSplitLabels);
  expectClose(loss, wholeLosses(logits.whole, kClasses, kSplitLabels),
              backend.tolerance(Family::CrossEntropy),
              "the combined blocks against the whole cross-entropy");
}

// combine_grad's coefficients, then each rank's block of the logits'
// gradient: together, the whole cross-entropy's gradient.
CONFORMANCE_CASE(CrossEntropyPartialsGrad, blocks_make_the_whole_gradient) {
  SplitLogits logits;
  std::vector<double> sumExp, target;
  reference::crossEntropyPartials(logits.whole, logits.max, kSplitLabels,
                                  kTokens, kClasses, 0, kIgnore, sumExp,
                                  target);
  std::vector<double> dloss = uniform(kTokens, 132, 0.5, 2), a, b;
  runCombineGrad(backend, sumExp, kSplitLabels, dloss, a, b);
  if (a.size() != size_t(kTokens) || b.size() != size_t(kTokens))
    return; // skipped or failed, and reported
  std::vector<double> dlogits(size_t(kTokens * kClasses), 0.0);
  for (int64_t coord = 0; coord < kTp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, kTp);
    BufferId z = t.buffer("logits", plan::DType::F32, {2, 3, kBlock}),
             m = t.buffer("max", plan::DType::F32, {2, 3}),
             l = t.buffer("labels", plan::DType::I32, {2, 3}),
             ia = t.buffer("a", plan::DType::F32, {2, 3}),
             ib = t.buffer("b", plan::DType::F32, {2, 3}),
             dz = t.buffer("dlogits", plan::DType::F32, {2, 3, kBlock});
    t.instruction(Op::CrossEntropyPartialsGrad, {z, m, l, ia, ib}, {dz},
                  splitAttrs());
    if (!t.prepare({0, 0, coord}))
      return;
    std::vector<double> block = logits.block(coord);
    t.upload(z, block);
    t.upload(m, logits.max);
    t.upload(l, kSplitLabels);
    t.upload(ia, a);
    t.upload(ib, b);
    ASSERT_OK(t.run());
    std::vector<int64_t> labelv = asLabels(kSplitLabels);
    std::vector<double> want(size_t(kTokens * kBlock));
    ASSERT_TRUE((kern::crossEntropyPartialsBackward<double, int64_t>(
        block.data(), logits.max.data(), labelv.data(), a.data(), b.data(),
        kTokens, kBlock, coord * kBlock, kClasses, kIgnore, want.data())));
    expectReferencesAgree(want,
                          reference::crossEntropyPartialsGrad(
                              block, logits.max, kSplitLabels, a, b, kTokens,
                              kBlock, coord * kBlock, kIgnore),
                          "cross_entropy_partials_grad");
    t.expect(dz, want, Family::CrossEntropy);
    std::vector<double> got = t.download(dz);
    ASSERT_EQ(got.size(), size_t(kTokens * kBlock));
    placeBlock(dlogits, {2, 3, kClasses}, got, {2, 3, kBlock},
               {0, 0, coord * kBlock});
  }
  std::vector<int64_t> labelv = asLabels(kSplitLabels);
  std::vector<double> want(size_t(kTokens * kClasses));
  ASSERT_TRUE((kern::crossEntropyBackward<double, int64_t>(
      logits.whole.data(), labelv.data(), dloss.data(), kTokens, kClasses,
      kIgnore, want.data())));
  expectClose(dlogits, want, backend.tolerance(Family::CrossEntropy),
              "the blocks' gradients against the whole cross-entropy's");
}

CONFORMANCE_CASE(CrossEntropyCombine, against_the_whole) {
  const int64_t vocab = 7;
  std::vector<double> logits = uniform(kTokens * vocab, 133, -3, 3), max;
  for (int64_t t = 0; t < kTokens; ++t)
    max.push_back(*std::max_element(logits.begin() + t * vocab,
                                    logits.begin() + (t + 1) * vocab));
  std::vector<double> labels = {6, kIgnore, 0, 3, 3, 1}, sumExp, target;
  reference::crossEntropyPartials(logits, max, labels, kTokens, vocab, 0,
                                  kIgnore, sumExp, target);
  std::vector<double> loss = runCombine(backend, sumExp, target, labels);
  if (loss.empty())
    return;
  expectClose(loss, wholeLosses(logits, vocab, labels),
              backend.tolerance(Family::CrossEntropy),
              "combined against the whole cross-entropy");
}

CONFORMANCE_CASE(CrossEntropyCombineGrad, coefficients) {
  std::vector<double> sumExp = uniform(kTokens, 134, 1, 10),
                      dloss = uniform(kTokens, 135), a, b;
  runCombineGrad(backend, sumExp, {2, 5, kIgnore, 0, 1, kIgnore}, dloss, a, b);
}

//===--- A padded vocabulary (the `classes` attribute)
//-----------------------===//
// Only the first `classes` columns are classes; the rest pad the vocabulary
// (so the tensor-parallel size divides it) and take no part in the softmax.
// Their logits here are far above the real ones: were they in the max or the
// sum, the loss would be another.

namespace {

const int64_t kReal = 6; // of kClasses = 8

/// The logits [2, 3, 8] with large padded columns, and each token's loss
/// over its real columns alone (the whole op on the [2, 3, 6] slice).
struct PaddedLogits {
  std::vector<double> whole, real, losses;
  std::vector<double> labels = {1, 5, kIgnore, 4, 3, 0};
  PaddedLogits() : whole(uniform(kTokens * kClasses, 141, -3, 3)) {
    for (int64_t t = 0; t < kTokens; ++t)
      for (int64_t c = 0; c < kClasses; ++c) {
        double &z = whole[size_t(t * kClasses + c)];
        if (c >= kReal)
          z = 40.0 + double(c);
        else
          real.push_back(z);
      }
    std::vector<int64_t> labelv = asLabels(labels);
    losses.assign(size_t(kTokens), 0.0);
    kern::crossEntropy<double, int64_t>(real.data(), labelv.data(), kTokens,
                                        kReal, kIgnore, losses.data());
  }
};

} // namespace

CONFORMANCE_CASE(CrossEntropy, padded_classes_masked_out) {
  PaddedLogits p;
  OneInstruction t(backend);
  BufferId logits = t.buffer("logits", plan::DType::F32, {2, 3, kClasses}),
           labels = t.buffer("labels", plan::DType::I32, {2, 3}),
           loss = t.buffer("loss", plan::DType::F32, {2, 3});
  t.instruction(Op::CrossEntropy, {logits, labels}, {loss},
                {textAttr(Attr::Reduction, "none"),
                 intAttr(Attr::IgnoreIndex, kIgnore),
                 intAttr(Attr::Classes, kReal)});
  if (!t.prepare())
    return;
  t.upload(logits, p.whole);
  t.upload(labels, p.labels);
  ASSERT_OK(t.run());
  t.expect(loss, p.losses, Family::CrossEntropy);
  // A label among the padded columns is outside the classes.
  t.upload(labels, {0, 1, 2, 3, double(kReal), 0});
  rt::Status s = t.run();
  ASSERT_FALSE(s.ok()) << "a label among the padded classes ran";
  EXPECT_NE(s.message().find("outside [0, 6)"), std::string::npos)
      << s.message();
}

CONFORMANCE_CASE(CrossEntropyGrad, padded_classes_get_no_gradient) {
  PaddedLogits p;
  OneInstruction t(backend);
  BufferId logits = t.buffer("logits", plan::DType::F32, {2, 3, kClasses}),
           labels = t.buffer("labels", plan::DType::I32, {2, 3}),
           dloss = t.buffer("dloss", plan::DType::F32, {}),
           dlogits = t.buffer("dlogits", plan::DType::F32, {2, 3, kClasses});
  t.instruction(Op::CrossEntropyGrad, {logits, labels, dloss}, {dlogits},
                {textAttr(Attr::Reduction, "sum"),
                 intAttr(Attr::IgnoreIndex, kIgnore),
                 intAttr(Attr::Classes, kReal)});
  if (!t.prepare())
    return;
  t.upload(logits, p.whole);
  t.upload(labels, p.labels);
  t.upload(dloss, {0.75});
  ASSERT_OK(t.run());
  std::vector<int64_t> labelv = asLabels(p.labels);
  std::vector<double> perToken(size_t(kTokens), 0.75), real(p.real.size()),
      want(p.whole.size(), 0.0);
  ASSERT_TRUE((kern::crossEntropyBackward<double, int64_t>(
      p.real.data(), labelv.data(), perToken.data(), kTokens, kReal, kIgnore,
      real.data())));
  placeBlock(want, {2, 3, kClasses}, real, {2, 3, kReal}, {0, 0, 0});
  t.expect(dlogits, want, Family::CrossEntropy);
}

// Each tp rank's max over its real classes (block 1 holds classes [4, 8),
// of them [4, 6) real; with 3 real classes it holds none and gives -inf):
// over the ranks (the all-reduce), the max of the real classes.
CONFORMANCE_CASE(CrossEntropyMax, padded_classes_left_out) {
  PaddedLogits p;
  auto block = [&](int64_t coord) {
    return blockOf(p.whole, {2, 3, kClasses}, {2, 3, kBlock},
                   {0, 0, coord * kBlock});
  };
  auto attrs = [&](int64_t classes) {
    std::vector<AttrValue> a = splitAttrs();
    a.push_back(intAttr(Attr::Classes, classes));
    return a;
  };
  for (int64_t coord = 0; coord < kTp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, kTp);
    BufferId z = t.buffer("logits", plan::DType::F32, {2, 3, kBlock}),
             m = t.buffer("max", plan::DType::F32, {2, 3});
    std::vector<AttrValue> a = attrs(3);
    a.erase(a.begin()); // cross_entropy_max has no ignore_index
    t.instruction(Op::CrossEntropyMax, {z}, {m}, a);
    if (!t.prepare({0, 0, coord}))
      return;
    t.upload(z, block(coord));
    ASSERT_OK(t.run());
    std::vector<double> got = t.download(m);
    ASSERT_EQ(got.size(), size_t(kTokens));
    for (int64_t i = 0; i < kTokens; ++i) {
      const double *row = p.whole.data() + i * kClasses;
      if (coord == 0)
        EXPECT_NEAR(got[size_t(i)], *std::max_element(row, row + 3), 1e-6);
      else
        EXPECT_TRUE(std::isinf(got[size_t(i)]) && got[size_t(i)] < 0)
            << "token " << i << ": " << got[size_t(i)];
    }
  }
  std::vector<double> max(size_t(kTokens), -1e300);
  for (int64_t coord = 0; coord < kTp; ++coord) {
    OneInstruction t(backend, 1, 1, kTp);
    BufferId z = t.buffer("logits", plan::DType::F32, {2, 3, kBlock}),
             m = t.buffer("max", plan::DType::F32, {2, 3});
    std::vector<AttrValue> a = attrs(kReal);
    a.erase(a.begin());
    t.instruction(Op::CrossEntropyMax, {z}, {m}, a);
    if (!t.prepare({0, 0, coord}))
      return;
    t.upload(z, block(coord));
    ASSERT_OK(t.run());
    std::vector<double> got = t.download(m);
    for (int64_t i = 0; i < kTokens; ++i)
      max[size_t(i)] = std::max(max[size_t(i)], got[size_t(i)]);
  }
  for (int64_t i = 0; i < kTokens; ++i) {
    const double *row = p.whole.data() + i * kClasses;
    EXPECT_NEAR(max[size_t(i)], *std::max_element(row, row + kReal), 1e-6);
  }
}

// Each tp rank's partials over its real classes: summed over the ranks and
// combined, the loss over the real classes alone; and each block's
// gradient, 0 at the padded classes.
CONFORMANCE_CASE(CrossEntropyPartials, padded_classes_left_out) {
  PaddedLogits p;
  auto block = [&](int64_t coord) {
    return blockOf(p.whole, {2, 3, kClasses}, {2, 3, kBlock},
                   {0, 0, coord * kBlock});
  };
  auto attrs = [&](int64_t classes) {
    std::vector<AttrValue> a = splitAttrs();
    a.push_back(intAttr(Attr::Classes, classes));
    return a;
  };
  std::vector<double> max;
  for (int64_t i = 0; i < kTokens; ++i)
    max.push_back(*std::max_element(p.whole.begin() + i * kClasses,
                                    p.whole.begin() + i * kClasses + kReal));
  std::vector<double> sumExp(size_t(kTokens), 0.0),
      target(size_t(kTokens), 0.0);
  std::vector<double> a(size_t(kTokens), 0.5), b(size_t(kTokens), -1.0);
  for (int64_t coord = 0; coord < kTp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, kTp);
    BufferId z = t.buffer("logits", plan::DType::F32, {2, 3, kBlock}),
             m = t.buffer("max", plan::DType::F32, {2, 3}),
             l = t.buffer("labels", plan::DType::I32, {2, 3}),
             s = t.buffer("sum_exp", plan::DType::F32, {2, 3}),
             g = t.buffer("target", plan::DType::F32, {2, 3});
    t.instruction(Op::CrossEntropyPartials, {z, m, l}, {s, g}, attrs(kReal));
    if (!t.prepare({0, 0, coord}))
      return;
    t.upload(z, block(coord));
    t.upload(m, max);
    t.upload(l, p.labels);
    ASSERT_OK(t.run());
    std::vector<double> gotS = t.download(s), gotG = t.download(g);
    ASSERT_EQ(gotS.size(), size_t(kTokens));
    for (int64_t i = 0; i < kTokens; ++i) {
      sumExp[size_t(i)] += gotS[size_t(i)];
      target[size_t(i)] += gotG[size_t(i)];
    }

    OneInstruction tg(backend, 1, 1, kTp);
    BufferId gz = tg.buffer("logits", plan::DType::F32, {2, 3, kBlock}),
             gm = tg.buffer("max", plan::DType::F32, {2, 3}),
             gl = tg.buffer("labels", plan::DType::I32, {2, 3}),
             ia = tg.buffer("a", plan::DType::F32, {2, 3}),
             ib = tg.buffer("b", plan::DType::F32, {2, 3}),
             dz = tg.buffer("dlogits", plan::DType::F32, {2, 3, kBlock});
    tg.instruction(Op::CrossEntropyPartialsGrad, {gz, gm, gl, ia, ib}, {dz},
                   attrs(kReal));
    if (!tg.prepare({0, 0, coord}))
      return;
    std::vector<double> zv = block(coord);
    tg.upload(gz, zv);
    tg.upload(gm, max);
    tg.upload(gl, p.labels);
    tg.upload(ia, a);
    tg.upload(ib, b);
    ASSERT_OK(tg.run());
    std::vector<int64_t> labelv = asLabels(p.labels);
    std::vector<double> want(size_t(kTokens * kBlock));
    ASSERT_TRUE((kern::crossEntropyPartialsBackward<double, int64_t>(
        zv.data(), max.data(), labelv.data(), a.data(), b.data(), kTokens,
        kBlock, coord * kBlock, kClasses, kIgnore, want.data(), kReal)));
    for (int64_t i = 0; i < kTokens; ++i)
      for (int64_t c = std::max<int64_t>(0, kReal - coord * kBlock); c < kBlock;
           ++c)
        ASSERT_EQ(want[size_t(i * kBlock + c)], 0.0);
    tg.expect(dz, want, Family::CrossEntropy);
  }
  std::vector<double> loss = runCombine(backend, sumExp, target, p.labels);
  if (loss.empty())
    return;
  expectClose(loss, p.losses, backend.tolerance(Family::CrossEntropy),
              "the combined blocks against the loss over the real classes");
}
