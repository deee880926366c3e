//===- PhiloxTest.cpp - Philox4x32-10 against its published answers -------===//

#include "loom/runtime/Philox.h"

#include <gtest/gtest.h>

#include <cmath>

using loom::runtime::philox4x32_10;
using loom::runtime::PhiloxCounter;
using loom::runtime::PhiloxKey;
using loom::runtime::uniformOpen01;

namespace {

void expectWords(PhiloxCounter got, PhiloxCounter want) {
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(got.word[i], want.word[i]) << "word " << i;
}

// The known-answer vectors of Random123 (kat_vectors, "philox4x32 10"):
// counter, key -> output.
TEST(PhiloxTest, MatchesRandom123KnownAnswers) {
  expectWords(philox4x32_10({{0, 0, 0, 0}}, {{0, 0}}),
              {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});
  expectWords(
      philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
                    {{0xffffffffu, 0xffffffffu}}),
      {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}});
  expectWords(
      philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                    {{0xa4093822u, 0x299f31d0u}}),
      {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}});
}

TEST(PhiloxTest, UniformStaysInsideTheOpenInterval) {
  EXPECT_GT(uniformOpen01(0u), 0.0f);
  EXPECT_LT(uniformOpen01(0xffffffffu), 1.0f);
  EXPECT_EQ(uniformOpen01(0x80000000u), 0.5f + 0.5f / 8388608.0f);
  EXPECT_EQ(uniformOpen01(0xffffffffu), 1.0f - 0.5f / 8388608.0f);
}

TEST(PhiloxTest, UniformsHaveTheRightMoments) {
  // 4·2^16 draws over consecutive counters: mean 1/2, variance 1/12.
  const int blocks = 1 << 16;
  double sum = 0, sumSquares = 0;
  for (int i = 0; i < blocks; ++i) {
    PhiloxCounter out =
        philox4x32_10({{static_cast<unsigned>(i), 0, 0, 0}}, {{7, 0}});
    for (unsigned word : out.word) {
      double u = uniformOpen01(word);
      sum += u;
      sumSquares += u * u;
    }
  }
  double n = 4.0 * blocks;
  double mean = sum / n, variance = sumSquares / n - mean * mean;
  // Standard error of the mean is sqrt(1/12 / n) ≈ 0.00056; allow 5 of them.
  EXPECT_NEAR(mean, 0.5, 0.003);
  EXPECT_NEAR(variance, 1.0 / 12.0, 0.002);
}

TEST(PhiloxTest, DifferentKeysGiveDifferentStreams) {
  PhiloxCounter a = philox4x32_10({{1, 2, 3, 4}}, {{1, 0}});
  PhiloxCounter b = philox4x32_10({{1, 2, 3, 4}}, {{2, 0}});
  int same = 0;
  for (int i = 0; i < 4; ++i)
    same += a.word[i] == b.word[i];
  EXPECT_EQ(same, 0);
}

} // namespace
