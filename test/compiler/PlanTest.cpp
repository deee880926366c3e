//===- PlanTest.cpp - the plan: lowering, memory planning, the file -------===//
//
// The plan the compiler builds is checked against the compiler's own oracle:
// the CPU backend (f32, arena offsets, in-place accumulation) must compute
// the loss and every parameter gradient that the double-precision evaluator
// computes from the same differentiated loom IR. The memory plan must never
// place two buffers alive at once in overlapping bytes, and a damaged plan
// file must be refused with a message that says what is wrong.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "loom/Execution/Evaluator.h"
#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/Plan/PlanBuilder.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/passes/Passes.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/Session.h"
#include "loom/runtime/Backend.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

using namespace mlir;
namespace rt = loom::runtime;
namespace plan = loom::plan;

namespace {

using PlanTest = TinyGptTest;

// Token ids and labels for one microbatch of 2 × 6, one label ignored.
const std::vector<int32_t> kTokens = {1, 5, 9, 2, 0, 12, 3, 3, 7, 11, 4, 8};
const std::vector<int32_t> kLabels = {5, 9, 2, 0, 12, 3, 3, 7, 11, 4, 8, -100};

TEST_F(PlanTest, ExecutorMatchesTheEvaluatorOnEveryGradient) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 2);
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->loss_normalizer, "tokens");
  auto executor = rt::createExecutor("cpu", *p);
  ASSERT_TRUE(executor.ok()) << executor.message();
  rt::Executor &ex = **executor;
  // Buffers move in and out through the executor, as on any backend.
  auto download = [&](int32_t id) {
    std::vector<float> v(size_t(p->buffers[id]->bytes / 4));
    EXPECT_TRUE(ex.download(id, v.data(), v.size() * 4).ok());
    return v;
  };
  auto uploadInts = [&](int32_t id, const std::vector<int32_t> &v) {
    ASSERT_TRUE(ex.upload(id, v.data(), v.size() * 4).ok());
  };

  // Parameters drawn as the runtime draws them; the evaluator gets the same.
  llvm::StringMap<loom::HostTensor> parameters;
  for (const auto &param : p->parameters) {
    const plan::BufferT &b = *p->buffers[param->value];
    int64_t n = b.bytes / 4;
    std::vector<float> data(static_cast<size_t>(n));
    if (param->init == "normal")
      rt::initNormal(data.data(), rt::TensorBlock::whole(b.shape), 0.5,
                     rt::parameterKey(3, param->name));
    else
      for (int64_t i = 0; i < n; ++i)
        data[i] = param->init == "ones" ? 1.0f : 0.01f * float(i % 7);
    ASSERT_TRUE(ex.upload(param->value, data.data(), size_t(b.bytes)).ok());
    parameters[param->name] = {b.shape,
                               std::vector<double>(data.begin(), data.end())};
  }
  uploadInts(p->inputs[0]->buffer, kTokens);
  uploadInts(p->inputs[1]->buffer, kLabels);
  rt::StepParams state;
  state.seed = 7;
  state.step = 3;
  rt::Status ran = ex.run(rt::ProgramKind::Microbatch, state);
  ASSERT_TRUE(ran.ok()) << ran.message();

  auto fn = *module->getOps<func::FuncOp>().begin();
  loom::EvaluationOptions options;
  options.seed = 7;
  options.step = 3;
  auto asHost = [](const std::vector<int32_t> &v) {
    return loom::HostTensor{{2, 6}, std::vector<double>(v.begin(), v.end())};
  };
  auto expected = loom::evaluate(fn, {asHost(kTokens), asHost(kLabels)},
                                 parameters, options);
  ASSERT_TRUE(succeeded(expected));
  // The loss is a sum over the 11 counted tokens.
  double loss = (*expected)[0].data[0];
  EXPECT_NEAR(download(p->loss)[0], loss, 1e-5 * std::abs(loss));
  EXPECT_GT(loss / 11, 1.0);

  int checked = 0;
  for (unsigned i = 1; i < fn.getNumResults(); ++i) {
    auto name = fn.getResultAttrOfType<StringAttr>(i, "loom.grad");
    ASSERT_TRUE(name);
    const plan::ParameterT *param = nullptr;
    for (const auto &q : p->parameters)
      if (q->name == name.getValue())
        param = q.get();
    ASSERT_TRUE(param) << name.str();
    const std::vector<double> &want = (*expected)[i].data;
    const std::vector<float> got = download(param->grad);
    double scale = 1e-6;
    for (double w : want)
      scale = std::max(scale, std::abs(w));
    for (size_t e = 0; e < want.size(); ++e)
      ASSERT_NEAR(got[e], want[e], 2e-5 * scale)
          << name.str() << "[" << e << "]";
    ++checked;
  }
  EXPECT_EQ(checked, int(p->parameters.size()));

  // A second run of the microbatch adds the same gradients again. (Inputs
  // are written before each run: their workspace is reused after their
  // last read.)
  std::vector<float> once = download(p->parameters[0]->grad);
  uploadInts(p->inputs[0]->buffer, kTokens);
  uploadInts(p->inputs[1]->buffer, kLabels);
  rt::Status again = ex.run(rt::ProgramKind::Microbatch, state);
  ASSERT_TRUE(again.ok()) << again.message();
  std::vector<float> twice = download(p->parameters[0]->grad);
  for (int e = 0; e < 10; ++e)
    EXPECT_NEAR(twice[e], 2 * once[e], 1e-6 + 1e-5 * std::abs(once[e]));
}

