//===- CollectivesTest.cpp - collectives on groups of 2, 3 and 4 ranks ----===//
//
// Every rank is a thread with its own executor, joined by one
// LocalCommunicatorGroup, as a Session runs them; the results every rank
// downloads are compared with the arithmetic done in double here.
//
//===----------------------------------------------------------------------===//

#include "Backends.h"
#include "Harness.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <tuple>

namespace {

using namespace loom::conformance;
namespace plan = loom::plan;
namespace rt = loom::runtime;

using Values = std::vector<double>;

std::vector<const BackendEntry *> backendPointers() {
  std::vector<const BackendEntry *> list;
  for (const BackendEntry &b : backends())
    list.push_back(&b);
  return list;
}

class Collectives
    : public ::testing::TestWithParam<std::tuple<const BackendEntry *, int>> {
protected:
  const BackendEntry &backend() const { return *std::get<0>(GetParam()); }
  int64_t ranks() const { return std::get<1>(GetParam()); }
  Tolerance tolerance() const {
    return backend().tolerance(Family::Collective);
  }

  /// On every rank r: uploads inputs[r], runs `program`, downloads
  /// `outputs` into results[r] and reads the step's outputs. False when
  /// a rank failed or the test was skipped (reported).
  bool runRanks(const plan::PlanT &p,
                const std::vector<std::map<BufferId, Values>> &inputs,
                const std::vector<BufferId> &outputs,
                std::vector<std::vector<Values>> &results,
                const StepParams &params = {},
                ProgramKind program = ProgramKind::Microbatch,
                std::vector<rt::StepOutputs> *stepOutputs = nullptr) {
    int64_t n = meshOf(p).numRanks();
    results.assign(size_t(n), std::vector<Values>(outputs.size()));
    if (stepOutputs)
      stepOutputs->assign(size_t(n), {});
    return onEveryRank(
        backend(), p, [&](int64_t r, rt::Executor &ex) -> rt::Status {
          for (const auto &[id, values] : inputs[size_t(r)])
            if (rt::Status s = uploadValues(ex, p, id, values); !s.ok())
              return s;
          ex.beginStep();
          if (rt::Status s = ex.run(program, params); !s.ok())
            return s;
          for (size_t i = 0; i < outputs.size(); ++i) {
            auto got = downloadValues(ex, p, outputs[i]);
            if (!got.ok())
              return rt::Status::error(got.message());
            results[size_t(r)][i] = std::move(*got);
          }
          if (stepOutputs) {
            auto read = ex.readStepOutputs();
            if (!read.ok())
              return rt::Status::error(read.message());
            (*stepOutputs)[size_t(r)] = *read;
          }
          return rt::Status::success();
        });
  }
};

Values sum(const std::vector<Values> &vs) {
  Values s(vs.front().size(), 0.0);
  for (const Values &v : vs)
    for (size_t i = 0; i < s.size(); ++i)
      s[i] += v[i];
  return s;
}

std::string rankText(int64_t r) { return "rank " + std::to_string(r); }

TEST_P(Collectives, AllReduceSumIntoAnotherBuffer) {
  int64_t n = ranks();
  PlanSketch sketch(1, 1, n);
  BufferId x = sketch.buffer("x", plan::DType::F32, {3, 5}),
           y = sketch.buffer("y", plan::DType::F32, {3, 5});
  sketch.instruction(Op::AllReduce, {x}, {y},
                     {intAttr(Attr::Axis, 2), textAttr(Attr::Kind, "sum")});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<std::map<BufferId, Values>> inputs(static_cast<size_t>(n));
  std::vector<Values> xs;
  for (int64_t r = 0; r < n; ++r) {
    xs.push_back(uniform(15, 300 + uint64_t(r)));
    inputs[size_t(r)][x] = xs.back();
  }
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {x, y}, results))
    return;
  for (int64_t r = 0; r < n; ++r) {
    expectClose(results[size_t(r)][1], sum(xs), tolerance(),
                rankText(r) + "'s sum");
    expectClose(results[size_t(r)][0], xs[size_t(r)], {0, 0},
                rankText(r) + "'s input, left as it was");
  }
}

