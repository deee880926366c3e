//===- GradientOverlapTest.cpp - dp gradient all-reduces overlapped -------===//
//
// The tiny GPT with small gradient buckets (1 KB, so a dozen or more per
// step), on meshes with data parallelism: the analysis puts each bucket's
// ready point at the last microbatch instruction touching its span; a
// session trains to the same bits with the overlap on and off; the trace
// shows a bucket's all-reduce starting on the rank's comm track before the
// last microbatch ends; and an overlapped all-reduce that times out or is
// aborted fails the step with the message the inline one gives.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "loom/runtime/Backend.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/GradientBuckets.h"
#include "loom/runtime/Session.h"
#include "loom/runtime/Trace.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <regex>
#include <set>

namespace rt = loom::runtime;
namespace plan = loom::plan;

namespace {

class GradientOverlapTest : public TinyGptTest {
protected:
  /// The tiny GPT's plan on `mesh`, gradients in buckets of about 1 KB.
  std::unique_ptr<plan::PlanT> smallBuckets(llvm::StringRef mesh,
                                            int64_t global = 8) {
    mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, global, "f32", mesh);
    if (!module)
      return nullptr;
    loom::PlanOptions options;
    options.optimizer.decay_style = "cosine";
    options.gradBucketBytes = 1024;
    options.fuseOptimizer = true;
    auto built = loom::buildPlan(*module, options);
    EXPECT_TRUE(mlir::succeeded(built));
    return mlir::succeeded(built) ? std::move(*built) : nullptr;
  }

  std::string write(const plan::PlanT &p, const std::string &name) {
    std::string path = ::testing::TempDir() + "/loom-overlap-" + name + ".plan";
    EXPECT_TRUE(rt::writePlan(p, path).ok());
    return path;
  }
};

/// A global batch of `samples` sequences of 6 tokens (vocabulary 13).
void batchOf(int64_t samples, std::vector<int32_t> &tokens,
             std::vector<int32_t> &labels) {
  tokens.clear();
  labels.clear();
  for (int64_t i = 0; i < samples * 6; ++i) {
    tokens.push_back(int32_t((i * 7 + 3) % 13));
    labels.push_back(int32_t((i * 5 + 1) % 13));
  }
}

/// Whether plan buffer `id` shares a byte with [offset, offset + bytes) of
/// `arena`: the test's own account, from the plan's buffers.
bool inSpan(const plan::PlanT &p, int32_t id, plan::Arena arena, int64_t offset,
            int64_t bytes) {
  const plan::BufferT &b = *p.buffers[size_t(id)];
  return b.arena == arena && b.offset < offset + bytes &&
         offset < b.offset + b.bytes;
}

TEST_F(GradientOverlapTest, EachBucketIsReadyAfterItsLastWriter) {
  for (const char *mesh : {"dp=2", "dp=2,tp=2"}) {
    SCOPED_TRACE(mesh);
    std::unique_ptr<plan::PlanT> p = smallBuckets(mesh);
    ASSERT_TRUE(p);
    auto decoded = rt::decodePlan(*p);
    ASSERT_TRUE(decoded.ok()) << decoded.message();
    std::vector<rt::GradientBucket> buckets =
        rt::analyzeGradientBuckets(*p, *decoded);
    ASSERT_GT(buckets.size(), 4u) << "1 KB buckets: several per step";
    const auto &mb = p->microbatch->instructions;
    std::set<int64_t> readyPoints;
    for (size_t b = 0; b < buckets.size(); ++b) {
      const rt::GradientBucket &bucket = buckets[b];
      EXPECT_EQ(bucket.instruction, b) << "the buckets open the optimizer";
      ASSERT_TRUE(bucket.overlapped()) << bucket.why;
      // The last writer, found from the plan's raw operands.
      int64_t lastWriter = -1;
      for (size_t i = 0; i < mb.size(); ++i)
        for (int32_t out : mb[i]->outputs)
          if (inSpan(*p, out, plan::Arena(bucket.arena), bucket.offset,
                     int64_t(bucket.count) * 4))
            lastWriter = int64_t(i);
      EXPECT_EQ(bucket.readyAfter, lastWriter) << "bucket " << b;
      readyPoints.insert(bucket.readyAfter);
    }
    // Reverse parameter order: the first bucket is final well before the
    // backward ends, so there is something to overlap.
    EXPECT_GT(readyPoints.size(), 2u);
    EXPECT_LT(buckets.front().readyAfter, buckets.back().readyAfter);

    // A gradient the runtime writes after the microbatches keeps its bucket
    // inline.
    int32_t grad = p->parameters.front()->grad;
    std::vector<rt::GradientBucket> tied =
        rt::analyzeGradientBuckets(*p, *decoded, {grad});
    size_t inline_ = 0;
    for (const rt::GradientBucket &bucket : tied)
      if (!bucket.overlapped()) {
        ++inline_;
        EXPECT_TRUE(rt::bufferOverlapsBucket(*p, grad, bucket));
        EXPECT_NE(bucket.why.find("after the microbatches"), std::string::npos)
            << bucket.why;
      }
    EXPECT_EQ(inline_, 1u);
  }
}

