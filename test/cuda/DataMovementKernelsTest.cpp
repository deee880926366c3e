//===- DataMovementKernelsTest.cpp - DataMovement.cu against the CPU ------===//
//
// Reductions (both kernels, on any set of dimensions), transposes and
// split/concat of runtime/cuda/kernels/DataMovement.cu, launched under
// emulation with the geometry their binder builds, against the CPU
// reference kernels.
//
//===----------------------------------------------------------------------===//

#include "KernelGeometry.h"
#include "KernelTesting.h"
#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <numeric>

namespace loom {
namespace test {
namespace {

namespace rt = runtime;
using rt::Shape;

struct ReduceCase {
  Shape shape;
  std::vector<bool> reduced;
};

int64_t keptElements(const ReduceCase &c) {
  int64_t n = 1;
  for (size_t d = 0; d < c.shape.size(); ++d)
    if (!c.reduced[d])
      n *= c.shape[d];
  return n;
}

TEST(DataMovementKernels, ReductionsAsTheCpu) {
  std::vector<ReduceCase> cases = {
      {{5, 7}, {true, false}},           // a bias gradient
      {{5, 7}, {false, true}},           // rows
      {{3, 4, 5}, {true, false, true}},  // outer and inner
      {{3, 4, 5}, {false, true, false}}, // the middle
      {{3, 4, 5}, {true, true, true}},   // everything
      {{2, 1, 3}, {false, true, false}}, // a size-1 dimension
      {{300}, {true}},                   // more terms than threads
      {{1}, {true}},                     // one element
      {{2, 3, 2, 5}, {true, false, true, false}},
      {{600, 3}, {false, true}}, // more outputs than a block
  };
  for (const ReduceCase &c : cases) {
    int64_t n = rt::numElements(c.shape), outputs = keptElements(c);
    std::vector<float> x = randomFloats(size_t(n), 11);
    rt::cuda::ReduceLoops loops = rt::cuda::reduceLoops(c.shape, c.reduced);
    ASSERT_EQ(loops.terms * outputs, n);
    std::vector<int64_t> geometry = loops.flat();
    double count = double(n) / double(std::max<int64_t>(1, outputs));
    for (int op = 0; op < 3; ++op) {
      std::vector<float> want(static_cast<size_t>(outputs));
      rt::cpu::reduceDims<float>(x.data(), c.shape, c.reduced, op == 2, op == 1,
                                 want.data(), outputs);
      for (const char *kernel :
           {"loom_data_reduce_serial", "loom_data_reduce_tree"}) {
        bool serial = std::string(kernel).find("serial") != std::string::npos;
        // The serial kernel's grid covers outputs; the tree's one block
        // per output (and fewer blocks than outputs).
        std::vector<TestGrid> grids = testGrids(outputs);
        if (!serial)
          grids = {{Dim3{unsigned(outputs), 1, 1}, Dim3{256, 1, 1},
                    "a block per output"},
                   {Dim3{2, 1, 1}, Dim3{64, 1, 1}, "2 blocks of 64"},
                   {Dim3{1, 1, 1}, Dim3{32, 1, 1}, "one warp"}};
        for (const TestGrid &g : grids) {
          std::vector<float> y(static_cast<size_t>(outputs), -3.0f);
          ASSERT_EQ(
              launchKernel(kernel, g.grid, g.block,
                           {x.data(), y.data(), i64(outputs), i64(loops.terms),
                            i32(loops.kept.rank()), i32(loops.reduced.rank()),
                            geometry.empty() ? nullptr : geometry.data(),
                            i32(op), f64(count)}),
              "");
          std::string what = std::string(kernel) + " op " + std::to_string(op) +
                             " of " + std::to_string(n) + " to " +
                             std::to_string(outputs) + ", " + g.name;
          // The serial kernel adds in the CPU's order, and every max is
          // exact: the CPU's bits. The tree's sums differ in double by
          // reassociation only.
          if (serial || op == 2)
            expectSameBits(y, want, what);
          else
            expectClose(y, want, 1e-6, 1e-7, what);
        }
      }
    }
  }
}

TEST(DataMovementKernels, ReductionMaxSkipsNaNAsTheCpu) {
  Shape shape = {4, 6};
  std::vector<bool> reduced = {false, true};
  std::vector<float> x = randomFloats(24, 12);
  x[3] = std::nanf("");
  x[7] = -INFINITY;
  std::vector<float> want(4);
  rt::cpu::reduceDims<float>(x.data(), shape, reduced, true, false, want.data(),
                             4);
  rt::cuda::ReduceLoops loops = rt::cuda::reduceLoops(shape, reduced);
  std::vector<int64_t> geometry = loops.flat();
  for (const char *kernel :
       {"loom_data_reduce_serial", "loom_data_reduce_tree"}) {
    std::vector<float> y(4);
    ASSERT_EQ(launchKernel(kernel, Dim3{4, 1, 1}, Dim3{32, 1, 1},
                           {x.data(), y.data(), i64(4), i64(6),
                            i32(loops.kept.rank()), i32(loops.reduced.rank()),
                            geometry.data(), i32(2), f64(6.0)}),
              "");
    expectSameBits(y, want, kernel);
  }
}

TEST(DataMovementKernels, TransposesAsTheCpu) {
  std::vector<std::pair<Shape, std::vector<int64_t>>> cases;
  std::vector<int64_t> perm = {0, 1, 2};
  do
    cases.push_back({{2, 3, 4}, perm});
  while (std::next_permutation(perm.begin(), perm.end()));
  cases.push_back({{5, 1, 3}, {2, 0, 1}});
  cases.push_back({{17, 19}, {1, 0}});
  cases.push_back({{2, 3, 4, 5}, {0, 2, 1, 3}}); // attention's heads
  cases.push_back({{1}, {0}});
  for (auto [shape, p] : cases) {
    int64_t n = rt::numElements(shape);
    std::vector<float> x = randomFloats(size_t(n), 13);
    std::vector<float> want(static_cast<size_t>(n));
    rt::cpu::transpose<float>(x.data(), shape, p, want.data());
    rt::cuda::StridedLoop loop = rt::cuda::transposeLoop(shape, p);
    int rank = loop.contiguous() ? 0 : loop.rank();
    std::vector<int64_t> geometry = loop.flat();
    std::string name;
    for (int64_t d : p)
      name += std::to_string(d);
    for (const TestGrid &g : testGrids(n)) {
      std::vector<float> y(static_cast<size_t>(n), 0.5f);
      ASSERT_EQ(launchKernel("loom_data_transpose", g.grid, g.block,
                             {x.data(), y.data(), i64(n), i32(rank),
                              rank ? geometry.data() : nullptr}),
                "");
      expectSameBits(y, want, "transpose " + name + ", " + g.name);
    }
  }
  // The identity needs no geometry: a copy.
  EXPECT_TRUE(rt::cuda::transposeLoop({2, 3, 4}, {0, 1, 2}).contiguous());
}

TEST(DataMovementKernels, SplitAndConcatAsTheCpu) {
  int64_t outer = 3, inner = 2;
  std::vector<int64_t> sizes = {2, 4, 1};
  int64_t axis = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  std::vector<float> whole = randomFloats(size_t(outer * axis * inner), 14);
  std::vector<std::vector<float>> want(sizes.size()), got(sizes.size());
  std::vector<float *> wantPtrs;
  for (size_t p = 0; p < sizes.size(); ++p) {
    want[p].assign(size_t(outer * sizes[p] * inner), 0.0f);
    wantPtrs.push_back(want[p].data());
  }
  rt::cpu::splitConcat<float>(true, whole.data(), wantPtrs, sizes, outer, inner,
                              axis);
  for (const TestGrid &g : testGrids(outer * inner)) {
    int64_t first = 0;
    for (size_t p = 0; p < sizes.size(); ++p) {
      got[p].assign(want[p].size(), -1.0f);
      ASSERT_EQ(
          launchKernel("loom_data_split_concat", g.grid, g.block,
                       {whole.data(), got[p].data(), i64(outer), i64(inner),
                        i64(axis), i64(first), i64(sizes[p]), i32(1)}),
          "");
      expectSameBits(got[p], want[p],
                     "split piece " + std::to_string(p) + ", " + g.name);
      first += sizes[p];
    }
    // Concat the pieces back: the whole again.
    std::vector<float> back(whole.size(), 0.0f);
    first = 0;
    for (size_t p = 0; p < sizes.size(); ++p) {
      ASSERT_EQ(
          launchKernel("loom_data_split_concat", g.grid, g.block,
                       {back.data(), got[p].data(), i64(outer), i64(inner),
                        i64(axis), i64(first), i64(sizes[p]), i32(0)}),
          "");
      first += sizes[p];
    }
    expectSameBits(back, whole, "concat, " + g.name);
  }
}

} // namespace
} // namespace test
} // namespace loom
