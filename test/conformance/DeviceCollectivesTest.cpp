//===- DeviceCollectivesTest.cpp - a tiny GPT through NCCL's path -------===//
//
// The CUDA executor's device-collective path (what the nccl communicator
// gives it on a GPU) trains the tiny GPT as its host path does, without a
// GPU: on cuda-emulated, one Session per rank (as under a launcher, each
// with its own rank's executor) joined by DeviceCollectivesOverLocal over
// one LocalCommunicatorGroup, against a Session whose thread ranks stage
// their collectives through the host, and against the cpu backend. The
// wrapper sums in group order as the local communicator does, so the two
// cuda-emulated runs must agree bit for bit; the cpu backend within the
// whole step's tolerances (WholeStepTest.cpp's). CollectivesTest.cpp runs
// the collective cases through the same path (its DevicePath instances).
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "Backends.h"
#include "DeviceCollectivesOverLocal.h"
#include "Harness.h"

#include "loom/runtime/Session.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <thread>

namespace {

using namespace loom::conformance;
namespace plan = loom::plan;
namespace rt = loom::runtime;
using loom::test::DeviceCollectivesOverLocal;

// Two microbatches of 2 × 6 tokens of the vocabulary of 13, one label
// ignored (WholeStepTest.cpp's, twice).
std::vector<int32_t> tokens() {
  std::vector<int32_t> t = {1, 5, 9, 2, 0, 12, 3, 3, 7, 11, 4, 8};
  for (size_t i = 0; i < 12; ++i)
    t.push_back((t[i] * 5 + 3) % 13);
  return t;
}
std::vector<int32_t> labels() {
  std::vector<int32_t> l = {5, 9, 2, 0, 12, 3, 3, 7, 11, 4, 8, -100};
  for (size_t i = 0; i < 12; ++i)
    l.push_back((l[i] < 0 ? 2 : l[i] * 7 + 1) % 13);
  return l;
}

rt::SessionOptions sessionOptions(const std::string &backend) {
  rt::SessionOptions o;
  o.backend = backend;
  o.collectiveTimeoutSeconds = 120;
  o.lr = 1e-3;
  o.minLr = 1e-4;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weightDecay = 0.1;
  o.clipGrad = 0.5;
  return o;
}

bool sameBits(double a, double b) { return std::memcmp(&a, &b, 8) == 0; }

/// Every rank of the plan a Session of its own on cuda-emulated, with the
/// device-collectives communicator: each step's metrics of rank 0, or the
/// first rank's error.
struct DevicePathJob {
  rt::MeshShape mesh;
  std::unique_ptr<rt::LocalCommunicatorGroup> group;
  std::vector<std::unique_ptr<DeviceCollectivesOverLocal>> comms;
  std::vector<std::unique_ptr<rt::Session>> sessions;

  rt::Status open(const std::string &path, const plan::PlanT &p) {
    mesh = meshOf(p);
    group = std::make_unique<rt::LocalCommunicatorGroup>(mesh, 120);
    for (int64_t r = 0; r < mesh.numRanks(); ++r) {
      comms.push_back(
          std::make_unique<DeviceCollectivesOverLocal>(group->forRank(r)));
      rt::SessionOptions o = sessionOptions("cuda-emulated");
      o.processComm = comms.back().get();
      auto s = rt::Session::open(path, o);
      if (!s.ok())
        return rt::Status::error(s.message());
      if (rt::Status init = (*s)->initializeParameters(); !init.ok())
        return init;
      sessions.push_back(std::move(*s));
    }
    return rt::Status::success();
  }

  rt::Result<rt::StepMetrics> step(const int32_t *tokens,
                                   const int32_t *labels) {
    size_t n = sessions.size();
    std::vector<rt::Result<rt::StepMetrics>> got(
        n, rt::Status::error("did not run"));
    std::vector<std::thread> threads;
    for (size_t r = 0; r < n; ++r)
      threads.emplace_back([&, r] {
        got[r] = sessions[r]->step(tokens, labels);
        if (!got[r].ok()) // the others stop waiting for this rank
          comms[r]->abort(got[r].message());
      });
    for (std::thread &t : threads)
      t.join();
    for (size_t r = 0; r < n; ++r)
      if (!got[r].ok())
        return rt::Status::error(mesh.describe(int64_t(r)) + ": " +
                                 got[r].message());
    return got[0];
  }

  int64_t deviceCalls() const {
    int64_t calls = 0;
    for (const auto &c : comms)
      calls += c->deviceCalls();
    return calls;
  }
};

class DeviceCollectivesPath : public TinyGptTest {};

TEST_F(DeviceCollectivesPath, TrainsAsTheHostPathBitForBit) {
  struct Case {
    const char *compute, *mesh;
  };
  const Case cases[] = {{"f32", "tp=2"},
                        {"f32", "dp=2"},
                        {"f32", "pp=2"},
                        {"f32", "dp=2,tp=2"},
                        {"bf16", "tp=2"}};
  std::vector<int32_t> t = tokens(), l = labels();
  const int kSteps = 4;
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.compute) + " mesh '" + c.mesh + "'");
    bool bf16 = std::string(c.compute) == "bf16";
    std::string path = ::testing::TempDir() + "/loom-devcoll-" + c.compute +
                       "-" + c.mesh + ".plan";
    mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, 4, c.compute, c.mesh);
    ASSERT_TRUE(module);
    std::unique_ptr<plan::PlanT> p = planOf(*module);
    ASSERT_TRUE(p);
    ASSERT_OK(rt::writePlan(*p, path));

    DevicePathJob device;
    ASSERT_OK(device.open(path, *p));
    auto host = rt::Session::open(path, sessionOptions("cuda-emulated"));
    ASSERT_TRUE(host.ok()) << host.message();
    ASSERT_OK((*host)->initializeParameters());
    auto cpu = rt::Session::open(path, sessionOptions("cpu"));
    ASSERT_TRUE(cpu.ok()) << cpu.message();
    ASSERT_OK((*cpu)->initializeParameters());
    for (int step = 1; step <= kSteps; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      auto got = device.step(t.data(), l.data());
      ASSERT_TRUE(got.ok()) << got.message();
      auto staged = (*host)->step(t.data(), l.data());
      ASSERT_TRUE(staged.ok()) << staged.message();
      auto want = (*cpu)->step(t.data(), l.data());
      ASSERT_TRUE(want.ok()) << want.message();
      EXPECT_TRUE(sameBits(got->loss, staged->loss))
          << "the loss through device collectives " << got->loss
          << ", through the host " << staged->loss;
      EXPECT_TRUE(sameBits(got->gradNorm, staged->gradNorm))
          << "the gradient norm through device collectives " << got->gradNorm
          << ", through the host " << staged->gradNorm;
      double rtol = bf16 ? 2e-3 : 1e-5;
      expectClose({got->loss}, {want->loss}, {rtol, 0}, "the loss (cpu)");
      expectClose({got->gradNorm}, {want->gradNorm}, {bf16 ? 1e-2 : 1e-4, 0},
                  "the gradient norm (cpu)");
    }
    // The collectives (tp, dp) and the pipeline's sends (pp) went through
    // the device path, not the host's.
    EXPECT_GT(device.deviceCalls(), 0);
    std::remove(path.c_str());
  }
}

} // namespace
