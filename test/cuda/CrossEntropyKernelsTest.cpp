//===- CrossEntropyKernelsTest.cpp - kernels/CrossEntropy.cu vs the CPU's -===//
//
// The cross-entropy kernels under emulation against runtime/cpu's
// crossEntropy, crossEntropyBackward, their reductions, and the
// vocabulary-parallel partials and combine: rows longer than the block,
// grids smaller than the tokens, ignore_index, every token ignored, labels
// outside the classes, a rank's block with first > 0, the gradient in place
// over the logits, padded classes masked out (whole and in a block).
//
//===----------------------------------------------------------------------===//

#include "Compare.h"
#include "Emulated.h"

#include "loom/runtime/cpu/Kernels.h"

#include <cmath>
#include <vector>

namespace loom {
namespace test {
namespace {

namespace cpu = runtime::cpu;

constexpr double kRtol = 1e-5, kAtol = 1e-5; // the conformance suite's
constexpr int64_t kIgnore = -100;

std::vector<float> perTokenLosses(const std::vector<float> &logits,
                                  const std::vector<int32_t> &labels,
                                  int64_t vocab, unsigned grid, int *flag,
                                  int64_t classes = 0) {
  std::vector<float> losses(labels.size(), -7.0f);
  EXPECT_EQ(launchKernel("loom_crossentropy_forward", Dim3{grid, 1, 1},
                         Dim3{64, 1, 1},
                         {logits.data(), labels.data(), losses.data(),
                          i64(int64_t(labels.size())), i64(vocab),
                          i64(classes ? classes : vocab), i64(kIgnore), flag}),
            "");
  return losses;
}

TEST(CrossEntropyKernels, ForwardAndReductions) {
  int64_t vocab = 300; // longer than the block
  std::vector<int32_t> labels{3, kIgnore, 299, 0, 150, kIgnore, 7};
  int64_t tokens = int64_t(labels.size());
  std::vector<float> logits = randomFloats(size_t(tokens * vocab), 1, -4, 4),
                     want(labels.size());
  int64_t counted = cpu::crossEntropy<float, int32_t>(
      logits.data(), labels.data(), tokens, vocab, kIgnore, want.data());
  ASSERT_EQ(counted, 5);
  for (unsigned grid : {1u, 3u, 10u}) {
    int flag = 0;
    std::vector<float> got = perTokenLosses(logits, labels, vocab, grid, &flag);
    EXPECT_EQ(flag, 0);
    expectClose(got, want, kRtol, kAtol, "per-token losses");
  }
  for (bool mean : {false, true}) {
    float expected = 0, result = -7.0f;
    cpu::crossEntropyReduce<float>(want.data(), tokens, counted, mean,
                                   &expected);
    ASSERT_EQ(launchKernel("loom_crossentropy_reduce", Dim3{1, 1, 1},
                           Dim3{64, 1, 1},
                           {want.data(), labels.data(), &result, i64(tokens),
                            i64(kIgnore), i32(mean ? 1 : 0)}),
              "");
    expectClose({result}, {expected}, kRtol, kAtol,
                mean ? "mean loss" : "summed loss");
  }
}

TEST(CrossEntropyKernels, EveryTokenIgnored) {
  std::vector<int32_t> labels(40, int32_t(kIgnore));
  std::vector<float> logits = randomFloats(40 * 3, 2);
  int flag = 0;
  std::vector<float> losses = perTokenLosses(logits, labels, 3, 2, &flag);
  EXPECT_EQ(losses, std::vector<float>(40, 0.0f));
  float result = -7.0f;
  ASSERT_EQ(launchKernel("loom_crossentropy_reduce", Dim3{1, 1, 1},
                         Dim3{32, 1, 1},
                         {losses.data(), labels.data(), &result, i64(40),
                          i64(kIgnore), i32(1)}),
            "");
  EXPECT_EQ(result, 0.0f); // the mean over no tokens
  float dloss = 1.0f;
  std::vector<float> perToken(40, -7.0f);
  ASSERT_EQ(launchKernel("loom_crossentropy_token_grads", Dim3{1, 1, 1},
                         Dim3{32, 1, 1},
                         {&dloss, labels.data(), perToken.data(), i64(40),
                          i64(kIgnore), i32(2)}),
            "");
  EXPECT_EQ(perToken, std::vector<float>(40, 0.0f));
}

TEST(CrossEntropyKernels, Backward) {
  int64_t vocab = 300;
  std::vector<int32_t> labels{3, kIgnore, 299, 0, 150, kIgnore, 7};
  int64_t tokens = int64_t(labels.size());
  std::vector<float> logits = randomFloats(size_t(tokens * vocab), 3, -4, 4);
  std::vector<float> dlossNone = randomFloats(labels.size(), 4);
  struct Reduction {
    int code;
    bool none, mean;
  };
  for (Reduction r : {Reduction{0, true, false}, Reduction{1, false, false},
                      Reduction{2, false, true}}) {
    std::vector<float> dloss = r.none ? dlossNone : std::vector<float>{0.75f};
    std::vector<float> wantPerToken(labels.size()), want(logits.size());
    cpu::crossEntropyReduceBackward<float, int32_t>(
        dloss.data(), labels.data(), tokens, kIgnore, r.none, r.mean,
        wantPerToken.data());
    ASSERT_TRUE((cpu::crossEntropyBackward<float, int32_t>(
        logits.data(), labels.data(), wantPerToken.data(), tokens, vocab,
        kIgnore, want.data())));
    std::vector<float> perToken(labels.size(), -7.0f);
    ASSERT_EQ(launchKernel("loom_crossentropy_token_grads", Dim3{1, 1, 1},
                           Dim3{64, 1, 1},
                           {dloss.data(), labels.data(), perToken.data(),
                            i64(tokens), i64(kIgnore), i32(r.code)}),
              "");
    expectClose(perToken, wantPerToken, kRtol, kAtol, "per-token gradients");
    for (bool inPlace : {false, true}) {
      std::vector<float> in = logits, separate(logits.size(), -7.0f);
      float *out = inPlace ? in.data() : separate.data();
      int flag = 0;
      ASSERT_EQ(launchKernel(
                    "loom_crossentropy_backward", Dim3{3, 1, 1}, Dim3{64, 1, 1},
                    {in.data(), labels.data(), perToken.data(), out,
                     i64(tokens), i64(vocab), i64(vocab), i64(kIgnore), &flag}),
                "");
      EXPECT_EQ(flag, 0);
      expectClose(inPlace ? in : separate, want, kRtol, kAtol,
                  std::string("dlogits, reduction ") + std::to_string(r.code) +
                      (inPlace ? ", in place" : ""));
    }
  }
}

TEST(CrossEntropyKernels, LabelsOutsideTheVocabularySetTheFlag) {
  for (int32_t bad : {5, -1}) {
    std::vector<int32_t> labels{1, bad, int32_t(kIgnore)};
    std::vector<float> logits = randomFloats(3 * 5, 5);
    int flag = 0;
    perTokenLosses(logits, labels, 5, 2, &flag);
    EXPECT_EQ(flag, 1) << "forward, label " << bad;
    std::vector<float> perToken{1, 1, 1}, dlogits(logits.size());
    flag = 0;
    ASSERT_EQ(launchKernel("loom_crossentropy_backward", Dim3{1, 1, 1},
                           Dim3{32, 1, 1},
                           {logits.data(), labels.data(), perToken.data(),
                            dlogits.data(), i64(3), i64(5), i64(5),
                            i64(kIgnore), &flag}),
              "");
    EXPECT_EQ(flag, 1) << "backward, label " << bad;
  }
}

TEST(CrossEntropyKernels, PaddedClassesAreMaskedOut) {
  // 300 columns of which 260 are classes; the padded ones hold logits far
  // above the real ones, which would dominate the softmax if they joined it.
  int64_t vocab = 300, classes = 260;
  std::vector<int32_t> labels{3, kIgnore, 259, 0, 150, 7};
  int64_t tokens = int64_t(labels.size());
  std::vector<float> logits = randomFloats(size_t(tokens * vocab), 13, -4, 4);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = classes; j < vocab; ++j)
      logits[size_t(t * vocab + j)] = 200.0f;
  std::vector<float> want(labels.size());
  ASSERT_EQ(
      (cpu::crossEntropy<float, int32_t>(logits.data(), labels.data(), tokens,
                                         vocab, kIgnore, want.data(), classes)),
      5);
  int flag = 0;
  expectClose(perTokenLosses(logits, labels, vocab, 4, &flag, classes), want,
              kRtol, kAtol, "masked per-token losses");
  EXPECT_EQ(flag, 0);
  std::vector<float> perToken = randomFloats(labels.size(), 14),
                     wantGrad(logits.size()), grad(logits.size(), -7.0f);
  ASSERT_TRUE((cpu::crossEntropyBackward<float, int32_t>(
      logits.data(), labels.data(), perToken.data(), tokens, vocab, kIgnore,
      wantGrad.data(), classes)));
  ASSERT_EQ(launchKernel(
                "loom_crossentropy_backward", Dim3{2, 1, 1}, Dim3{64, 1, 1},
                {logits.data(), labels.data(), perToken.data(), grad.data(),
                 i64(tokens), i64(vocab), i64(classes), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 0);
  expectClose(grad, wantGrad, kRtol, kAtol, "masked dlogits");
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = classes; j < vocab; ++j)
      ASSERT_EQ(grad[size_t(t * vocab + j)], 0.0f) << "token " << t;
  // A label among the padded columns is outside the classes.
  std::vector<int32_t> padded{1, int32_t(classes)};
  perTokenLosses(std::vector<float>(2 * vocab, 0.0f), padded, vocab, 1, &flag,
                 classes);
  EXPECT_EQ(flag, 1);
}

// The vocabulary-parallel pieces: this rank holds classes [40, 90) of 130.
constexpr int64_t kFirst = 40, kClasses = 50, kTotal = 130;

TEST(CrossEntropyKernels, PartialsOfAVocabularyBlock) {
  // Labels held here, held elsewhere (before and after), ignored.
  std::vector<int32_t> labels{40, 89, 3, 129, int32_t(kIgnore), 65, 90};
  int64_t tokens = int64_t(labels.size());
  std::vector<float> logits = randomFloats(size_t(tokens * kClasses), 6, -4, 4);
  std::vector<float> max(labels.size());
  for (int64_t t = 0; t < tokens; ++t) // a global max at least the local one
    max[size_t(t)] = *std::max_element(logits.begin() + t * kClasses,
                                       logits.begin() + (t + 1) * kClasses) +
                     0.5f * float(t % 2);
  std::vector<float> wantSum(labels.size()), wantTarget(labels.size());
  ASSERT_TRUE((cpu::crossEntropyPartials<float, int32_t>(
      logits.data(), max.data(), labels.data(), tokens, kClasses, kFirst,
      kTotal, kIgnore, wantSum.data(), wantTarget.data())));
  std::vector<float> sum(labels.size(), -7.0f), target(labels.size(), -7.0f);
  int flag = 0;
  ASSERT_EQ(launchKernel("loom_crossentropy_partials", Dim3{3, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), labels.data(), sum.data(),
                          target.data(), i64(tokens), i64(kClasses),
                          i64(kFirst), i64(kTotal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 0);
  expectClose(sum, wantSum, kRtol, kAtol, "sumExp");
  expectClose(target, wantTarget, kRtol, kAtol, "target");

  std::vector<float> a = randomFloats(labels.size(), 7),
                     b = randomFloats(labels.size(), 8), want(logits.size()),
                     dz(logits.size(), -7.0f);
  ASSERT_TRUE((cpu::crossEntropyPartialsBackward<float, int32_t>(
      logits.data(), max.data(), labels.data(), a.data(), b.data(), tokens,
      kClasses, kFirst, kTotal, kIgnore, want.data())));
  ASSERT_EQ(launchKernel("loom_crossentropy_partials_backward", Dim3{5, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), labels.data(), a.data(),
                          b.data(), dz.data(), i64(tokens), i64(kClasses),
                          i64(kFirst), i64(kTotal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 0);
  expectClose(dz, want, kRtol, kAtol, "partial dlogits");
}

TEST(CrossEntropyKernels, PartialsFlagLabelsOutsideTheWholeVocabulary) {
  std::vector<int32_t> labels{45, int32_t(kTotal)};
  std::vector<float> logits = randomFloats(size_t(2 * kClasses), 9), max{2, 2},
                     sum(2), target(2), a{1, 1}, b{1, 1}, dz(logits.size());
  int flag = 0;
  ASSERT_EQ(launchKernel("loom_crossentropy_partials", Dim3{1, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), labels.data(), sum.data(),
                          target.data(), i64(2), i64(kClasses), i64(kFirst),
                          i64(kTotal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 1);
  flag = 0;
  ASSERT_EQ(launchKernel("loom_crossentropy_partials_backward", Dim3{1, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), labels.data(), a.data(),
                          b.data(), dz.data(), i64(2), i64(kClasses),
                          i64(kFirst), i64(kTotal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 1);
}

TEST(CrossEntropyKernels, MaxAndPartialsLeaveThePaddedClassesOut) {
  // Only the first 70 of the 130 classes are real: this block [40, 90)
  // holds 30 real ones; a block [100, 150) would hold none.
  constexpr int64_t kReal = 70;
  std::vector<int32_t> labels{40, 69, 3, int32_t(kIgnore), 65};
  int64_t tokens = int64_t(labels.size());
  std::vector<float> logits =
      randomFloats(size_t(tokens * kClasses), 15, -4, 4);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = kReal - kFirst; c < kClasses; ++c)
      logits[size_t(t * kClasses + c)] = 200.0f;
  for (int64_t first : {kFirst, int64_t(100)}) {
    std::vector<float> want(labels.size()), max(labels.size(), -7.0f);
    cpu::crossEntropyMax<float>(logits.data(), tokens, kClasses, first, kReal,
                                want.data());
    ASSERT_EQ(launchKernel("loom_crossentropy_max", Dim3{2, 1, 1},
                           Dim3{32, 1, 1},
                           {logits.data(), max.data(), i64(tokens),
                            i64(kClasses), i64(first), i64(kReal)}),
              "");
    EXPECT_EQ(max, want) << "first " << first;
    for (float m : max)
      EXPECT_TRUE(first == kFirst ? m < 5.0f : std::isinf(m)) << m;
  }
  std::vector<float> max(labels.size());
  cpu::crossEntropyMax<float>(logits.data(), tokens, kClasses, kFirst, kReal,
                              max.data());
  std::vector<float> wantSum(labels.size()), wantTarget(labels.size());
  ASSERT_TRUE((cpu::crossEntropyPartials<float, int32_t>(
      logits.data(), max.data(), labels.data(), tokens, kClasses, kFirst,
      kTotal, kIgnore, wantSum.data(), wantTarget.data(), kReal)));
  std::vector<float> sum(labels.size(), -7.0f), target(labels.size(), -7.0f);
  int flag = 0;
  ASSERT_EQ(launchKernel("loom_crossentropy_partials", Dim3{3, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), labels.data(), sum.data(),
                          target.data(), i64(tokens), i64(kClasses),
                          i64(kFirst), i64(kReal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 0);
  expectClose(sum, wantSum, kRtol, kAtol, "masked sumExp");
  expectClose(target, wantTarget, kRtol, kAtol, "masked target");
  std::vector<float> a = randomFloats(labels.size(), 16),
                     b = randomFloats(labels.size(), 17), want(logits.size()),
                     dz(logits.size(), -7.0f);
  ASSERT_TRUE((cpu::crossEntropyPartialsBackward<float, int32_t>(
      logits.data(), max.data(), labels.data(), a.data(), b.data(), tokens,
      kClasses, kFirst, kTotal, kIgnore, want.data(), kReal)));
  ASSERT_EQ(launchKernel("loom_crossentropy_partials_backward", Dim3{5, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), labels.data(), a.data(),
                          b.data(), dz.data(), i64(tokens), i64(kClasses),
                          i64(kFirst), i64(kReal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 0);
  expectClose(dz, want, kRtol, kAtol, "masked partial dlogits");
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = kReal - kFirst; c < kClasses; ++c)
      ASSERT_EQ(dz[size_t(t * kClasses + c)], 0.0f);
  // A label among the padded classes is outside the vocabulary.
  std::vector<int32_t> padded{45, int32_t(kReal)};
  ASSERT_EQ(launchKernel("loom_crossentropy_partials", Dim3{1, 1, 1},
                         Dim3{32, 1, 1},
                         {logits.data(), max.data(), padded.data(), sum.data(),
                          target.data(), i64(2), i64(kClasses), i64(kFirst),
                          i64(kReal), i64(kIgnore), &flag}),
            "");
  EXPECT_EQ(flag, 1);
}

TEST(CrossEntropyKernels, Combine) {
  std::vector<int32_t> labels{1, int32_t(kIgnore), 7, 0, 3};
  int64_t tokens = int64_t(labels.size());
  std::vector<float> sumExp = randomFloats(labels.size(), 10, 1, 20),
                     target = randomFloats(labels.size(), 11, -3, 0),
                     dloss = randomFloats(labels.size(), 12);
  std::vector<float> want(labels.size()), loss(labels.size(), -7.0f);
  cpu::crossEntropyCombine<float, int32_t>(sumExp.data(), target.data(),
                                           labels.data(), tokens, kIgnore,
                                           want.data());
  ASSERT_EQ(launchKernel("loom_crossentropy_combine", Dim3{1, 1, 1},
                         Dim3{32, 1, 1},
                         {sumExp.data(), target.data(), labels.data(),
                          loss.data(), i64(tokens), i64(kIgnore)}),
            "");
  expectClose(loss, want, kRtol, kAtol, "combined loss");
  std::vector<float> wantA(labels.size()), wantB(labels.size()),
      a(labels.size(), -7.0f), b(labels.size(), -7.0f);
  cpu::crossEntropyCombineBackward<float, int32_t>(
      sumExp.data(), labels.data(), dloss.data(), tokens, kIgnore, wantA.data(),
      wantB.data());
  ASSERT_EQ(launchKernel("loom_crossentropy_combine_backward", Dim3{2, 1, 1},
                         Dim3{2, 1, 1},
                         {sumExp.data(), labels.data(), dloss.data(), a.data(),
                          b.data(), i64(tokens), i64(kIgnore)}),
            "");
  expectClose(a, wantA, kRtol, kAtol, "a");
  expectClose(b, wantB, kRtol, kAtol, "b");
}

} // namespace
} // namespace test
} // namespace loom