TEST_P(Collectives, AllReduceMaxOverDataParallelRanks) {
  int64_t n = ranks();
  PlanSketch sketch(n, 1, 1);
  BufferId x = sketch.buffer("x", plan::DType::F32, {7}),
           y = sketch.buffer("y", plan::DType::F32, {7});
  sketch.instruction(Op::AllReduce, {x}, {y},
                     {intAttr(Attr::Axis, 0), textAttr(Attr::Kind, "max")});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<std::map<BufferId, Values>> inputs(static_cast<size_t>(n));
  Values want(7, -INFINITY);
  for (int64_t r = 0; r < n; ++r) {
    Values v = uniform(7, 310 + uint64_t(r));
    for (size_t i = 0; i < 7; ++i)
      want[i] = std::max(want[i], v[i]);
    inputs[size_t(r)][x] = v;
  }
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {y}, results))
    return;
  for (int64_t r = 0; r < n; ++r)
    expectClose(results[size_t(r)][0], want, {0, 0}, rankText(r) + "'s max");
}

// Data parallelism's gradient buckets: adjacent f32 buffers of one arena
// (up to a small gap) reduced in place as one span. The buffer after the
// bucket is not part of it.
TEST_P(Collectives, AllReduceBucketInPlace) {
  int64_t n = ranks();
  PlanSketch sketch(1, 1, n);
  plan::Arena arena = plan::Arena::Persistent;
  BufferId a = sketch.bufferAt("a.grad", plan::DType::F32, {6}, arena, 128),
           b = sketch.bufferAt("b.grad", plan::DType::F32, {2, 5}, arena, 152),
           c = sketch.bufferAt("c.grad", plan::DType::F32, {3}, arena, 196),
           after = sketch.bufferAt("after", plan::DType::F32, {4}, arena, 256);
  sketch.instruction(Op::AllReduce, {c, a, b}, {c, a, b},
                     {intAttr(Attr::Axis, 2), textAttr(Attr::Kind, "sum")});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<std::map<BufferId, Values>> inputs(static_cast<size_t>(n));
  std::vector<std::vector<Values>> per(3);
  Values guard = uniform(4, 320);
  for (int64_t r = 0; r < n; ++r) {
    uint64_t seed = 330 + 10 * uint64_t(r);
    per[0].push_back(uniform(6, seed));
    per[1].push_back(uniform(10, seed + 1));
    per[2].push_back(uniform(3, seed + 2));
    inputs[size_t(r)] = {{a, per[0].back()},
                         {b, per[1].back()},
                         {c, per[2].back()},
                         {after, guard}};
  }
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {a, b, c, after}, results))
    return;
  for (int64_t r = 0; r < n; ++r) {
    for (size_t k = 0; k < 3; ++k)
      expectClose(results[size_t(r)][k], sum(per[k]), tolerance(),
                  rankText(r) + "'s bucket buffer " + std::to_string(k));
    expectClose(results[size_t(r)][3], guard, {0, 0},
                rankText(r) + "'s buffer after the bucket");
  }
}

// A mesh of two axes: the reduction runs within each tp group (the ranks
// sharing a dp coordinate), not over the whole mesh.
TEST_P(Collectives, AllReduceWithinTheGroupsOfOneAxis) {
  int64_t n = ranks();
  PlanSketch sketch(2, 1, n);
  BufferId x = sketch.buffer("x", plan::DType::F32, {5}),
           y = sketch.buffer("y", plan::DType::F32, {5});
  sketch.instruction(Op::AllReduce, {x}, {y},
                     {intAttr(Attr::Axis, 2), textAttr(Attr::Kind, "sum")});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  rt::MeshShape mesh = meshOf(*p);
  std::vector<std::map<BufferId, Values>> inputs(size_t(2 * n));
  std::vector<Values> byGroup[2];
  for (int64_t r = 0; r < 2 * n; ++r) {
    Values v = uniform(5, 340 + uint64_t(r));
    inputs[size_t(r)][x] = v;
    byGroup[mesh.coordinates(r)[0]].push_back(v);
  }
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {y}, results))
    return;
  for (int64_t r = 0; r < 2 * n; ++r)
    expectClose(results[size_t(r)][0], sum(byGroup[mesh.coordinates(r)[0]]),
                tolerance(), mesh.describe(r) + "'s sum over tp");
}

