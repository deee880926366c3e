//===- MaskedLmDatasetTest.cpp - BERT's masked-LM samples -----------------===//
//
// A masked-LM sample's layout ([CLS] A [SEP] B [SEP] [PAD]..., token types,
// padding mask), the share of predicted tokens and their 80/10/10 fate,
// Megatron's short sequences, that a sample depends on its global index
// and the seed alone, and the errors.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/MaskedLmDataset.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

using namespace loom::runtime;

namespace {

constexpr int32_t kPad = 1000, kCls = 1001, kSep = 1002, kMask = 1003;

/// Text whose token at position t of sample i is (i * 7 + t) % 997: ids
/// below the special ones, so a predicted token's fate can be told.
class CountingText : public SampleSource {
public:
  explicit CountingText(int64_t seq) : seq_(seq) {}
  Status readSample(int64_t i, int32_t *tokens,
                    int32_t *labels) const override {
    for (int64_t t = 0; t < seq_; ++t) {
      tokens[t] = int32_t((i * 7 + t) % 997);
      labels[t] = int32_t((i * 7 + t + 1) % 997);
    }
    return Status::success();
  }

private:
  int64_t seq_;
};

MaskedLmOptions options(int64_t seq, uint64_t seed = 5) {
  MaskedLmOptions o;
  o.seqLength = seq;
  o.vocab = 1004;
  o.padId = kPad;
  o.clsId = kCls;
  o.sepId = kSep;
  o.maskId = kMask;
  o.seed = seed;
  return o;
}

struct Sample {
  std::vector<int32_t> tokens, types, mask, labels;
  explicit Sample(int64_t seq)
      : tokens(size_t(seq)), types(size_t(seq)), mask(size_t(seq)),
        labels(size_t(seq)) {}
  bool operator==(const Sample &o) const {
    return tokens == o.tokens && types == o.types && mask == o.mask &&
           labels == o.labels;
  }
};

Sample read(const MaskedLmDataset &d, int64_t i, int64_t seq) {
  Sample s(seq);
  int32_t *out[] = {s.tokens.data(), s.types.data(), s.mask.data(),
                    s.labels.data()};
  Status status = d.readFields(i, out);
  EXPECT_TRUE(status.ok()) << status.message();
  return s;
}

} // namespace

TEST(MaskedLmDataset, SampleLayoutAndMasking) {
  constexpr int64_t seq = 128;
  CountingText text(seq);
  Result<MaskedLmDataset> made = MaskedLmDataset::make(text, options(seq));
  ASSERT_TRUE(made.ok()) << made.message();
  EXPECT_EQ(made->fields(),
            (std::vector<std::string>{"tokens", "token_types", "padding_mask",
                                      "labels"}));
  int64_t shortSamples = 0, predicted = 0, masked = 0, kept = 0, random = 0;
  constexpr int64_t samples = 2000;
  for (int64_t i = 0; i < samples; ++i) {
    Sample s = read(*made, i, seq);
    // [CLS] A [SEP] B [SEP], then padding.
    ASSERT_EQ(s.tokens[0], kCls);
    int64_t length = 0;
    while (length < seq && s.mask[size_t(length)])
      ++length;
    for (int64_t k = length; k < seq; ++k) {
      ASSERT_EQ(s.mask[size_t(k)], 0) << "sample " << i;
      ASSERT_EQ(s.tokens[size_t(k)], kPad);
      ASSERT_EQ(s.types[size_t(k)], 0);
      ASSERT_EQ(s.labels[size_t(k)], -100);
    }
    int64_t n = length - 3; // text tokens
    ASSERT_GE(n, 2);
    ASSERT_LE(n, seq - 3);
    shortSamples += n < seq - 3;
    ASSERT_EQ(s.tokens[size_t(length - 1)], kSep);
    std::vector<int64_t> seps;
    for (int64_t k = 0; k < length; ++k)
      if (s.tokens[size_t(k)] == kSep && s.labels[size_t(k)] == -100)
        seps.push_back(k); // (a random replacement may draw [SEP] too)
    ASSERT_EQ(seps.size(), 2u) << "sample " << i;
    ASSERT_GE(seps[0], 2);          // A holds a token
    ASSERT_LE(seps[0], length - 3); // and so does B
    for (int64_t k = 0; k < length; ++k)
      ASSERT_EQ(s.types[size_t(k)], k > seps[0] ? 1 : 0) << "sample " << i;
    // The text in order, apart from the predicted positions.
    int64_t t = 0, here = 0;
    for (int64_t k = 1; k < length - 1; ++k) {
      if (k == seps[0])
        continue;
      int32_t original = int32_t((i * 7 + t++) % 997);
      if (s.labels[size_t(k)] == -100) {
        ASSERT_EQ(s.tokens[size_t(k)], original);
        continue;
      }
      ++here;
      ASSERT_EQ(s.labels[size_t(k)], original) << "sample " << i;
      if (s.tokens[size_t(k)] == kMask)
        ++masked;
      else if (s.tokens[size_t(k)] == original)
        ++kept;
      else
        ++random;
    }
    // Megatron's count: round(0.15 · (n + 3)) half to even, at least 1.
    double exact = 0.15 * double(n + 3);
    int64_t want = int64_t(std::floor(exact));
    if (exact - double(want) > 0.5 ||
        (exact - double(want) == 0.5 && want % 2 == 1))
      ++want;
    want = std::max<int64_t>(1, want);
    ASSERT_EQ(here, want) << "sample " << i << " of " << n << " tokens";
    predicted += here;
  }
  // 10% short; 80/10/10 (a random id can equal the original: 1 in 1004).
  EXPECT_NEAR(double(shortSamples) / samples, 0.1, 0.02);
  EXPECT_NEAR(double(masked) / predicted, 0.8, 0.01);
  EXPECT_NEAR(double(kept) / predicted, 0.1, 0.01);
  EXPECT_NEAR(double(random) / predicted, 0.1, 0.01);
}

