//===- CudaDeviceTest.cpp - the GPU device, or the error without one ------===//
//
// Without a GPU (CI), openCudaDevice must say there is no usable GPU and
// not crash; the rest skips, saying so. With one, the device's memory,
// streams, launches, GEMMs (against the CPU's reference GEMM) and graphs are
// checked on small shapes.
//
//===----------------------------------------------------------------------===//

#include "Device.h"

#include "loom/runtime/cpu/Float16.h"
#include "loom/runtime/cpu/Kernels.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

using namespace loom::runtime;
using namespace loom::runtime::cuda;

// Defined with the emulated device (emulation/EmulatedDevice.cpp), which
// this test does not link.
Device::~Device() = default;

namespace {

/// How many GPUs the runtime sees: 0 on any error (no driver).
int gpuCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

TEST(CudaDeviceTest, OpeningWithoutAGpuSaysThereIsNone) {
  if (gpuCount() > 0)
    GTEST_SKIP() << "a GPU is here; the error for none is not seen";
  Result<std::unique_ptr<Device>> device = openCudaDevice(0);
  ASSERT_FALSE(device.ok());
  EXPECT_NE(device.message().find("no usable GPU"), std::string::npos)
      << device.message();
  std::printf("without a GPU: %s\n", device.message().c_str());
}

class OnTheGpu : public ::testing::Test {
protected:
  void SetUp() override {
    if (gpuCount() == 0)
      GTEST_SKIP() << "no GPU: the device is checked on a machine with one";
    Result<std::unique_ptr<Device>> opened = openCudaDevice(0);
    ASSERT_TRUE(opened.ok()) << opened.message();
    device = std::move(*opened);
  }
  void TearDown() override {
    if (!device)
      return;
    for (void *p : allocations)
      device->release(p);
    device.reset();
  }
  void *alloc(size_t bytes) {
    Result<void *> p = device->allocate(bytes, "a test buffer");
    EXPECT_TRUE(p.ok()) << p.message();
    if (!p.ok())
      return nullptr;
    allocations.push_back(*p);
    return *p;
  }
  template <typename T> std::vector<T> fetch(const void *p, size_t n) {
    std::vector<T> out(n);
    Status s = device->download(out.data(), p, n * sizeof(T));
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  std::unique_ptr<Device> device;
  std::vector<void *> allocations;
};

TEST_F(OnTheGpu, DescribesItselfAndNamesTheOrdinalsItHas) {
  std::string d = device->describe();
  EXPECT_NE(d.find("sm_"), std::string::npos) << d;
  EXPECT_NE(d.find("GiB, device 0)"), std::string::npos) << d;
  EXPECT_FALSE(device->emulated());
  EXPECT_TRUE(device->supportsGraphs());
  Result<std::unique_ptr<Device>> past = openCudaDevice(gpuCount());
  ASSERT_FALSE(past.ok());
  EXPECT_NE(
      past.message().find("this machine has " + std::to_string(gpuCount())),
      std::string::npos)
      << past.message();
}

TEST_F(OnTheGpu, MemoryRoundTripsThroughBothStreams) {
  // More than one 64 MiB staging chunk, and an odd size.
  size_t n = (size_t(80) << 20) / 4 + 7;
  std::vector<float> host(n);
  for (size_t i = 0; i < n; ++i)
    host[i] = float(i % 10007) * 0.5f;
  void *a = alloc(n * 4), *b = alloc(n * 4);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 256, 0u);
  ASSERT_TRUE(device->upload(a, host.data(), n * 4, Stream::Comm).ok());
  // The source may be reused as soon as upload returns.
  std::fill(host.begin(), host.end(), -1.0f);
  ASSERT_TRUE(device->order(Stream::Comm, Stream::Compute).ok());
  ASSERT_TRUE(device->copy(b, a, n * 4).ok());
  ASSERT_TRUE(device->clear(b, 16 * 4).ok());
  std::vector<float> back = fetch<float>(b, n);
  for (size_t i = 0; i < n; ++i) {
    float want = i < 16 ? 0.0f : float(i % 10007) * 0.5f;
    ASSERT_EQ(back[i], want) << "at " << i;
  }
  EXPECT_TRUE(device->synchronize().ok());
}

TEST_F(OnTheGpu, AnAllocationTooLargeSaysWhatIsFree) {
  Result<void *> p = device->allocate(size_t(1) << 52, "a huge tensor");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find("cannot allocate 4503599627370496 bytes for a "
                             "huge tensor on "),
            std::string::npos)
      << p.message();
  EXPECT_NE(p.message().find("bytes are free"), std::string::npos)
      << p.message();
  // The failure leaves the device usable.
  EXPECT_TRUE(alloc(1024) != nullptr);
}

