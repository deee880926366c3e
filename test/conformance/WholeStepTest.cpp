//===- WholeStepTest.cpp - a tiny GPT's step on every backend -------------===//
//
// The instructions together: the tiny GPT's microbatch program (forward and
// backward) run through the Executor against the double-precision evaluator
// of the loom IR it was compiled from (the loss and every gradient), and a
// two-stage pipeline run by a Session on the backend, which must train as
// one rank does. Results are read only through download(),
// readStepOutputs() and the Session's API.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "Backends.h"
#include "Harness.h"

#include "loom/Execution/Evaluator.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/Session.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace {

using namespace loom::conformance;
namespace plan = loom::plan;
namespace rt = loom::runtime;

// One microbatch of 2 × 6 tokens of the vocabulary of 13, one label ignored.
const std::vector<int32_t> kTokens = {1, 5, 9, 2, 0, 12, 3, 3, 7, 11, 4, 8};
const std::vector<int32_t> kLabels = {5, 9, 2, 0, 12, 3, 3, 7, 11, 4, 8, -100};

std::vector<const BackendEntry *> backendPointers() {
  std::vector<const BackendEntry *> list;
  for (const BackendEntry &b : backends())
    list.push_back(&b);
  return list;
}

class WholeStep : public TinyGptTest,
                  public ::testing::WithParamInterface<const BackendEntry *> {
protected:
  const BackendEntry &backend() const { return *GetParam(); }
  Tolerance tolerance() const { return backend().tolerance(Family::WholeStep); }
};

int32_t inputBuffer(const plan::PlanT &p, const std::string &name) {
  for (const auto &input : p.inputs)
    if (input->name == name)
      return input->buffer;
  return -1;
}

std::vector<double> asValues(const std::vector<int32_t> &v) {
  return std::vector<double>(v.begin(), v.end());
}

TEST_P(WholeStep, MicrobatchMatchesTheEvaluatorOnEveryGradient) {
  mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, 2);
  ASSERT_TRUE(module);
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  std::unique_ptr<rt::Executor> ex = prepare(backend(), *p);
  if (!ex)
    return;

  // Parameters drawn as the runtime draws them; the evaluator gets the
  // same values.
  llvm::StringMap<loom::HostTensor> parameters;
  for (const auto &param : p->parameters) {
    const plan::BufferT &b = *p->buffers[size_t(param->value)];
    std::vector<float> data(size_t(rt::numElements(b.shape)));
    if (param->init == "normal")
      rt::initNormal(data.data(), rt::TensorBlock::whole(b.shape), 0.5,
                     rt::parameterKey(3, param->name));
    else
      for (size_t i = 0; i < data.size(); ++i)
        data[i] = param->init == "ones" ? 1.0f : 0.01f * float(i % 7);
    std::vector<double> values(data.begin(), data.end());
    ASSERT_OK(uploadValues(*ex, *p, param->value, values));
    // Gradients accumulate: they start from zero, as a step's do.
    ASSERT_OK(ex->zero(param->grad));
    parameters[param->name] = {b.shape, values};
  }
  int32_t tokens = inputBuffer(*p, "tokens"),
          labels = inputBuffer(*p, "labels");
  ASSERT_GE(tokens, 0);
  ASSERT_GE(labels, 0);
  ASSERT_OK(uploadValues(*ex, *p, tokens, asValues(kTokens)));
  ASSERT_OK(uploadValues(*ex, *p, labels, asValues(kLabels)));
  StepParams params;
  params.seed = 7;
  params.step = 3;
  ex->beginStep();
  ASSERT_OK(ex->run(ProgramKind::Microbatch, params));
  ASSERT_OK(ex->accumulateLoss(p->loss));
  auto outputs = ex->readStepOutputs();
  ASSERT_TRUE(outputs.ok()) << outputs.message();

  auto fn = *module->getOps<mlir::func::FuncOp>().begin();
  loom::EvaluationOptions options;
  options.seed = 7;
  options.step = 3;
  auto asHost = [](const std::vector<int32_t> &v) {
    return loom::HostTensor{{2, 6}, std::vector<double>(v.begin(), v.end())};
  };
  auto expected = loom::evaluate(fn, {asHost(kTokens), asHost(kLabels)},
                                 parameters, options);
  ASSERT_TRUE(mlir::succeeded(expected));
  // The loss is a sum over the 11 counted tokens.
  double loss = (*expected)[0].data[0];
  EXPECT_GT(loss / 11, 1.0);
  auto gotLoss = downloadValues(*ex, *p, p->loss);
  ASSERT_TRUE(gotLoss.ok()) << gotLoss.message();
  Tolerance relative = {tolerance().rtol, 0};
  expectClose(*gotLoss, {loss}, relative, "the loss");
  expectClose({outputs->lossSum}, {loss}, relative, "StepOutputs.lossSum");

  int checked = 0;
  for (unsigned i = 1; i < fn.getNumResults(); ++i) {
    auto name = fn.getResultAttrOfType<mlir::StringAttr>(i, "loom.grad");
    ASSERT_TRUE(name);
    const plan::ParameterT *param = nullptr;
    for (const auto &q : p->parameters)
      if (q->name == name.getValue())
        param = q.get();
    ASSERT_TRUE(param) << name.str();
    auto got = downloadValues(*ex, *p, param->grad);
    ASSERT_TRUE(got.ok()) << got.message();
    expectCloseScaled(*got, (*expected)[i].data, tolerance(),
                      "the gradient of " + name.str());
    ++checked;
  }
  EXPECT_EQ(checked, int(p->parameters.size()));
}

