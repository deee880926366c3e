//===- NcclCommunicatorTest.cpp - the nccl communicator, or why not -------===//
//
// Without a GPU (CI), createNcclCommunicator must fail naming the cause
// (no usable GPU; in a build without NCCL, that), after taking part in the
// unique id's broadcast. On a GPU, a 1-rank world (NCCL refuses two ranks on
// one device, so one GPU holds one rank) runs every collective, on host
// and on device buffers, against the local communicator of the same mesh.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Communicator.h"
#include "loom/runtime/cuda/CudaBackend.h"
#include "loom/runtime/cuda/DeviceCollectives.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace loom::runtime;

namespace {

int gpuCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

/// The broadcast of a 1-rank world: rank 0's value, counting the calls.
struct OneRankBroadcast {
  int calls = 0;
  std::string key;
  std::function<Result<std::string>(const std::string &, const std::string &)>
  fn() {
    return [this](const std::string &k,
                  const std::string &v) -> Result<std::string> {
      ++calls;
      key = k;
      return v;
    };
  }
};

MeshShape oneRankMesh() { return MeshShape{{"dp", "tp"}, {1, 1}}; }

TEST(NcclCommunicatorTest, WithoutAGpuCreationSaysWhy) {
  if (gpuCount() > 0)
    GTEST_SKIP() << "a GPU is here; the error for none is not seen";
  OneRankBroadcast b;
  auto comm = cuda::createNcclCommunicator(oneRankMesh(), 0, 0, b.fn(),
                                           ProcessCommOptions{});
  ASSERT_FALSE(comm.ok());
  const std::string &m = comm.message();
  EXPECT_NE(m.find("the nccl communicator (rank 0 (dp=0, tp=0), GPU 0)"),
            std::string::npos)
      << m;
  if (cuda::ncclAvailable()) {
    EXPECT_NE(m.find("no usable GPU"), std::string::npos) << m;
    // It still took part in the id's broadcast, so no rank waits for it.
    EXPECT_EQ(b.calls, 1);
    EXPECT_EQ(b.key, "loom/nccl/unique-id");
  } else {
    EXPECT_NE(m.find("built without NCCL"), std::string::npos) << m;
  }
  std::printf("without a GPU: %s\n", m.c_str());
}

TEST(NcclCommunicatorTest, AnInvalidRankOrMeshIsRefused) {
  OneRankBroadcast b;
  auto comm = cuda::createNcclCommunicator(oneRankMesh(), 3, 0, b.fn(),
                                           ProcessCommOptions{});
  ASSERT_FALSE(comm.ok());
  if (cuda::ncclAvailable()) {
    EXPECT_NE(comm.message().find("the mesh has 1 ranks"), std::string::npos)
        << comm.message();
  }
}

class NcclOnTheGpu : public ::testing::Test {
protected:
  void SetUp() override {
    if (gpuCount() == 0)
      GTEST_SKIP() << "no GPU: the nccl communicator is checked on a machine "
                      "with one";
    if (!cuda::ncclAvailable())
      GTEST_SKIP() << "this build has no NCCL";
    OneRankBroadcast b;
    ProcessCommOptions options;
    options.timeoutSeconds = 60;
    auto made =
        cuda::createNcclCommunicator(oneRankMesh(), 0, 0, b.fn(), options);
    ASSERT_TRUE(made.ok()) << made.message();
    nccl = std::move(*made);
    ASSERT_NE(nccl->deviceCollectives(), nullptr);
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  }
  void TearDown() override {
    for (void *p : allocations)
      cudaFree(p);
    if (stream)
      cudaStreamDestroy(stream);
    nccl.reset();
  }
  float *onDevice(const std::vector<float> &v) {
    void *p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, v.size() * 4 + 4), cudaSuccess);
    allocations.push_back(p);
    EXPECT_EQ(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice),
              cudaSuccess);
    return static_cast<float *>(p);
  }
  std::vector<float> fromDevice(const float *p, size_t n) {
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::vector<float> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), p, n * 4, cudaMemcpyDeviceToHost),
              cudaSuccess);
    return v;
  }

  std::unique_ptr<Communicator> nccl;
  LocalCommunicatorGroup local{oneRankMesh(), 60};
  cudaStream_t stream = nullptr;
  std::vector<void *> allocations;
};

std::vector<float> ramp(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = 0.25f * float(i) - 3.0f;
  return v;
}

