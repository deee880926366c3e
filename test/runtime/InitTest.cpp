//===- InitTest.cpp - initialisation is the same on every mesh ------------===//

#include "loom/runtime/Init.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace loom::runtime;

namespace {

TEST(InitTest, EveryBlockDrawsWhatTheWholeTensorDraws) {
  // A [96, 40] weight, split as tensor parallelism splits it: column blocks
  // (a column-parallel linear over 4 ranks) and row blocks (row-parallel).
  const int64_t rows = 96, cols = 40;
  uint64_t key = parameterKey(1234, "layers.3.mlp.fc1.weight");
  std::vector<float> whole(rows * cols);
  initNormal(whole.data(), TensorBlock::whole({rows, cols}), 0.02, key);

  for (int64_t rank = 0; rank < 4; ++rank) {
    TensorBlock columns{{rows, cols}, {0, rank * 10}, {rows, 10}};
    std::vector<float> part(rows * 10);
    initNormal(part.data(), columns, 0.02, key);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < 10; ++c)
        ASSERT_EQ(part[r * 10 + c], whole[r * cols + rank * 10 + c])
            << "rank " << rank << " (" << r << ", " << c << ")";

    TensorBlock rowBlock{{rows, cols}, {rank * 24, 0}, {24, cols}};
    std::vector<float> rowsPart(24 * cols);
    initNormal(rowsPart.data(), rowBlock, 0.02, key);
    for (int64_t i = 0; i < 24 * cols; ++i)
      ASSERT_EQ(rowsPart[i], whole[rank * 24 * cols + i]);
  }
}

TEST(InitTest, DrawsAreNormalWithTheGivenStd) {
  const int64_t n = 1 << 16;
  std::vector<double> x(n);
  initNormal(x.data(), TensorBlock::whole({n}), 0.02,
             parameterKey(7, "embedding.word_embeddings"));
  double sum = 0, sumSquares = 0, fourth = 0;
  for (double v : x) {
    sum += v;
    sumSquares += v * v;
    fourth += std::pow(v / 0.02, 4);
  }
  double mean = sum / n, std = std::sqrt(sumSquares / n - mean * mean);
  // Standard errors: 0.02/sqrt(n) ≈ 7.8e-5 for the mean, ~0.3% for the std.
  EXPECT_NEAR(mean, 0.0, 4e-4);
  EXPECT_NEAR(std, 0.02, 0.02 * 0.015);
  EXPECT_NEAR(fourth / n, 3.0, 0.1); // a normal's kurtosis
}

TEST(InitTest, NamesAndSeedsGiveDifferentStreams) {
  std::vector<float> a(64), b(64), c(64);
  initNormal(a.data(), TensorBlock::whole({64}), 1.0, parameterKey(1, "a"));
  initNormal(b.data(), TensorBlock::whole({64}), 1.0, parameterKey(1, "b"));
  initNormal(c.data(), TensorBlock::whole({64}), 1.0, parameterKey(2, "a"));
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  std::vector<float> again(64);
  initNormal(again.data(), TensorBlock::whole({64}), 1.0, parameterKey(1, "a"));
  EXPECT_EQ(a, again);
}

} // namespace