/// Losses, gradient norms and every parameter after `steps` steps.
struct TrainedRun {
  std::vector<double> losses, norms;
  std::vector<std::vector<float>> params;
};

TrainedRun train(const std::string &path, const plan::PlanT &p, bool overlap,
                 int steps, rt::Tracer *tracer = nullptr) {
  TrainedRun run;
  rt::SessionOptions options;
  options.overlapGradReduce = overlap;
  options.collectiveTimeoutSeconds = 120;
  options.lr = 5e-3;
  options.minLr = 1e-4;
  options.eps = 1e-8;
  options.beta1 = 0.9;
  options.beta2 = 0.95;
  options.tracer = tracer;
  auto session = rt::Session::open(path, options);
  EXPECT_TRUE(session.ok()) << session.message();
  if (!session.ok())
    return run;
  EXPECT_TRUE((*session)->initializeParameters().ok());
  std::vector<int32_t> tokens, labels;
  batchOf(p.global_batch_size, tokens, labels);
  for (int s = 0; s < steps; ++s) {
    auto m = (*session)->step(tokens.data(), labels.data());
    EXPECT_TRUE(m.ok()) << m.message();
    if (!m.ok())
      return run;
    run.losses.push_back(m->loss);
    run.norms.push_back(m->gradNorm);
  }
  std::set<std::string> names;
  for (const auto &param : p.parameters)
    names.insert(param->name);
  for (const auto &chunk : p.chunks)
    for (const auto &param : chunk->parameters)
      names.insert(param->name);
  for (const std::string &name : names) {
    auto values = (*session)->parameter(name);
    EXPECT_TRUE(values.ok()) << values.message();
    run.params.push_back(values.ok() ? *values : std::vector<float>());
  }
  return run;
}

TEST_F(GradientOverlapTest, OverlapOnAndOffTrainToTheSameBits) {
  for (const char *mesh : {"dp=2", "dp=2,tp=2", "dp=2,pp=2"}) {
    SCOPED_TRACE(mesh);
    std::unique_ptr<plan::PlanT> p = smallBuckets(mesh);
    ASSERT_TRUE(p);
    std::string path = write(*p, "bits");
    TrainedRun on = train(path, *p, true, 4), off = train(path, *p, false, 4);
    ASSERT_EQ(on.losses.size(), 4u);
    ASSERT_EQ(off.losses.size(), 4u);
    EXPECT_EQ(on.losses, off.losses);
    EXPECT_EQ(on.norms, off.norms);
    ASSERT_EQ(on.params.size(), off.params.size());
    ASSERT_FALSE(on.params.empty());
    for (size_t i = 0; i < on.params.size(); ++i) {
      ASSERT_EQ(on.params[i].size(), off.params[i].size());
      EXPECT_EQ(0, std::memcmp(on.params[i].data(), off.params[i].data(),
                               on.params[i].size() * sizeof(float)))
          << "parameter " << i;
    }
    std::remove(path.c_str());
  }
}

/// A complete event of the trace.
struct Slice {
  std::string name;
  int64_t ts, dur;
  int tid;
};

std::vector<Slice> slicesOf(const std::string &json) {
  std::vector<Slice> slices;
  std::regex event("\"name\":\"([^\"]*)\",\"cat\":\"[^\"]*\",\"ph\":\"X\","
                   "\"ts\":(-?[0-9]+),\"dur\":([0-9]+),\"pid\":[0-9]+,"
                   "\"tid\":([0-9]+)");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), event);
       it != std::sregex_iterator(); ++it)
    slices.push_back({(*it)[1].str(), std::stoll((*it)[2].str()),
                      std::stoll((*it)[3].str()), std::stoi((*it)[4].str())});
  return slices;
}