const char *kPlanKernels = R"cuda(
extern "C" __global__ void test_affine(float *out, long long n, int add,
                                       float by, double plus) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    out[i] = float(i) * by + float(add) + float(plus);
}
extern "C" __global__ void test_shared_sum(float *out, const float *in, int n) {
  extern __shared__ float slots[];
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    slots[i] = in[i];
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0;
    for (int i = 0; i < n; ++i)
      s += slots[i];
    out[0] = s;
  }
}
)cuda";

Launch affine(float *out, long long n, int add, float by, double plus) {
  Launch l;
  l.kernel = "test_affine";
  l.grid.x = 3; // fewer threads than elements: the loop strides
  l.block.x = 64;
  l.args = {out, KernelArg::i64v(n), KernelArg::i32v(add), KernelArg::f32v(by),
            KernelArg::f64v(plus)};
  return l;
}

TEST_F(OnTheGpu, LaunchesAPlansKernelsWithEveryArgumentKind) {
  ASSERT_TRUE(device
                  ->loadPlanKernels(kPlanKernels,
                                    {"test_affine", "test_shared_sum"}, nullptr,
                                    0)
                  .ok());
  long long n = 1000;
  float *out = static_cast<float *>(alloc(size_t(n) * 4));
  Status s = device->launch(affine(out, n, 3, 0.5f, 0.25));
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<float> got = fetch<float>(out, size_t(n));
  for (long long i = 0; i < n; ++i)
    ASSERT_EQ(got[size_t(i)], float(i) * 0.5f + 3.0f + 0.25f) << i;

  // 64 KiB of dynamic shared memory: past the 48 KiB without opt-in.
  int m = 16384;
  std::vector<float> ones(size_t(m), 1.0f);
  float *in = static_cast<float *>(alloc(size_t(m) * 4));
  ASSERT_TRUE(device->upload(in, ones.data(), size_t(m) * 4).ok());
  Launch sum;
  sum.kernel = "test_shared_sum";
  sum.block.x = 256;
  sum.sharedBytes = size_t(m) * 4;
  sum.args = {out, in, KernelArg::i32v(m)};
  s = device->launch(sum);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(fetch<float>(out, 1)[0], float(m));

  Launch unknown = sum;
  unknown.kernel = "test_missing";
  s = device->launch(unknown);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no kernel 'test_missing'"), std::string::npos)
      << s.message();
}

