//===- OptimizerCases.cpp - grad_norm and adamw ---------------------------===//
//
// The optimizer program's instructions, read through the step's outputs
// (readStepOutputs) and the buffers. AdamW is checked against an update in
// double written from loom/runtime/cpu/Optimizer.h's formula, clipped by
// loom/runtime/Optimizer.h's clipCoefficient.
//
//===----------------------------------------------------------------------===//

#include "Cases.h"
#include "Reference.h"

#include "loom/runtime/Optimizer.h"

#include <cmath>
#include <limits>

using namespace loom::conformance;
namespace plan = loom::plan;
namespace rt = loom::runtime;

namespace {

double sumOfSquares(const std::vector<double> &g) {
  double s = 0;
  for (double x : g)
    s += x * x;
  return s;
}

struct GradNormCase {
  std::vector<AttrValue> attrs;
  /// Which of the two gradients count (exclude leaves one out).
  bool first = true, second = true;
  bool partial = false;
  double poison = 0; // put into the second gradient when not 0 (inf, nan)
};

void runGradNorm(const BackendEntry &backend, const GradNormCase &gc) {
  OneInstruction t(backend);
  BufferId g1 = t.buffer("wte.grad", plan::DType::F32, {5},
                         plan::Arena::Persistent),
           g2 = t.buffer("ln.grad", plan::DType::F32, {3, 4},
                         plan::Arena::Persistent);
  t.instruction(Op::GradNorm, {g1, g2}, {}, gc.attrs, ProgramKind::Optimizer);
  if (!t.prepare())
    return;
  std::vector<double> v1 = uniform(5, 191), v2 = uniform(12, 192);
  if (gc.poison != 0)
    v2[3] = gc.poison;
  t.upload(g1, v1);
  t.upload(g2, v2);
  StepParams params;
  params.gradScale = 0.5;
  ASSERT_OK(t.run(params, ProgramKind::Optimizer));
  auto outputs = t.executor().readStepOutputs();
  ASSERT_TRUE(outputs.ok()) << outputs.message();
  double squares =
      (gc.first ? sumOfSquares(v1) : 0) + (gc.second ? sumOfSquares(v2) : 0);
  Tolerance tol = backend.tolerance(Family::Optimizer);
  if (gc.partial) {
    // A pipeline chunk's part: the squares, unscaled; the runtime sums the
    // chunks' and sets the norm.
    expectClose({outputs->gradSquares}, {squares}, tol,
                "StepOutputs.gradSquares");
    EXPECT_EQ(outputs->gradNorm, 0);
    return;
  }
  expectClose({outputs->gradNorm}, {std::sqrt(squares) * params.gradScale}, tol,
              "StepOutputs.gradNorm");
  EXPECT_EQ(outputs->nonFinite, !std::isfinite(squares));
}

} // namespace

CONFORMANCE_CASE(GradNorm, every_gradient) { runGradNorm(backend, {}); }
// A tied parameter's second copy counts once.
CONFORMANCE_CASE(GradNorm, exclude) {
  runGradNorm(backend, {{intsAttr(Attr::Exclude, {0, 1})}, true, false});
}
CONFORMANCE_CASE(GradNorm, partial_in_a_chunk) {
  runGradNorm(backend, {{intAttr(Attr::Partial, 1)}, true, true, true});
}
CONFORMANCE_CASE(GradNorm, infinite) {
  runGradNorm(backend,
              {{}, true, true, false, std::numeric_limits<double>::infinity()});
}
CONFORMANCE_CASE(GradNorm, nan) {
  runGradNorm(
      backend,
      {{}, true, true, false, std::numeric_limits<double>::quiet_NaN()});
}

namespace {

struct AdamWCase {
  bool decay = true;
  /// The norm the runtime hands over (setGradNorm), or, with normFromPlan,
  /// the plan's own grad_norm before adamw.
  double gradNorm = 4;
  bool normFromPlan = false;
  double clipGrad = 1;
};

void runAdamW(const BackendEntry &backend, const AdamWCase &ac) {
  OneInstruction t(backend);
  Shape shape = {2, 5};
  auto persistent = [&](const char *name) {
    return t.buffer(name, plan::DType::F32, shape, plan::Arena::Persistent);
  };
  BufferId p = persistent("w"), g = persistent("w.grad"), m = persistent("w.m"),
           v = persistent("w.v");
  if (ac.normFromPlan)
    t.instruction(Op::GradNorm, {g}, {}, {}, ProgramKind::Optimizer);
  t.instruction(Op::AdamW, {p, g, m, v}, {p, m, v},
                {intAttr(Attr::WeightDecay, ac.decay)}, ProgramKind::Optimizer);
  if (!t.prepare())
    return;
  std::vector<double> pv = uniform(10, 201), gv = uniform(10, 202, -4, 4),
                      mv = uniform(10, 203, -0.1, 0.1),
                      vv = uniform(10, 204, 0, 0.01);
  t.upload(p, pv);
  t.upload(g, gv);
  t.upload(m, mv);
  t.upload(v, vv);
  StepParams params;
  params.lr = 1e-2;
  params.weightDecay = 0.1;
  params.adam = {0.9, 0.95, 1e-8};
  params.optimizerStep = 3;
  params.gradScale = 0.5;
  params.clipGrad = ac.clipGrad;
  rt::Executor &ex = t.executor();
  ex.beginStep();
  if (!ac.normFromPlan)
    ex.setGradNorm(ac.gradNorm);
  ASSERT_OK(ex.run(ProgramKind::Optimizer, params));

  double norm = ac.normFromPlan ? std::sqrt(sumOfSquares(gv)) * params.gradScale
                                : ac.gradNorm;
  if (std::isfinite(norm)) {
    double scale = params.gradScale * rt::clipCoefficient(norm, ac.clipGrad);
    reference::adamw(params.adam, params.lr,
                     ac.decay ? params.weightDecay : 0.0, params.optimizerStep,
                     scale, pv, gv, mv, vv);
  } // else: a step with inf or nan gradients changes nothing
  t.expect(p, pv, Family::Optimizer, "the parameter");
  t.expect(m, mv, Family::Optimizer, "the first moment");
  t.expect(v, vv, Family::Optimizer, "the second moment");
  t.expect(g, gv, Family::Optimizer, "the gradient (read, not written)");
}

} // namespace

CONFORMANCE_CASE(AdamW, decay_and_clipping) { runAdamW(backend, {}); }
CONFORMANCE_CASE(AdamW, no_decay_no_clipping) {
  runAdamW(backend, {false, 4, false, 0});
}
CONFORMANCE_CASE(AdamW, clipped_by_the_plans_grad_norm) {
  runAdamW(backend, {true, 0, true, 0.5});
}
CONFORMANCE_CASE(AdamW, skipped_on_a_nan_norm) {
  runAdamW(backend, {true, std::numeric_limits<double>::quiet_NaN(), false, 1});
}
CONFORMANCE_CASE(AdamW, skipped_on_an_infinite_norm) {
  runAdamW(backend, {true, std::numeric_limits<double>::infinity(), false, 1});
}