TEST(MaskedLmDataset, ASampleIsAFunctionOfItsIndexAndSeed) {
  constexpr int64_t seq = 32;
  CountingText text(seq);
  Result<MaskedLmDataset> a = MaskedLmDataset::make(text, options(seq, 5));
  Result<MaskedLmDataset> b = MaskedLmDataset::make(text, options(seq, 5));
  Result<MaskedLmDataset> other = MaskedLmDataset::make(text, options(seq, 6));
  ASSERT_TRUE(a.ok() && b.ok() && other.ok());
  // In any order, from any copy: the same sample.
  Sample later = read(*a, 41, seq);
  for (int64_t i = 0; i < 41; ++i)
    (void)read(*a, i, seq);
  EXPECT_TRUE(read(*b, 41, seq) == later);
  EXPECT_TRUE(read(*a, 41, seq) == later);
  int64_t differ = 0;
  for (int64_t i = 0; i < 20; ++i)
    differ += !(read(*a, i, seq) == read(*other, i, seq));
  EXPECT_GE(differ, 18);
  // readSample gives the tokens and labels fields.
  std::vector<int32_t> tokens(seq), labels(seq);
  ASSERT_TRUE(a->readSample(41, tokens.data(), labels.data()).ok());
  EXPECT_EQ(tokens, later.tokens);
  EXPECT_EQ(labels, later.labels);
}

TEST(MaskedLmDataset, Errors) {
  CountingText text(64);
  auto error = [&](MaskedLmOptions o) {
    Result<MaskedLmDataset> made = MaskedLmDataset::make(text, o);
    EXPECT_FALSE(made.ok());
    return made.ok() ? std::string() : made.message();
  };
  MaskedLmOptions o = options(4);
  EXPECT_NE(error(o).find("seq must be 5 or more"), std::string::npos);
  o = options(64);
  o.maskId = 1004;
  EXPECT_NE(error(o).find("the special id MASK = 1004 is outside the model's "
                          "vocabulary [0, 1004)"),
            std::string::npos);
  o = options(64);
  o.sepId = kCls;
  EXPECT_NE(error(o).find("the special ids CLS and SEP are both 1001"),
            std::string::npos);
  o = options(64);
  o.maskProb = 0;
  EXPECT_NE(error(o).find("must be in (0, 1]"), std::string::npos);
  o = options(64);
  o.shortSeqProb = 1.5;
  EXPECT_NE(error(o).find("must be in [0, 1]"), std::string::npos);

  MaskedLmOptions parsed;
  ASSERT_TRUE(parseSpecialIds("256,257,258,259", "--ids", parsed).ok());
  EXPECT_EQ(parsed.padId, 256);
  EXPECT_EQ(parsed.clsId, 257);
  EXPECT_EQ(parsed.sepId, 258);
  EXPECT_EQ(parsed.maskId, 259);
  for (const char *bad : {"1,2,3", "1,2,3,4,5", "1,2,,4", "a,b,c,d", "-1,2,3,4",
                          "1,2,3,4x", ""}) {
    Status s = parseSpecialIds(bad, "--ids", parsed);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("--ids " + std::string(bad) +
                               ": expected four ids PAD,CLS,SEP,MASK"),
              std::string::npos)
        << s.message();
  }
}