// A pipeline of two stages (each a rank with its own executor, passing
// activations and gradients point to point) trains as one rank does: the
// same losses and gradient norms, step after step, and the same weights.
TEST_P(WholeStep, PipelineSessionMatchesOneRank) {
  mlir::OwningOpRef<mlir::ModuleOp> one = tinyGpt(2, 4),
                                    two = tinyGpt(2, 4, "f32", "pp=2");
  ASSERT_TRUE(one && two);
  std::unique_ptr<plan::PlanT> single = planOf(*one), pipeline = planOf(*two);
  ASSERT_TRUE(single && pipeline);
  ASSERT_EQ(pipeline->chunks.size(), 2u);
  for (const plan::PlanT *p : {single.get(), pipeline.get()})
    if (std::optional<Op> op = backend().firstUnsupported(*p))
      GTEST_SKIP() << "backend '" << backend().name
                   << "' does not run the opcode '" << rt::opName(*op)
                   << "' yet";
  std::string dir =
      ::testing::TempDir() + "/loom-conformance-" + backendParamName(backend());
  std::string singlePath = dir + "-one.plan", pipelinePath = dir + "-pp2.plan";
  ASSERT_OK(rt::writePlan(*single, singlePath));
  ASSERT_OK(rt::writePlan(*pipeline, pipelinePath));

  rt::SessionOptions options;
  options.backend = backend().name;
  options.collectiveTimeoutSeconds = 120;
  // The tiny plans carry no optimizer defaults (planOf): these are
  // PlanTest's, with clipping on (the pipeline's norm sums the stages').
  options.lr = 1e-3;
  options.minLr = 1e-4;
  options.beta1 = 0.9;
  options.beta2 = 0.95;
  options.eps = 1e-8;
  options.weightDecay = 0.1;
  options.clipGrad = 0.5;
  auto a = rt::Session::open(singlePath, options);
  ASSERT_TRUE(a.ok()) << a.message();
  auto b = rt::Session::open(pipelinePath, options);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ((*b)->numRanks(), 2);
  ASSERT_OK((*a)->initializeParameters());
  ASSERT_OK((*b)->initializeParameters());

  // A global batch of 4 sequences: 2 microbatches of 2.
  std::vector<int32_t> tokens = kTokens, labels = kLabels;
  for (size_t i = 0; i < kTokens.size(); ++i) {
    tokens.push_back((kTokens[i] * 5 + 3) % 13);
    labels.push_back((kLabels[i] < 0 ? 2 : kLabels[i] * 7 + 1) % 13);
  }
  Tolerance relative = {tolerance().rtol, 0};
  for (int step = 1; step <= 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    auto m1 = (*a)->step(tokens.data(), labels.data());
    ASSERT_TRUE(m1.ok()) << m1.message();
    auto m2 = (*b)->step(tokens.data(), labels.data());
    ASSERT_TRUE(m2.ok()) << m2.message();
    EXPECT_GT(m1->loss, 1.0);
    expectClose({m2->loss}, {m1->loss}, relative, "the pipeline's loss");
    expectClose({m2->gradNorm}, {m1->gradNorm}, relative,
                "the pipeline's gradient norm");
    EXPECT_EQ(m1->skipped, m2->skipped);
  }
  for (const auto &param : single->parameters) {
    auto w1 = (*a)->parameter(param->name), w2 = (*b)->parameter(param->name);
    ASSERT_TRUE(w1.ok()) << w1.message();
    ASSERT_TRUE(w2.ok()) << w2.message();
    expectCloseScaled(std::vector<double>(w2->begin(), w2->end()),
                      std::vector<double>(w1->begin(), w1->end()), tolerance(),
                      "parameter " + param->name + " after 3 steps");
  }
  std::remove(singlePath.c_str());
  std::remove(pipelinePath.c_str());
}