TEST_F(PlanTest, NoTwoLiveBuffersShareBytes) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 4);
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  // Lifetimes by byte range: the storage each instruction touches must not
  // be touched by a buffer of another lifetime in between. Recompute the
  // lifetimes of each (offset, bytes) region from the program.
  const auto &insts = p->microbatch->instructions;
  struct Region {
    int64_t begin, end, first, last;
    bool view;
  };
  std::map<int32_t, Region> regions;
  int64_t n = int64_t(insts.size());
  auto touch = [&](int32_t id, int64_t k) {
    const plan::BufferT &b = *p->buffers[id];
    if (b.arena != plan::Arena::Workspace)
      return;
    bool view = b.name.rfind("view.", 0) == 0;
    auto [it, fresh] =
        regions.insert({id, {b.offset, b.offset + b.bytes, k, k, view}});
    it->second.first = std::min(it->second.first, k);
    it->second.last = std::max(it->second.last, k);
  };
  for (const auto &in : p->inputs)
    touch(in->buffer, -1);
  touch(p->loss, n);
  for (int64_t k = 0; k < n; ++k) {
    for (int32_t id : insts[k]->inputs)
      touch(id, k);
    for (int32_t id : insts[k]->outputs)
      touch(id, k);
  }
  // A view (a reshape) shares its source's storage; any other two buffers
  // that overlap in bytes must not be alive at the same time.
  std::vector<Region> list;
  for (auto &[key, r] : regions)
    list.push_back(r);
  int overlapsInBytes = 0;
  for (size_t a = 0; a < list.size(); ++a)
    for (size_t b = a + 1; b < list.size(); ++b) {
      const Region &x = list[a], &y = list[b];
      bool bytes = x.begin < y.end && y.begin < x.end;
      if (!bytes || ((x.view || y.view) && x.begin == y.begin))
        continue;
      ++overlapsInBytes;
      EXPECT_FALSE(x.first <= y.last && y.first <= x.last)
          << "[" << x.begin << ", " << x.end << ") and [" << y.begin << ", "
          << y.end << ") are alive together";
    }
  EXPECT_GT(overlapsInBytes, 10); // the planner does reuse memory
  int64_t sum = 0;
  for (const auto &b : p->buffers)
    if (b->arena == plan::Arena::Workspace)
      sum += b->bytes;
  EXPECT_LT(p->arena_bytes[1], sum / 2);
}

