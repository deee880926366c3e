//===- TraceTest.cpp - every backend traces the instructions it runs ------===//
//
// The tracing contract of a backend (loom/runtime/Trace.h): with a tracer
// in its RankContext, run() records one slice per instruction of a traced
// step on the rank's track, with the instruction's op, program, step,
// microbatch, bytes and FLOPs, and nothing in the steps the tracer does not
// trace.
//
//===----------------------------------------------------------------------===//

#include "Backends.h"
#include "Harness.h"

#include "loom/runtime/Trace.h"

#include <gtest/gtest.h>

namespace {

using namespace loom::conformance;
namespace plan = loom::plan;
namespace rt = loom::runtime;

std::vector<const BackendEntry *> backendPointers() {
  std::vector<const BackendEntry *> list;
  for (const BackendEntry &b : backends())
    list.push_back(&b);
  return list;
}

class Tracing : public ::testing::TestWithParam<const BackendEntry *> {};

TEST_P(Tracing, ASlicePerInstructionOfTheTracedStepsOnly) {
  PlanSketch sketch;
  BufferId a = sketch.buffer("a", plan::DType::F32, {2, 3}),
           b = sketch.buffer("b", plan::DType::F32, {3, 4}),
           c = sketch.buffer("c", plan::DType::F32, {2, 4}),
           y = sketch.buffer("y", plan::DType::F32, {2, 4});
  sketch.instruction(
      Op::Matmul, {a, b}, {c},
      {intAttr(Attr::TransposeA, 0), intAttr(Attr::TransposeB, 0)});
  sketch.instruction(Op::Relu, {c}, {y});
  std::unique_ptr<plan::PlanT> p = sketch.finish();
  ASSERT_TRUE(p);
  rt::Tracer tracer;
  tracer.setSteps(2, 2);
  rt::RankContext rank;
  rank.tracer = &tracer;
  rank.traceTrack = 5;
  std::unique_ptr<rt::Executor> ex = prepare(*GetParam(), *p, rank);
  if (!ex)
    return; // skipped or failed, reported
  ASSERT_OK(uploadValues(*ex, *p, a, uniform(6, 1)));
  ASSERT_OK(uploadValues(*ex, *p, b, uniform(12, 2)));

  StepParams params;
  params.step = 1;
  ex->beginStep();
  ASSERT_OK(ex->run(ProgramKind::Microbatch, params));
  EXPECT_EQ(tracer.size(), 0u) << tracer.json();

  params.step = 2;
  params.microbatch = 3;
  ex->beginStep();
  ASSERT_OK(ex->run(ProgramKind::Microbatch, params));
  ASSERT_EQ(tracer.size(), 2u) << tracer.json();
  std::string json = tracer.json();
  size_t matmul =
      json.find("{\"name\":\"matmul\",\"cat\":\"op\",\"ph\":\"X\",");
  size_t relu = json.find("{\"name\":\"relu\",\"cat\":\"op\",\"ph\":\"X\",");
  ASSERT_NE(matmul, std::string::npos) << json;
  ASSERT_NE(relu, std::string::npos) << json;
  EXPECT_LT(matmul, relu) << json; // in program order
  std::string matmulEvent =
      json.substr(matmul, json.find('\n', matmul) - matmul);
  std::string reluEvent = json.substr(relu, json.find('\n', relu) - relu);
  for (const std::string &event : {matmulEvent, reluEvent}) {
    EXPECT_NE(event.find("\"tid\":5,"), std::string::npos) << event;
    EXPECT_NE(event.find("\"program\":\"microbatch\",\"step\":2,"
                         "\"microbatch\":3,"),
              std::string::npos)
        << event;
  }
  // a 24 + b 48 + c 32 bytes; 2·M·N·K = 2·2·4·3.
  EXPECT_NE(matmulEvent.find("\"bytes\":104,\"flops\":48}"), std::string::npos)
      << matmulEvent;
  EXPECT_NE(reluEvent.find("\"bytes\":64,\"flops\":0}"), std::string::npos)
      << reluEvent;

  params.step = 3;
  ex->beginStep();
  ASSERT_OK(ex->run(ProgramKind::Microbatch, params));
  EXPECT_EQ(tracer.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, Tracing, ::testing::ValuesIn(backendPointers()),
    [](const ::testing::TestParamInfo<const BackendEntry *> &info) {
      return backendParamName(*info.param);
    });

} // namespace
