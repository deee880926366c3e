//===- CollectiveKernelsTest.cpp - Collectives.cu against a CPU reference -===//
//
// The transposes between NCCL's layout and a gather along an inner
// dimension (loom_coll_interleave after an all-gather, loom_coll_deinterleave
// before a reduce-scatter; runtime/cuda/BindCollectives.cpp), launched under
// emulation on awkward shapes (one row, rows of an odd number of bytes, 3
// members) and grids smaller than the work, against the layouts written out
// here as loops: NCCL's [parts][outer][bytes], the executor's
// [outer][parts][bytes] (the local communicator's [outer, n*inner]).
//
//===----------------------------------------------------------------------===//

#include "KernelTesting.h"

#include <cstdint>

namespace loom {
namespace test {
namespace {

struct Shape3 {
  int64_t outer, bytes, parts;
};

const Shape3 kShapes[] = {
    {1, 4, 2},   // one row: the binder needs no transpose, the kernel works
    {2, 4, 2},   // the tiny GPT's tp gathers, one f32 per member and row
    {5, 12, 3},  // three members
    {7, 3, 4},   // rows of an odd number of bytes
    {3, 1, 2},   // one byte per block
    {33, 20, 4}, // more work than the small grids' threads
};

/// Distinct byte values, so that any misplaced byte shows.
std::vector<unsigned char> pattern(size_t n, unsigned seed) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = (unsigned char)((i * 7 + seed * 13 + i / 256) & 0xff);
  return v;
}

/// Member g's block of row r: NCCL's layout at (g, r), the gather's at (r, g).
size_t ncclAt(const Shape3 &s, int64_t g, int64_t r) {
  return size_t((g * s.outer + r) * s.bytes);
}
size_t gatheredAt(const Shape3 &s, int64_t g, int64_t r) {
  return size_t((r * s.parts + g) * s.bytes);
}

std::string describe(const Shape3 &s, const TestGrid &grid) {
  return "outer " + std::to_string(s.outer) + ", " + std::to_string(s.bytes) +
         " bytes, " + std::to_string(s.parts) + " parts, " + grid.name;
}

void expectSameBytes(const std::vector<unsigned char> &got,
                     const std::vector<unsigned char> &want,
                     const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) {
      ADD_FAILURE() << what << ": byte " << i << " is " << int(got[i])
                    << ", the reference's " << int(want[i]);
      return;
    }
}

TEST(CollectiveKernels, InterleaveTurnsNcclsGatherIntoTheInnerDims) {
  for (const Shape3 &s : kShapes) {
    size_t total = size_t(s.outer * s.bytes * s.parts);
    std::vector<unsigned char> x = pattern(total, 1), want(total);
    for (int64_t g = 0; g < s.parts; ++g)
      for (int64_t r = 0; r < s.outer; ++r)
        for (int64_t b = 0; b < s.bytes; ++b)
          want[gatheredAt(s, g, r) + size_t(b)] =
              x[ncclAt(s, g, r) + size_t(b)];
    for (const TestGrid &grid : testGrids(int64_t(total))) {
      std::vector<unsigned char> y(total, 0xEE);
      ASSERT_EQ(launchKernel("loom_coll_interleave", grid.grid, grid.block,
                             {x.data(), y.data(), i64(s.outer), i64(s.bytes),
                              i64(s.parts)}),
                "");
      expectSameBytes(y, want, "interleave, " + describe(s, grid));
    }
  }
}

TEST(CollectiveKernels, DeinterleaveGivesEachMemberAContiguousBlock) {
  for (const Shape3 &s : kShapes) {
    size_t total = size_t(s.outer * s.bytes * s.parts);
    std::vector<unsigned char> x = pattern(total, 2), want(total);
    for (int64_t g = 0; g < s.parts; ++g)
      for (int64_t r = 0; r < s.outer; ++r)
        for (int64_t b = 0; b < s.bytes; ++b)
          want[ncclAt(s, g, r) + size_t(b)] =
              x[gatheredAt(s, g, r) + size_t(b)];
    for (const TestGrid &grid : testGrids(int64_t(total))) {
      std::vector<unsigned char> y(total, 0xEE);
      ASSERT_EQ(launchKernel("loom_coll_deinterleave", grid.grid, grid.block,
                             {x.data(), y.data(), i64(s.outer), i64(s.bytes),
                              i64(s.parts)}),
                "");
      expectSameBytes(y, want, "deinterleave, " + describe(s, grid));
    }
  }
}

// What the executor does to an f32 tensor [outer, inner] per member: the
// all-gather along the inner dim through NCCL's layout is the local
// communicator's [outer, n*inner]; the reduce-scatter's blocks go back.
TEST(CollectiveKernels, GatherAndScatterLayoutsRoundTrip) {
  const int64_t outer = 6, inner = 5, parts = 3, bytes = inner * 4;
  std::vector<std::vector<float>> member(parts);
  std::vector<float> nccl; // NCCL's all-gather: every member's whole block
  for (int64_t g = 0; g < parts; ++g) {
    member[size_t(g)] = randomFloats(size_t(outer * inner), unsigned(40 + g));
    nccl.insert(nccl.end(), member[size_t(g)].begin(), member[size_t(g)].end());
  }
  std::vector<float> want; // [outer, parts*inner]
  for (int64_t r = 0; r < outer; ++r)
    for (int64_t g = 0; g < parts; ++g)
      want.insert(want.end(), member[size_t(g)].begin() + r * inner,
                  member[size_t(g)].begin() + (r + 1) * inner);
  std::vector<float> gathered(want.size()), back(want.size());
  Dim3 grid{1, 1, 1}, block{64, 1, 1};
  ASSERT_EQ(launchKernel("loom_coll_interleave", grid, block,
                         {nccl.data(), gathered.data(), i64(outer), i64(bytes),
                          i64(parts)}),
            "");
  expectSameBits(gathered, want, "the gather along the inner dim");
  ASSERT_EQ(launchKernel("loom_coll_deinterleave", grid, block,
                         {gathered.data(), back.data(), i64(outer), i64(bytes),
                          i64(parts)}),
            "");
  expectSameBits(back, nccl, "NCCL's layout again");
}

} // namespace
} // namespace test
} // namespace loom