TEST_F(PlanTest, PlanFileRoundTripsAndRefusesDamage) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 4);
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  std::string path = ::testing::TempDir() + "/tiny.plan";
  ASSERT_TRUE(rt::writePlan(*p, path).ok());
  auto back = rt::readPlan(path);
  ASSERT_TRUE(back.ok()) << back.message();
  std::ostringstream a, b;
  rt::printPlanText(*p, a);
  rt::printPlanText(**back, b);
  EXPECT_EQ(a.str(), b.str());
  EXPECT_EQ((*back)->num_microbatches, 2);

  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  auto refused = [&](std::string content) {
    std::string damaged = ::testing::TempDir() + "/damaged.plan";
    std::ofstream(damaged, std::ios::binary) << content;
    auto r = rt::readPlan(damaged);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : r.message();
  };
  EXPECT_NE(refused(bytes.substr(0, bytes.size() / 2)).find("truncated"),
            std::string::npos);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  EXPECT_NE(refused(flipped).find("checksum does not match"),
            std::string::npos);
  std::string version = bytes;
  version[8] = 99;
  EXPECT_NE(refused(version).find("format version 99"), std::string::npos);
  EXPECT_NE(refused("hello, world").find("not a Loom plan"),
            std::string::npos);
  // A header whose payload size wraps the frame's length around (2^64 - 4
  // + 24 bytes of frame = 20): the checksum read past the file (SIGSEGV).
  std::string wrapped = bytes.substr(0, 12);
  for (int i = 0; i < 8; ++i)
    wrapped += char(i == 0 ? 0xFC : 0xFF);
  EXPECT_NE(refused(wrapped).find("its header says a payload of "
                                  "18446744073709551612 bytes"),
            std::string::npos);
  auto missing = rt::readPlan(::testing::TempDir() + "/no-such.plan");
  EXPECT_NE(missing.message().find("cannot open the plan"), std::string::npos);
}

TEST_F(PlanTest, MixedPrecisionKeepsF32MastersAndGradients) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 2, "bf16");
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  int bf16 = 0;
  for (const auto &b : p->buffers)
    bf16 += b->dtype == plan::DType::BF16;
  EXPECT_GT(bf16, 20);
  for (const auto &param : p->parameters) {
    EXPECT_EQ(p->buffers[param->value]->dtype, plan::DType::F32);
    EXPECT_EQ(p->buffers[param->grad]->dtype, plan::DType::F32);
  }
  EXPECT_EQ(p->buffers[p->loss]->dtype, plan::DType::F32);
}

} // namespace

// A rank that fails mid-step (here dp rank 1, on a label outside the
// vocabulary) ends the step with its own error on every rank, at once: the
// others, waiting in a collective, are released. The session then refuses
// to go on rather than train with ranks out of step.
TEST_F(PlanTest, ARankThatFailsEndsTheStepWithItsErrorNotAHang) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 4, "f32", "dp=2,tp=2");
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  std::string path = ::testing::TempDir() + "/loom-parallel-test.plan";
  ASSERT_TRUE(rt::writePlan(*p, path).ok());
  rt::SessionOptions options;
  options.collectiveTimeoutSeconds = 120;
  options.lr = 1e-3;
  options.minLr = 1e-4;
  options.eps = 1e-8;
  options.beta1 = 0.9;
  options.beta2 = 0.95;
  auto session = rt::Session::open(path, options);
  ASSERT_TRUE(session.ok()) << session.message();
  EXPECT_EQ((*session)->numRanks(), 4);
  ASSERT_TRUE((*session)->initializeParameters().ok());
  // Four samples: dp rank 0 trains samples 0 and 1, dp rank 1 samples 2, 3.
  std::vector<int32_t> tokens, labels;
  for (int copy = 0; copy < 2; ++copy) {
    tokens.insert(tokens.end(), kTokens.begin(), kTokens.end());
    labels.insert(labels.end(), kLabels.begin(), kLabels.end());
  }
  auto good = (*session)->step(tokens.data(), labels.data());
  ASSERT_TRUE(good.ok()) << good.message();
  EXPECT_TRUE(std::isfinite(good->loss));

  std::vector<int32_t> bad = labels;
  bad[2 * 6 + 1] = 99; // sample 2: dp rank 1's
  auto start = std::chrono::steady_clock::now();
  auto failed = (*session)->step(tokens.data(), bad.data());
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("dp=1"), std::string::npos)
      << failed.message();
  // The tiny GPT's 13 classes (its logits padded to 14 columns on tp=2).
  EXPECT_NE(failed.message().find("a label is outside [0, 13)"),
            std::string::npos)
      << failed.message();
  EXPECT_LT(seconds, 60) << "the other ranks waited for the collective "
                            "timeout instead of being released";
  auto after = (*session)->step(tokens.data(), labels.data());
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.message().find("an earlier step failed"), std::string::npos)
      << after.message();
  std::remove(path.c_str());
}