// Every mesh the CPU tests cover trains on the backend with the CPU
// backend's losses and gradient norms on the same plan, step after step,
// and a bf16 plan with the CPU's bf16 losses: with the CPU's own mesh
// invariance (the parallel tests), every mesh gives the single-rank losses.
// (This tiny GPT's vocabulary of 13 is padded under tp=2, so its tp plans
// are not the one-rank model.) For the CPU backend itself there is nothing
// to compare, so it runs for the other backends only.
TEST_P(WholeStep, EveryMeshTrainsAsTheCpuBackendsOneRank) {
  if (backend().name == "cpu")
    GTEST_SKIP() << "the cpu backend is the reference of this test";
  struct Case {
    const char *compute, *mesh;
  };
  const Case cases[] = {{"f32", ""},     {"f32", "tp=2"},
                        {"f32", "dp=2"}, {"f32", "pp=2"},
                        {"f32", "dp=2,tp=2"}, {"bf16", ""}};
  std::vector<int32_t> tokens = kTokens, labels = kLabels;
  for (size_t i = 0; i < kTokens.size(); ++i) {
    tokens.push_back((kTokens[i] * 5 + 3) % 13);
    labels.push_back((kLabels[i] < 0 ? 2 : kLabels[i] * 7 + 1) % 13);
  }
  std::string dir =
      ::testing::TempDir() + "/loom-mesh-" + backendParamName(backend());
  auto options = [&](const std::string &name) {
    rt::SessionOptions o;
    o.backend = name;
    o.collectiveTimeoutSeconds = 120;
    o.lr = 1e-3;
    o.minLr = 1e-4;
    o.beta1 = 0.9;
    o.beta2 = 0.95;
    o.eps = 1e-8;
    o.weightDecay = 0.1;
    o.clipGrad = 0.5;
    return o;
  };
  const int kSteps = 6;
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.compute) + " mesh '" + c.mesh + "'");
    bool bf16 = std::string(c.compute) == "bf16";
    std::string path = dir + "-" + c.compute + "-" + c.mesh + ".plan";
    mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, 4, c.compute, c.mesh);
    ASSERT_TRUE(module);
    std::unique_ptr<plan::PlanT> p = planOf(*module);
    ASSERT_TRUE(p);
    if (std::optional<Op> op = backend().firstUnsupported(*p))
      GTEST_SKIP() << "backend '" << backend().name
                   << "' does not run the opcode '" << rt::opName(*op)
                   << "' yet";
    ASSERT_OK(rt::writePlan(*p, path));
    auto session = rt::Session::open(path, options(backend().name));
    ASSERT_TRUE(session.ok()) << session.message();
    ASSERT_OK((*session)->initializeParameters());
    auto cpu = rt::Session::open(path, options("cpu"));
    ASSERT_TRUE(cpu.ok()) << cpu.message();
    ASSERT_OK((*cpu)->initializeParameters());
    for (int step = 1; step <= kSteps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      auto m = (*session)->step(tokens.data(), labels.data());
      ASSERT_TRUE(m.ok()) << m.message();
      auto want = (*cpu)->step(tokens.data(), labels.data());
      ASSERT_TRUE(want.ok()) << want.message();
      // bf16 rounds the same values on both backends, but a sum in another
      // order can round a bf16 result the other way: a looser bound.
      double rtol = bf16 ? 2e-3 : 1e-5;
      expectClose({m->loss}, {want->loss}, {rtol, 0}, "the loss");
      expectClose({m->gradNorm}, {want->gradNorm}, {bf16 ? 1e-2 : 1e-4, 0},
                  "the gradient norm");
    }
    std::remove(path.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Backends, WholeStep, ::testing::ValuesIn(backendPointers()),
    [](const ::testing::TestParamInfo<const BackendEntry *> &info) {
      return backendParamName(*info.param);
    });

} // namespace