TEST_P(Collectives, AllGatherAlongEitherDimension) {
  int64_t n = ranks();
  PlanSketch sketch(1, 1, n);
  BufferId x = sketch.buffer("x", plan::DType::F32, {2, 3}),
           rows = sketch.buffer("rows", plan::DType::F32, {2 * n, 3}),
           cols = sketch.buffer("cols", plan::DType::F32, {2, 3 * n});
  sketch.instruction(Op::AllGather, {x}, {rows},
                     {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 0)});
  sketch.instruction(Op::AllGather, {x}, {cols},
                     {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 1)});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<std::map<BufferId, Values>> inputs(static_cast<size_t>(n));
  Values wantRows(size_t(6 * n)), wantCols(size_t(6 * n));
  for (int64_t r = 0; r < n; ++r) {
    Values v = uniform(6, 350 + uint64_t(r));
    inputs[size_t(r)][x] = v;
    placeBlock(wantRows, {2 * n, 3}, v, {2, 3}, {2 * r, 0});
    placeBlock(wantCols, {2, 3 * n}, v, {2, 3}, {0, 3 * r});
  }
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {rows, cols}, results))
    return;
  for (int64_t r = 0; r < n; ++r) {
    expectClose(results[size_t(r)][0], wantRows, {0, 0},
                rankText(r) + "'s gather along dim 0");
    expectClose(results[size_t(r)][1], wantCols, {0, 0},
                rankText(r) + "'s gather along dim 1");
  }
}

TEST_P(Collectives, ReduceScatterAlongEitherDimension) {
  int64_t n = ranks();
  PlanSketch sketch(1, 1, n);
  BufferId wide = sketch.buffer("wide", plan::DType::F32, {2, 3 * n}),
           tall = sketch.buffer("tall", plan::DType::F32, {2 * n, 3}),
           fromWide = sketch.buffer("from_wide", plan::DType::F32, {2, 3}),
           fromTall = sketch.buffer("from_tall", plan::DType::F32, {2, 3});
  sketch.instruction(Op::ReduceScatter, {wide}, {fromWide},
                     {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 1)});
  sketch.instruction(Op::ReduceScatter, {tall}, {fromTall},
                     {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 0)});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<std::map<BufferId, Values>> inputs(static_cast<size_t>(n));
  std::vector<Values> wides, talls;
  for (int64_t r = 0; r < n; ++r) {
    wides.push_back(uniform(6 * n, 360 + uint64_t(r)));
    talls.push_back(uniform(6 * n, 370 + uint64_t(r)));
    inputs[size_t(r)] = {{wide, wides.back()}, {tall, talls.back()}};
  }
  Values wideSum = sum(wides), tallSum = sum(talls);
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {fromWide, fromTall}, results))
    return;
  for (int64_t r = 0; r < n; ++r) {
    expectClose(results[size_t(r)][0],
                blockOf(wideSum, {2, 3 * n}, {2, 3}, {0, 3 * r}), tolerance(),
                rankText(r) + "'s block along dim 1");
    expectClose(results[size_t(r)][1],
                blockOf(tallSum, {2 * n, 3}, {2, 3}, {2 * r, 0}), tolerance(),
                rankText(r) + "'s block along dim 0");
  }
}

TEST_P(Collectives, AllSliceKeepsEachRanksBlock) {
  int64_t n = ranks();
  PlanSketch sketch(1, 1, n);
  BufferId x = sketch.buffer("x", plan::DType::F32, {2, 3 * n}),
           xb = sketch.buffer("x_block", plan::DType::F32, {2, 3}),
           l = sketch.buffer("labels", plan::DType::I32, {2 * n, 2}),
           lb = sketch.buffer("labels_block", plan::DType::I32, {2, 2});
  sketch.instruction(Op::AllSlice, {x}, {xb},
                     {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 1)});
  sketch.instruction(Op::AllSlice, {l}, {lb},
                     {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 0)});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  Values xv = uniform(6 * n, 380), lv = integers(4 * n, 381, 0, 1000);
  std::vector<std::map<BufferId, Values>> inputs(size_t(n), {{x, xv}, {l, lv}});
  std::vector<std::vector<Values>> results;
  if (!runRanks(*p, inputs, {xb, lb}, results))
    return;
  for (int64_t r = 0; r < n; ++r) {
    expectClose(results[size_t(r)][0],
                blockOf(xv, {2, 3 * n}, {2, 3}, {0, 3 * r}), {0, 0},
                rankText(r) + "'s f32 block");
    expectClose(results[size_t(r)][1],
                blockOf(lv, {2 * n, 2}, {2, 2}, {2 * r, 0}), {0, 0},
                rankText(r) + "'s i32 block");
  }
}