namespace {
/// Every sample is the first of kTokens/kLabels' two.
struct FixedSamples : rt::SampleSource {
  loom::runtime::Status readSample(int64_t, int32_t *tokens,
                                   int32_t *labels) const override {
    std::copy(kTokens.begin(), kTokens.begin() + 6, tokens);
    std::copy(kLabels.begin(), kLabels.begin() + 6, labels);
    return loom::runtime::Status::success();
  }
};
} // namespace

// Evaluation runs the microbatch program only through the loss; a plan
// whose range writes the training state (here the first instruction's
// output moved into the Persistent arena, past everything there) is
// refused with the instruction named, never run.
TEST_F(PlanTest, EvaluationRefusesAForwardThatWritesTheTrainingState) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 4, "f32", "");
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  const plan::InstructionT &first = *p->microbatch->instructions.front();
  std::string what = first.op;
  plan::BufferT &b = *p->buffers[size_t(first.outputs.front())];
  ASSERT_EQ(b.arena, plan::Arena::Workspace);
  int64_t &persistent = p->arena_bytes[size_t(plan::Arena::Persistent)];
  b.arena = plan::Arena::Persistent;
  b.offset = (persistent + 63) / 64 * 64;
  persistent = b.offset + b.bytes;
  std::string path = ::testing::TempDir() + "/loom-eval-persistent.plan";
  ASSERT_TRUE(rt::writePlan(*p, path).ok());
  rt::SessionOptions options;
  options.lr = 1e-3;
  options.minLr = 1e-4;
  options.eps = 1e-8;
  options.beta1 = 0.9;
  options.beta2 = 0.95;
  auto session = rt::Session::open(path, options);
  ASSERT_TRUE(session.ok()) << session.message();
  ASSERT_TRUE((*session)->initializeParameters().ok());
  FixedSamples samples;
  auto e = (*session)->evaluate(samples, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("microbatch instruction 0 (" + what),
            std::string::npos)
      << e.message();
  EXPECT_NE(e.message().find("(the training state) before the loss"),
            std::string::npos)
      << e.message();
  EXPECT_EQ((*session)->step(), 0);
}

// The unchanged plan evaluates, and nothing of the training state changes:
// the step and data position stay, and the next step's loss is the loss
// without the evaluation, bit for bit.
TEST_F(PlanTest, EvaluationIsTheForwardsLossAndChangesNothing) {
  OwningOpRef<ModuleOp> module = tinyGpt(2, 4, "f32", "");
  std::unique_ptr<plan::PlanT> p = planOf(*module);
  ASSERT_TRUE(p);
  std::string path = ::testing::TempDir() + "/loom-eval.plan";
  ASSERT_TRUE(rt::writePlan(*p, path).ok());
  rt::SessionOptions options;
  options.lr = 1e-3;
  options.minLr = 1e-4;
  options.eps = 1e-8;
  options.beta1 = 0.9;
  options.beta2 = 0.95;
  FixedSamples samples;
  auto run = [&](bool evaluate) -> std::pair<double, double> {
    auto session = rt::Session::open(path, options);
    EXPECT_TRUE(session.ok()) << session.message();
    EXPECT_TRUE((*session)->initializeParameters().ok());
    double validation = 0;
    if (evaluate) {
      auto e = (*session)->evaluate(samples, 2);
      EXPECT_TRUE(e.ok()) << e.message();
      validation = e.ok() ? e->loss : 0;
      EXPECT_EQ((*session)->step(), 0);
      EXPECT_EQ((*session)->dataPosition(), 0);
    }
    auto m = (*session)->step(samples);
    EXPECT_TRUE(m.ok()) << m.message();
    return {validation, m.ok() ? m->loss : 0};
  };
  auto [validation, trained] = run(true);
  auto [unused, plain] = run(false);
  EXPECT_EQ(trained, plain);
  // The forward without dropout: near the step's loss, not it.
  EXPECT_TRUE(std::isfinite(validation));
  EXPECT_NE(validation, plain);
  EXPECT_NEAR(validation, plain, 0.05 * plain);
}