TEST_F(GradientOverlapTest, ABucketsAllReduceStartsBeforeTheBackwardEnds) {
  std::unique_ptr<plan::PlanT> p = smallBuckets("dp=2");
  ASSERT_TRUE(p);
  std::string path = write(*p, "trace");
  auto decoded = rt::decodePlan(*p);
  ASSERT_TRUE(decoded.ok());
  size_t buckets = rt::analyzeGradientBuckets(*p, *decoded).size();
  for (bool overlap : {true, false}) {
    SCOPED_TRACE(overlap ? "overlap on" : "overlap off");
    rt::Tracer tracer;
    tracer.setSteps(2, 2);
    train(path, *p, overlap, 2, &tracer);
    std::vector<Slice> slices = slicesOf(tracer.json());
    for (int64_t rank = 0; rank < 2; ++rank) {
      int64_t lastMicrobatchEnd = -1;
      for (const Slice &s : slices)
        if (s.tid == rt::Tracer::rankTrack(rank) && s.name == "microbatch")
          lastMicrobatchEnd = std::max(lastMicrobatchEnd, s.ts + s.dur);
      ASSERT_GE(lastMicrobatchEnd, 0);
      // The hand-overs happen inside the last microbatch (when the comm
      // thread then runs is the scheduler's: under load it may start after
      // the backward, so the all_reduce slices' times are not checked).
      size_t onComm = 0, early = 0;
      for (const Slice &s : slices) {
        if (s.tid == rt::Tracer::commTrack(rank) && s.name == "all_reduce")
          ++onComm;
        if (s.tid == rt::Tracer::rankTrack(rank) &&
            s.name == "hand over all_reduce")
          early += s.ts + s.dur <= lastMicrobatchEnd;
      }
      if (overlap) {
        EXPECT_EQ(onComm, buckets)
            << "every bucket on rank " << rank << "'s comm track";
        EXPECT_EQ(early, buckets)
            << "every bucket is handed to the comm thread during the last "
               "microbatch's backward";
      } else {
        EXPECT_EQ(onComm, 0u);
      }
    }
  }
  std::remove(path.c_str());
}

/// Rank 0 of a dp=2 plan alone: its last microbatch runs, then the
/// optimizer's bucket all-reduces wait for a rank 1 that never comes.
/// `abortAfter`: abort the communicator instead of timing out.
std::string aloneOnDp(const plan::PlanT &p, bool overlap, bool abortAfter,
                      double *seconds) {
  rt::MeshShape mesh;
  for (const auto &axis : p.mesh) {
    mesh.names.push_back(axis->name);
    mesh.sizes.push_back(axis->size);
  }
  rt::LocalCommunicatorGroup group(mesh, abortAfter ? 0 : 0.3);
  rt::RankContext context;
  context.coords.assign(mesh.names.size(), 0);
  context.comm = &group.forRank(0);
  context.overlapGradReduce = overlap;
  auto executor = rt::createExecutor("cpu", p, context);
  EXPECT_TRUE(executor.ok()) << executor.message();
  if (!executor.ok())
    return "";
  auto start = std::chrono::steady_clock::now();
  std::string message;
  {
    std::unique_ptr<rt::Executor> ex = std::move(*executor);
    std::vector<int32_t> tokens, labels;
    batchOf(p.micro_batch_size, tokens, labels);
    for (const auto &input : p.inputs)
      EXPECT_TRUE(
          ex->upload(input->buffer,
                     input->name == "tokens" ? tokens.data() : labels.data(),
                     tokens.size() * 4)
              .ok());
    rt::StepParams params;
    params.lastMicrobatch = true;
    ex->beginStep();
    EXPECT_TRUE(ex->run(rt::ProgramKind::Microbatch, params).ok());
    if (abortAfter)
      group.forRank(0).abort("the test gives up");
    rt::Status s = ex->run(rt::ProgramKind::Optimizer, params);
    EXPECT_FALSE(s.ok());
    message = s.message();
  } // the executor goes, with its communication thread
  *seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return message;
}

TEST_F(GradientOverlapTest, AFailedOverlappedAllReduceFailsTheStepAsInline) {
  std::unique_ptr<plan::PlanT> p = smallBuckets("dp=2");
  ASSERT_TRUE(p);
  double onSeconds = 0, offSeconds = 0;
  std::string on = aloneOnDp(*p, true, false, &onSeconds),
              off = aloneOnDp(*p, false, false, &offSeconds);
  EXPECT_NE(off.find("optimizer instruction 0 (all_reduce"), std::string::npos)
      << off;
  EXPECT_NE(off.find("timed out after 0.3 s"), std::string::npos) << off;
  EXPECT_NE(off.find("not arrived: rank 1 (dp=1"), std::string::npos) << off;
  EXPECT_EQ(on, off);
  // Not one timeout per bucket: the queue stops at the first failure.
  EXPECT_LT(onSeconds, 1.5) << "off: " << offSeconds << " s";

  // Aborted while the communication thread waits (no timeout): the step
  // fails with the abort, and the executor goes without hanging.
  double seconds = 0;
  std::string aborted = aloneOnDp(*p, true, true, &seconds);
  EXPECT_NE(aborted.find("aborted the job: the test gives up"),
            std::string::npos)
      << aborted;
  EXPECT_EQ(aborted.rfind("optimizer instruction 0 (all_reduce", 0), 0u)
      << aborted;
  EXPECT_LT(seconds, 10);
}

} // namespace
