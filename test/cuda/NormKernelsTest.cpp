//===- NormKernelsTest.cpp - kernels/Norm.cu against the CPU's ------------===//
//
// layernorm and rmsnorm, forward and backward, under emulation against
// runtime/cpu's kernels as runtime/cpu/BindNorm.cpp calls them (dweight and
// dbias overwritten): rows longer than the block, more rows than blocks,
// row counts that are not a multiple of the chunks, one element; the column
// sums the same for every grid.
//
//===----------------------------------------------------------------------===//

#include "Compare.h"
#include "Emulated.h"

#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <vector>

namespace loom {
namespace test {
namespace {

constexpr double kRtol = 1e-4, kAtol = 1e-5; // the conformance suite's
constexpr float kEps = 1e-5f;

struct Grads {
  std::vector<float> dx, dw, db;
};

/// The CPU backend's norm gradient: statistics recomputed from x, dweight
/// and dbias zeroed, then accumulated.
Grads referenceGrads(bool layer, const std::vector<float> &x,
                     const std::vector<float> &w, const std::vector<float> &dy,
                     int64_t rows, int64_t cols) {
  Grads g{std::vector<float>(x.size()), std::vector<float>(size_t(cols), 0),
          std::vector<float>(size_t(cols), 0)};
  std::vector<float> y(x.size()), mean(static_cast<size_t>(rows)),
      rstd(static_cast<size_t>(rows)), zeros(size_t(cols), 0.0f);
  if (layer) {
    runtime::cpu::layerNorm<float>(x.data(), w.data(), zeros.data(), y.data(),
                                   mean.data(), rstd.data(), rows, cols, kEps);
    runtime::cpu::layerNormBackward<float>(
        x.data(), w.data(), mean.data(), rstd.data(), dy.data(), g.dx.data(),
        g.dw.data(), g.db.data(), rows, cols);
  } else {
    runtime::cpu::rmsNorm<float>(x.data(), w.data(), y.data(), rstd.data(),
                                 rows, cols, kEps);
    runtime::cpu::rmsNormBackward<float>(x.data(), w.data(), rstd.data(),
                                         dy.data(), g.dx.data(), g.dw.data(),
                                         rows, cols);
  }
  return g;
}

/// The four backward launches on grids of `grid` blocks.
Grads kernelGrads(bool layer, const std::vector<float> &x,
                  const std::vector<float> &w, const std::vector<float> &dy,
                  int64_t rows, int64_t cols, int64_t chunks, unsigned grid,
                  unsigned threads) {
  Grads g{std::vector<float>(x.size(), -7.0f),
          std::vector<float>(size_t(cols), -7.0f),
          std::vector<float>(size_t(cols), -7.0f)};
  std::vector<float> stats(size_t(4 * rows), -7.0f),
      partial(size_t(2 * chunks * cols), -7.0f);
  Dim3 blocks{grid, 1, 1}, block{threads, 1, 1};
  int l = layer ? 1 : 0;
  EXPECT_EQ(launchKernel("loom_norm_backward_stats", blocks, block,
                         {x.data(), w.data(), dy.data(), stats.data(),
                          i64(rows), i64(cols), i32(l), f32(kEps)}),
            "");
  EXPECT_EQ(launchKernel("loom_norm_backward_partials", blocks, block,
                         {x.data(), dy.data(), stats.data(), partial.data(),
                          i64(rows), i64(cols), i64(chunks), i32(l)}),
            "");
  EXPECT_EQ(
      launchKernel("loom_norm_backward_columns", blocks, block,
                   {partial.data(), g.dw.data(), layer ? g.db.data() : nullptr,
                    i64(cols), i64(chunks)}),
      "");
  EXPECT_EQ(launchKernel("loom_norm_backward_dx", blocks, block,
                         {x.data(), w.data(), dy.data(), stats.data(),
                          g.dx.data(), i64(rows), i64(cols), i32(l)}),
            "");
  return g;
}

TEST(NormKernels, Forward) {
  struct Case {
    int64_t rows, cols;
    unsigned grid, threads;
  };
  for (Case c : {Case{7, 300, 3, 64}, Case{5, 33, 2, 32}, Case{1, 1, 1, 32},
                 Case{4, 768, 8, 256}})
    for (bool layer : {true, false}) {
      size_t n = size_t(c.rows * c.cols);
      std::vector<float> x = randomFloats(n, 1, -2, 2),
                         w = randomFloats(size_t(c.cols), 2, 0.5, 1.5),
                         b = randomFloats(size_t(c.cols), 3), want(n),
                         mean(size_t(c.rows)), rstd(size_t(c.rows)),
                         y(n, -7.0f);
      if (layer)
        runtime::cpu::layerNorm<float>(x.data(), w.data(), b.data(),
                                       want.data(), mean.data(), rstd.data(),
                                       c.rows, c.cols, kEps);
      else
        runtime::cpu::rmsNorm<float>(x.data(), w.data(), want.data(),
                                     rstd.data(), c.rows, c.cols, kEps);
      ASSERT_EQ(launchKernel("loom_norm_forward", Dim3{c.grid, 1, 1},
                             Dim3{c.threads, 1, 1},
                             {x.data(), w.data(), layer ? b.data() : nullptr,
                              y.data(), i64(c.rows), i64(c.cols), f32(kEps)}),
                "");
      expectClose(y, want, kRtol, kAtol,
                  std::string(layer ? "layernorm" : "rmsnorm") + " " +
                      std::to_string(c.rows) + "x" + std::to_string(c.cols));
    }
}

TEST(NormKernels, Backward) {
  struct Case {
    int64_t rows, cols, chunks;
    unsigned grid, threads;
  };
  for (Case c : {Case{7, 300, 3, 3, 64}, Case{13, 40, 4, 2, 32},
                 Case{1, 1, 1, 1, 32}, Case{9, 70, 9, 1, 64}})
    for (bool layer : {true, false}) {
      size_t n = size_t(c.rows * c.cols);
      std::vector<float> x = randomFloats(n, 4, -2, 2),
                         w = randomFloats(size_t(c.cols), 5, 0.5, 1.5),
                         dy = randomFloats(n, 6);
      Grads want = referenceGrads(layer, x, w, dy, c.rows, c.cols);
      Grads got = kernelGrads(layer, x, w, dy, c.rows, c.cols, c.chunks, c.grid,
                              c.threads);
      std::string what = std::string(layer ? "layernorm" : "rmsnorm") + " " +
                         std::to_string(c.rows) + "x" + std::to_string(c.cols);
      expectClose(got.dx, want.dx, kRtol, kAtol, what + " dx");
      expectClose(got.dw, want.dw, kRtol, kAtol, what + " dweight");
      if (layer)
        expectClose(got.db, want.db, kRtol, kAtol, what + " dbias");
    }
}

TEST(NormKernels, ColumnSumsDoNotDependOnTheGrid) {
  int64_t rows = 37, cols = 45, chunks = 5;
  std::vector<float> x = randomFloats(size_t(rows * cols), 7, -2, 2),
                     w = randomFloats(size_t(cols), 8, 0.5, 1.5),
                     dy = randomFloats(size_t(rows * cols), 9);
  // The row statistics' trees depend on the block's threads (the binder
  // fixes them per shape), the column sums on `chunks`: neither on the grid.
  Grads first = kernelGrads(true, x, w, dy, rows, cols, chunks, 1, 64);
  for (unsigned grid : {2u, 3u, 40u}) {
    Grads again = kernelGrads(true, x, w, dy, rows, cols, chunks, grid, 64);
    EXPECT_EQ(again.dw, first.dw) << "grid " << grid;
    EXPECT_EQ(again.db, first.db) << "grid " << grid;
    EXPECT_EQ(again.dx, first.dx) << "grid " << grid;
  }
}

TEST(NormKernels, BackwardInPlaceOverDy) {
  int64_t rows = 6, cols = 50;
  std::vector<float> x = randomFloats(size_t(rows * cols), 10, -2, 2),
                     w = randomFloats(size_t(cols), 11, 0.5, 1.5),
                     dy = randomFloats(size_t(rows * cols), 12);
  Grads want = referenceGrads(true, x, w, dy, rows, cols);
  std::vector<float> stats(size_t(4 * rows)), partial(size_t(2 * 2 * cols)),
      dw(static_cast<size_t>(cols)), db(static_cast<size_t>(cols));
  std::vector<float> buffer = dy; // dy, then dx
  Dim3 grid{2, 1, 1}, block{32, 1, 1};
  ASSERT_EQ(launchKernel("loom_norm_backward_stats", grid, block,
                         {x.data(), w.data(), buffer.data(), stats.data(),
                          i64(rows), i64(cols), i32(1), f32(kEps)}),
            "");
  ASSERT_EQ(launchKernel("loom_norm_backward_partials", grid, block,
                         {x.data(), buffer.data(), stats.data(), partial.data(),
                          i64(rows), i64(cols), i64(2), i32(1)}),
            "");
  ASSERT_EQ(
      launchKernel("loom_norm_backward_columns", grid, block,
                   {partial.data(), dw.data(), db.data(), i64(cols), i64(2)}),
      "");
  ASSERT_EQ(launchKernel("loom_norm_backward_dx", grid, block,
                         {x.data(), w.data(), buffer.data(), stats.data(),
                          buffer.data(), i64(rows), i64(cols), i32(1)}),
            "");
  expectClose(buffer, want.dx, kRtol, kAtol, "dx over dy");
  expectClose(dw, want.dw, kRtol, kAtol, "dweight");
  expectClose(db, want.db, kRtol, kAtol, "dbias");
}

} // namespace
} // namespace test
} // namespace loom