TEST_F(OnTheGpu, APlanWithAMissingEntryIsRefused) {
  Status s = device->loadPlanKernels(kPlanKernels, {"test_absent"}, nullptr, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no entry point 'test_absent'"), std::string::npos)
      << s.message();
}

TEST_F(OnTheGpu, GraphsReplayAndUpdateInPlace) {
  ASSERT_TRUE(
      device->loadPlanKernels(kPlanKernels, {"test_affine"}, nullptr, 0).ok());
  long long n = 777;
  float *out = static_cast<float *>(alloc(size_t(n) * 4));
  float *copy = static_cast<float *>(alloc(size_t(n) * 4));
  ASSERT_TRUE(device->beginCapture().ok());
  ASSERT_TRUE(device->launch(affine(out, n, 1, 2.0f, 0)).ok());
  ASSERT_TRUE(device->copy(copy, out, size_t(n) * 4).ok());
  // What a graph cannot hold is refused, and the capture goes on.
  std::vector<float> host(static_cast<size_t>(n));
  EXPECT_FALSE(device->upload(out, host.data(), size_t(n) * 4).ok());
  EXPECT_FALSE(device->download(host.data(), out, size_t(n) * 4).ok());
  EXPECT_FALSE(device->synchronize().ok());
  int graph = -1;
  Status s = device->endCapture(&graph);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(graph, 0);
  // Captured, not run.
  ASSERT_TRUE(device->clear(copy, size_t(n) * 4).ok());
  EXPECT_EQ(fetch<float>(copy, 2)[1], 0.0f);
  ASSERT_TRUE(device->replay(graph).ok());
  std::vector<float> got = fetch<float>(copy, size_t(n));
  for (long long i = 0; i < n; ++i)
    ASSERT_EQ(got[size_t(i)], float(i) * 2.0f + 1.0f) << i;

  // The same work with other arguments: the graph is updated in place.
  ASSERT_TRUE(device->beginCapture().ok());
  ASSERT_TRUE(device->launch(affine(out, n, 5, 3.0f, 0)).ok());
  ASSERT_TRUE(device->copy(copy, out, size_t(n) * 4).ok());
  ASSERT_TRUE(device->endCapture(&graph).ok());
  EXPECT_EQ(graph, 0);
  ASSERT_TRUE(device->replay(graph).ok());
  got = fetch<float>(copy, size_t(n));
  for (long long i = 0; i < n; ++i)
    ASSERT_EQ(got[size_t(i)], float(i) * 3.0f + 5.0f) << i;

  // Other work (one node fewer): instantiated anew under the same id.
  ASSERT_TRUE(device->beginCapture().ok());
  ASSERT_TRUE(device->launch(affine(copy, n, 7, 1.0f, 0)).ok());
  ASSERT_TRUE(device->endCapture(&graph).ok());
  EXPECT_EQ(graph, 0);
  ASSERT_TRUE(device->replay(graph).ok());
  EXPECT_EQ(fetch<float>(copy, 3)[2], 9.0f);
  EXPECT_FALSE(device->replay(1).ok());
}

struct GemmCase {
  std::vector<int64_t> a, b;
  bool transposeA, transposeB;
  float beta;
};

void fill(std::vector<float> &v, int seed) {
  for (size_t i = 0; i < v.size(); ++i)
    v[i] =
        float(int((i * 2654435761u + unsigned(seed) * 40503u) % 17) - 8) / 8.0f;
}

TEST_F(OnTheGpu, GemmsMatchTheCpusReferenceGemm) {
  std::vector<GemmCase> cases;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        cases.push_back(
            {ta ? std::vector<int64_t>{23, 37} : std::vector<int64_t>{37, 23},
             tb ? std::vector<int64_t>{19, 23} : std::vector<int64_t>{23, 19},
             ta, tb, beta});
  cases.push_back({{3, 5, 7}, {3, 7, 4}, false, false, 0}); // batched
  cases.push_back({{5, 7}, {3, 7, 4}, false, false, 1});    // a broadcast
  cases.push_back({{3, 7, 5}, {7, 4}, true, false, 0});     // b broadcast
  cases.push_back({{2, 3, 6, 5}, {5, 9}, false, false, 0}); // folded rows
  cases.push_back({{1, 1}, {1, 1}, false, false, 0});       // one element
  for (const GemmCase &c : cases) {
    MatmulShape s = matmulShapeOf(c.a, c.b, c.transposeA, c.transposeB);
    SCOPED_TRACE(::testing::Message()
                 << "batch " << s.batch << " m " << s.m << " n " << s.n << " k "
                 << s.k << " ta " << c.transposeA << " tb " << c.transposeB
                 << " beta " << c.beta);
    size_t na = size_t((s.broadcastA ? 1 : s.batch) * s.m * s.k);
    size_t nb = size_t((s.broadcastB ? 1 : s.batch) * s.k * s.n);
    size_t nc = size_t(s.batch * s.m * s.n);
    std::vector<float> a(na), b(nb), c0(nc), want(nc);
    fill(a, 1), fill(b, 2), fill(c0, 3);
    want = c0;
    cpu::matmul<float>(s, a.data(), b.data(), want.data(), c.beta);
    void *da = alloc(na * 4), *db = alloc(nb * 4), *dc = alloc(nc * 4);
    ASSERT_TRUE(device->upload(da, a.data(), na * 4).ok());
    ASSERT_TRUE(device->upload(db, b.data(), nb * 4).ok());
    ASSERT_TRUE(device->upload(dc, c0.data(), nc * 4).ok());
    GemmCall call;
    call.shape = s;
    call.a = da, call.b = db, call.c = dc;
    call.beta = c.beta;
    Status st = device->gemm(call);
    ASSERT_TRUE(st.ok()) << st.message();
    std::vector<float> got = fetch<float>(dc, nc);
    for (size_t i = 0; i < nc; ++i)
      ASSERT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
  }
}

TEST_F(OnTheGpu, Bf16GemmsAccumulateInF32) {
  MatmulShape s = matmulShapeOf({33, 40}, {40, 24}, false, false);
  std::vector<float> a(33 * 40), b(40 * 24), want(33 * 24, 0.0f);
  fill(a, 4), fill(b, 5); // multiples of 1/8: exact in bf16
  cpu::matmul<float>(s, a.data(), b.data(), want.data(), 0.0f);
  std::vector<uint16_t> a16(a.size()), b16(b.size());
  for (size_t i = 0; i < a.size(); ++i)
    a16[i] = cpu::floatToBf16(a[i]);
  for (size_t i = 0; i < b.size(); ++i)
    b16[i] = cpu::floatToBf16(b[i]);
  void *da = alloc(a16.size() * 2), *db = alloc(b16.size() * 2),
       *dc = alloc(want.size() * 4);
  ASSERT_TRUE(device->upload(da, a16.data(), a16.size() * 2).ok());
  ASSERT_TRUE(device->upload(db, b16.data(), b16.size() * 2).ok());
  GemmCall call;
  call.shape = s;
  call.a = da, call.b = db, call.c = dc;
  call.aType = call.bType = loom::plan::DType::BF16;
  call.alpha = 0.5f;
  Status st = device->gemm(call);
  ASSERT_TRUE(st.ok()) << st.message();
  std::vector<float> got = fetch<float>(dc, want.size());
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], 0.5f * want[i], 1e-5f) << i;
}

} // namespace