TEST_F(NcclOnTheGpu, HostCollectivesMatchTheLocalCommunicator) {
  Communicator &ref = local.forRank(0);
  std::vector<float> in = ramp(24), a(24), b(24);
  for (int axis = 0; axis < 2; ++axis) {
    ASSERT_TRUE(nccl->allReduce(axis, in.data(), a.data(), 24, CommDType::F32,
                                ReduceKind::Sum, "sum")
                    .ok());
    ASSERT_TRUE(ref.allReduce(axis, in.data(), b.data(), 24, CommDType::F32,
                              ReduceKind::Sum, "sum")
                    .ok());
    EXPECT_EQ(a, b);
    ASSERT_TRUE(
        nccl->allGather(axis, in.data(), a.data(), 4, 6, CommDType::F32, "ag")
            .ok());
    ASSERT_TRUE(
        ref.allGather(axis, in.data(), b.data(), 4, 6, CommDType::F32, "ag")
            .ok());
    EXPECT_EQ(a, b);
    ASSERT_TRUE(nccl->reduceScatter(axis, in.data(), a.data(), 4, 6,
                                    CommDType::F32, "rs")
                    .ok());
    ASSERT_TRUE(
        ref.reduceScatter(axis, in.data(), b.data(), 4, 6, CommDType::F32, "rs")
            .ok());
    EXPECT_EQ(a, b);
    std::vector<float> c = in;
    ASSERT_TRUE(nccl->broadcast(axis, c.data(), 24, CommDType::F32, 0, "bc")
                    .ok());
    EXPECT_EQ(c, in);
  }
  std::vector<double> d{1.5, -2.0}, e(2);
  ASSERT_TRUE(nccl->allReduce(1, d.data(), e.data(), 2, CommDType::F64,
                              ReduceKind::Max, "max")
                  .ok());
  EXPECT_EQ(e, d);
  // A root outside the group is refused, naming it.
  Status bad = nccl->broadcast(1, d.data(), 2, CommDType::F64, 1, "bc");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("names root 1"), std::string::npos)
      << bad.message();
}

TEST_F(NcclOnTheGpu, WorldGatherAndBroadcast) {
  std::vector<uint8_t> mine{1, 2, 3, 4, 5};
  std::vector<std::vector<uint8_t>> atRoot;
  Status s = nccl->gatherToRoot(mine, &atRoot, "state");
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(atRoot.size(), 1u);
  EXPECT_EQ(atRoot[0], mine);
  std::vector<uint8_t> bytes{9, 8, 7};
  s = nccl->broadcastFromRoot(bytes, "state");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(bytes, (std::vector<uint8_t>{9, 8, 7}));
}

TEST_F(NcclOnTheGpu, DeviceCollectivesOnTheStream) {
  DeviceCollectives &dc = *nccl->deviceCollectives();
  std::vector<float> in = ramp(24);
  float *x = onDevice(in), *y = onDevice(std::vector<float>(24, 0));
  for (int axis = 0; axis < 2; ++axis) {
    ASSERT_TRUE(dc.allReduce(axis, x, y, 24, CommDType::F32, ReduceKind::Sum,
                             stream, "sum")
                    .ok());
    EXPECT_EQ(fromDevice(y, 24), in);
    ASSERT_TRUE(dc.allGather(axis, x, y, 24, CommDType::F32, stream, "ag").ok());
    EXPECT_EQ(fromDevice(y, 24), in);
    ASSERT_TRUE(
        dc.reduceScatter(axis, x, y, 24, CommDType::F32, stream, "rs").ok());
    EXPECT_EQ(fromDevice(y, 24), in);
    ASSERT_TRUE(
        dc.broadcast(axis, y, 24, CommDType::F32, 0, stream, "bc").ok());
    EXPECT_EQ(fromDevice(y, 24), in);
  }
  // Alone on every axis, nobody to send to.
  Status s = dc.send(0, 0, x, 24, CommDType::F32, 0, stream, "act");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot send to itself"), std::string::npos)
      << s.message();
}

TEST_F(NcclOnTheGpu, AbortFailsLaterCalls) {
  nccl->abort("the watchdog says rank 3 died");
  std::vector<float> in = ramp(4), out(4);
  Status s = nccl->allReduce(0, in.data(), out.data(), 4, CommDType::F32,
                             ReduceKind::Sum, "loss");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rank 3 died"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("all_reduce 'loss'"), std::string::npos)
      << s.message();
}

} // namespace
