//===- EmulationTest.cpp - the CUDA emulation header itself ---------------===//
//
// The emulation is what the kernel tests stand on, so its own behaviour is
// tested first: barriers, shared memory, shuffles, votes, argument checks,
// deadlocks.
//
//===----------------------------------------------------------------------===//

#include <gtest/gtest.h>

#include <vector>

#include "emulation/CudaEmulation.h"

namespace {

extern "C" __global__ void emu_block_sum(const float *x, float *y, long long n) {
  __shared__ float partial[32];
  float v = 0;
  for (long long i = threadIdx.x; i < n; i += blockDim.x)
    v += x[blockIdx.x * n + i];
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  int warps = (blockDim.x + 31) >> 5;
  float t = lane < warps ? partial[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1)
    t += __shfl_xor_sync(0xffffffffu, t, o);
  if (threadIdx.x == 0)
    y[blockIdx.x] = t;
}
LOOM_KERNEL_ENTRY(emu_block_sum)

// Reads a neighbour's shared slot without a barrier: the emulation runs
// each thread up to its next barrier, so thread 0 sees the slot unwritten.
extern "C" __global__ void emu_missing_barrier(int *out) {
  __shared__ int slot[64];
  slot[threadIdx.x] = int(threadIdx.x) + 1;
  out[threadIdx.x] = slot[(threadIdx.x + 1) % blockDim.x];
}
LOOM_KERNEL_ENTRY(emu_missing_barrier)

extern "C" __global__ void emu_divergent_barrier(int *out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    __syncwarp();
    // waits for lanes 0..15 too, which are parked at __syncthreads
    out[threadIdx.x] = 2;
  }
}
LOOM_KERNEL_ENTRY(emu_divergent_barrier)

extern "C" __global__ void emu_shuffles(int *down, int *up, int *from3,
                                        unsigned *ballot) {
  int lane = int(threadIdx.x) & 31;
  down[threadIdx.x] = __shfl_down_sync(0xffffffffu, lane, 1);
  up[threadIdx.x] = __shfl_up_sync(0xffffffffu, lane, 2);
  from3[threadIdx.x] = __shfl_sync(0xffffffffu, lane * 10, 3);
  ballot[threadIdx.x] = __ballot_sync(0xffffffffu, lane % 2 == 0);
}
LOOM_KERNEL_ENTRY(emu_shuffles)

extern "C" __global__ void emu_grid(int *out) {
  long long i = (long long)blockIdx.y * gridDim.x * blockDim.x +
                (long long)blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&out[0], 1);
  out[1 + i] = int(i);
}
LOOM_KERNEL_ENTRY(emu_grid)

::loom_emu::Arg ptr(void *p) {
  ::loom_emu::Arg a;
  a.kind = ::loom_emu::Arg::Pointer;
  a.p = p;
  return a;
}
::loom_emu::Arg i64(long long v) {
  ::loom_emu::Arg a;
  a.kind = ::loom_emu::Arg::I64;
  a.i64 = v;
  return a;
}

std::string run(const char *name, std::vector<::loom_emu::Arg> args,
                dim3 grid, dim3 block) {
  std::string error;
  if (!::loom_emu::launchEntry(name, args.data(), args.size(), grid, block, 0,
                               error))
    return "no kernel";
  return error;
}

TEST(CudaEmulation, BlockReductionWithSharedMemoryAndShuffles) {
  const long long n = 100;
  std::vector<float> x(3 * n), y(3, -1);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i % 13);
  ASSERT_EQ(run("emu_block_sum", {ptr(x.data()), ptr(y.data()), i64(n)},
                dim3(3), dim3(96)),
            "");
  for (int b = 0; b < 3; ++b) {
    float want = 0;
    for (long long i = 0; i < n; ++i)
      want += x[size_t(b * n + i)];
    EXPECT_FLOAT_EQ(y[size_t(b)], want) << "block " << b;
  }
}

TEST(CudaEmulation, AMissingBarrierShowsUp) {
  std::vector<int> out(64, -1);
  ASSERT_EQ(run("emu_missing_barrier", {ptr(out.data())}, dim3(1), dim3(64)),
            "");
  // With a barrier every thread would read its neighbour's value; thread 0
  // ran first and read slot 1 before thread 1 wrote it.
  EXPECT_NE(out[0], 2);
}

TEST(CudaEmulation, ABarrierNotEveryThreadReachesIsADeadlock) {
  std::vector<int> out(64, 0);
  std::string error =
      run("emu_divergent_barrier", {ptr(out.data())}, dim3(1), dim3(64));
  EXPECT_NE(error.find("deadlock in block (0, 0, 0)"), std::string::npos)
      << error;
}

TEST(CudaEmulation, WarpShufflesAndVotes) {
  std::vector<int> down(64), up(64), from3(64);
  std::vector<unsigned> ballot(64);
  ASSERT_EQ(run("emu_shuffles",
                {ptr(down.data()), ptr(up.data()), ptr(from3.data()),
                 ptr(ballot.data())},
                dim3(1), dim3(64)),
            "");
  for (int t = 0; t < 64; ++t) {
    int lane = t % 32;
    EXPECT_EQ(down[size_t(t)], lane < 31 ? lane + 1 : lane) << t;
    EXPECT_EQ(up[size_t(t)], lane >= 2 ? lane - 2 : lane) << t;
    EXPECT_EQ(from3[size_t(t)], 30) << t;
    EXPECT_EQ(ballot[size_t(t)], 0x55555555u) << t;
  }
}

TEST(CudaEmulation, GridsAndAtomics) {
  std::vector<int> out(1 + 4 * 3 * 8, -1);
  out[0] = 0;
  ASSERT_EQ(run("emu_grid", {ptr(out.data())}, dim3(4, 3), dim3(8)), "");
  EXPECT_EQ(out[0], 96);
  for (int i = 0; i < 96; ++i)
    EXPECT_EQ(out[size_t(1 + i)], i);
}

TEST(CudaEmulation, ArgumentsAreCheckedAgainstTheParameters) {
  std::vector<float> x(4), y(1);
  ::loom_emu::Arg wrong = i64(4);
  wrong.kind = ::loom_emu::Arg::I32;
  EXPECT_NE(run("emu_block_sum", {ptr(x.data()), ptr(y.data()), wrong},
                dim3(1), dim3(32))
                .find("argument 2 is a 32-bit integer"),
            std::string::npos);
  EXPECT_NE(run("emu_block_sum", {ptr(x.data()), ptr(y.data())}, dim3(1),
                dim3(32))
                .find("2 arguments for 3 parameters"),
            std::string::npos);
  EXPECT_NE(run("emu_block_sum", {ptr(x.data()), ptr(y.data()), i64(4)},
                dim3(1), dim3(2048))
                .find("CUDA allows 1 to 1024"),
            std::string::npos);
}

} // namespace