// grad_norm over tp: each rank counts its block of a split gradient, only
// coordinate 0 the whole (replicated) ones, and the squares are summed over
// the axis: every rank reads the same global norm.
TEST_P(Collectives, GradNormOverTheAxis) {
  int64_t n = ranks();
  PlanSketch sketch(1, 1, n);
  BufferId split = sketch.buffer("qkv.grad", plan::DType::F32, {4},
                                 plan::Arena::Persistent),
           whole = sketch.buffer("ln.grad", plan::DType::F32, {3},
                                 plan::Arena::Persistent);
  sketch.instruction(Op::GradNorm, {split, whole}, {},
                     {intsAttr(Attr::Split, {1, 0}), intAttr(Attr::Axis, 2)},
                     ProgramKind::Optimizer);
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<std::map<BufferId, Values>> inputs(static_cast<size_t>(n));
  double squares = 0;
  for (int64_t r = 0; r < n; ++r) {
    Values s = uniform(4, 390 + uint64_t(r)), w = uniform(3, 400 + uint64_t(r));
    for (double v : s)
      squares += v * v;
    if (r == 0)
      for (double v : w)
        squares += v * v;
    inputs[size_t(r)] = {{split, s}, {whole, w}};
  }
  StepParams params;
  params.gradScale = 0.25;
  std::vector<std::vector<Values>> results;
  std::vector<rt::StepOutputs> outputs;
  if (!runRanks(*p, inputs, {}, results, params, ProgramKind::Optimizer,
                &outputs))
    return;
  for (int64_t r = 0; r < n; ++r) {
    expectClose({outputs[size_t(r)].gradNorm},
                {std::sqrt(squares) * params.gradScale},
                backend().tolerance(Family::Optimizer),
                rankText(r) + "'s gradient norm");
    EXPECT_FALSE(outputs[size_t(r)].nonFinite);
  }
}

// Pipeline stages pass activations point to point: a ring along pp.
TEST_P(Collectives, SendAndReceiveAlongTheAxis) {
  int64_t n = ranks();
  PlanSketch sketch(1, n, 1);
  BufferId out = sketch.buffer("activation_out", plan::DType::F32, {2, 4}),
           in = sketch.buffer("activation_in", plan::DType::F32, {2, 4});
  auto p = sketch.finish();
  ASSERT_TRUE(p);
  std::vector<Values> sent(static_cast<size_t>(n)),
      received(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r)
    sent[size_t(r)] = uniform(8, 410 + uint64_t(r));
  bool ran = onEveryRank(
      backend(), *p, [&](int64_t r, rt::Executor &ex) -> rt::Status {
        if (rt::Status s = uploadValues(ex, *p, out, sent[size_t(r)]); !s.ok())
          return s;
        if (rt::Status s = ex.send(out, 1, (r + 1) % n, 5, "the ring"); !s.ok())
          return s;
        if (rt::Status s = ex.recv(in, 1, (r + n - 1) % n, 5, "the ring");
            !s.ok())
          return s;
        auto got = downloadValues(ex, *p, in);
        if (!got.ok())
          return rt::Status::error(got.message());
        received[size_t(r)] = std::move(*got);
        return rt::Status::success();
      });
  if (!ran)
    return;
  for (int64_t r = 0; r < n; ++r)
    expectClose(received[size_t(r)], sent[size_t((r + n - 1) % n)], {0, 0},
                rankText(r) + "'s activation from the stage before");
}

INSTANTIATE_TEST_SUITE_P(
    Backends, Collectives,
    ::testing::Combine(::testing::ValuesIn(backendPointers()),
                       ::testing::Values(2, 3, 4)),
    [](const ::testing::TestParamInfo<Collectives::ParamType> &info) {
      return backendParamName(*std::get<0>(info.param)) + "_" +
             std::to_string(std::get<1>(info.param)) + "_ranks";
    });

// The same cases through the CUDA executor's device collectives (NCCL's
// path on a GPU), emulated over the local communicator.
INSTANTIATE_TEST_SUITE_P(
    DevicePath, Collectives,
    ::testing::Combine(::testing::Values(&deviceCollectivesEntry()),
                       ::testing::Values(2, 3, 4)),
    [](const ::testing::TestParamInfo<Collectives::ParamType> &info) {
      return backendParamName(*std::get<0>(info.param)) + "_" +
             std::to_string(std::get<1>(info.param)) + "_ranks";
    });

} // namespace
