//===- KernelsTest.cpp - CPU kernels: values and gradient checks ----------===//
//
// Forward kernels against values worked out independently (naive loops,
// closed forms); every backward kernel against central finite differences of
// L(x) = sum(dy · f(x)) in double precision.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

using namespace loom::runtime;
using namespace loom::runtime::cpu;
using Vec = std::vector<double>;

namespace {

Vec randomVec(size_t n, uint64_t seed, double lo = -2.0, double hi = 2.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double &x : v)
    x = dist(rng);
  return v;
}

double dot(const Vec &a, const Vec &b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

/// Checks `analytic` = d/dx sum(dy · f(x)) by central differences.
void expectGradient(const std::function<Vec(const Vec &)> &f, Vec x,
                    const Vec &dy, const Vec &analytic, const char *what) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double plus = dot(dy, f(x));
    x[i] = saved - h;
    double minus = dot(dy, f(x));
    x[i] = saved;
    double numeric = (plus - minus) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
        << what << ", element " << i;
  }
}

//===--- Matmul -----------------------------------------------------------===//

TEST(KernelsTest, MatmulMatchesNaiveLoops) {
  // batch 3, m 4, n 5, k 6, a transposed, b broadcast (a weight).
  MatmulShape s{3,
                4,
                5,
                6,
                /*transposeA=*/true,
                /*transposeB=*/false,
                /*broadcastA=*/false,
                /*broadcastB=*/true};
  Vec a = randomVec(3 * 6 * 4, 1), b = randomVec(6 * 5, 2), c(3 * 4 * 5, 1.0);
  Vec expected(c.size());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t col = 0; col < 5; ++col) {
        double sum = 0;
        for (int64_t k = 0; k < 6; ++k)
          sum += a[i * 24 + k * 4 + r] * b[k * 5 + col];
        expected[i * 20 + r * 5 + col] = 0.5 * 1.0 + sum; // beta = 0.5
      }
  matmul(s, a.data(), b.data(), c.data(), 0.5);
  for (size_t i = 0; i < c.size(); ++i)
    EXPECT_NEAR(c[i], expected[i], 1e-12) << i;

  std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()),
      cf(c.size(), 0.0f);
  matmul(s, af.data(), bf.data(), cf.data());
  for (size_t i = 0; i < c.size(); ++i)
    EXPECT_NEAR(cf[i], expected[i] - 0.5, 1e-4) << i;
}

TEST(KernelsTest, MatmulBroadcastLhsTransposedRhs) {
  // One [m=2, k=3] matrix times each of 4 batched [n=5, k=3]ᵀ.
  MatmulShape s{4,
                2,
                5,
                3,
                /*transposeA=*/false,
                /*transposeB=*/true,
                /*broadcastA=*/true,
                /*broadcastB=*/false};
  Vec a = randomVec(2 * 3, 30), b = randomVec(4 * 5 * 3, 31), c(4 * 2 * 5);
  matmul(s, a.data(), b.data(), c.data());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t col = 0; col < 5; ++col) {
        double sum = 0;
        for (int64_t k = 0; k < 3; ++k)
          sum += a[r * 3 + k] * b[i * 15 + col * 3 + k];
        EXPECT_NEAR(c[i * 10 + r * 5 + col], sum, 1e-12);
      }
}

//===--- Broadcasting -----------------------------------------------------===//

TEST(KernelsTest, BroadcastBinaryFollowsNumpy) {
  Vec a = {1, 2, 3, 4, 5, 6}; // [2, 3]
  Vec b = {10, 20, 30};       // [3]
  Vec out(6);
  broadcastBinary(BinaryKind::Add, a.data(), {2, 3}, b.data(), {3}, out.data(),
                  {2, 3});
  EXPECT_EQ(out, (Vec{11, 22, 33, 14, 25, 36}));
  Vec col = {2, 4}; // [2, 1]
  broadcastBinary(BinaryKind::Div, a.data(), {2, 3}, col.data(), {2, 1},
                  out.data(), {2, 3});
  EXPECT_EQ(out, (Vec{0.5, 1, 1.5, 1, 1.25, 1.5}));
  Vec outer(6); // [2, 1] - [3] -> [2, 3]
  broadcastBinary(BinaryKind::Sub, col.data(), {2, 1}, b.data(), {3},
                  outer.data(), {2, 3});
  EXPECT_EQ(outer, (Vec{-8, -18, -28, -6, -16, -26}));
}

TEST(KernelsTest, BroadcastGradientsReduceToTheOperandShape) {
  // f(a, b) = a / b with a [2, 1, 4] and b [3, 1] broadcast to [2, 3, 4].
  Shape as{2, 1, 4}, bs{3, 1}, os{2, 3, 4};
  Vec a = randomVec(8, 3), b = randomVec(3, 4, 0.5, 2.0), dy = randomVec(24, 5);
  // da = reduce(dy / b), db = reduce(-dy · a / b²), built from the kernels.
  Vec tmp(24), da(8), db(3), bsq(3);
  broadcastBinary(BinaryKind::Div, dy.data(), os, b.data(), bs, tmp.data(), os);
  reduceToShape(tmp.data(), os, da.data(), as);
  broadcastBinary(BinaryKind::Mul, b.data(), bs, b.data(), bs, bsq.data(), bs);
  Vec quotient(24);
  broadcastBinary(BinaryKind::Div, a.data(), as, bsq.data(), bs,
                  quotient.data(), os);
  broadcastBinary(BinaryKind::Mul, dy.data(), os, quotient.data(), os,
                  tmp.data(), os);
  reduceToShape(tmp.data(), os, db.data(), bs);
  for (double &v : db)
    v = -v;
  auto fa = [&](const Vec &x) {
    Vec y(24);
    broadcastBinary(BinaryKind::Div, x.data(), as, b.data(), bs, y.data(), os);
    return y;
  };
  auto fb = [&](const Vec &x) {
    Vec y(24);
    broadcastBinary(BinaryKind::Div, a.data(), as, x.data(), bs, y.data(), os);
    return y;
  };
  expectGradient(fa, a, dy, da, "d(a/b)/da");
  expectGradient(fb, b, dy, db, "d(a/b)/db");
}

//===--- Activations ------------------------------------------------------===//

TEST(KernelsTest, ActivationsMatchClosedForms) {
  Vec x = {1.0, -0.5}, y(2);
  activation(Activation::Gelu, x.data(), y.data(), 2);
  EXPECT_NEAR(y[0], 0.8413447460685429, 1e-15); // Φ(1)
  EXPECT_NEAR(y[1], -0.5 * 0.3085375387259869, 1e-15);
  activation(Activation::GeluTanh, x.data(), y.data(), 2);
  EXPECT_NEAR(y[0], 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * 1.044715)),
              1e-15);
  activation(Activation::Silu, x.data(), y.data(), 2);
  EXPECT_NEAR(y[0], 1 / (1 + std::exp(-1.0)), 1e-15);
  activation(Activation::Relu, x.data(), y.data(), 2);
  EXPECT_EQ(y, (Vec{1.0, 0.0}));
}

TEST(KernelsTest, ActivationGradients) {
  Vec x = randomVec(64, 6), dy = randomVec(64, 7);
  for (double &v : x) // keep away from relu's kink
    if (std::abs(v) < 1e-3)
      v = 0.5;
  for (Activation kind : {Activation::Relu, Activation::Silu, Activation::Gelu,
                          Activation::GeluTanh}) {
    Vec dx(64);
    activationBackward(kind, x.data(), dy.data(), dx.data(), 64);
    expectGradient(
        [&](const Vec &in) {
          Vec y(64);
          activation(kind, in.data(), y.data(), 64);
          return y;
        },
        x, dy, dx, "activation");
  }
}

//===--- Softmax ----------------------------------------------------------===//

TEST(KernelsTest, SoftmaxMasksAndNormalises) {
  // Two heads of [q = 3, k = 4]: causal sees j <= i + 1.
  SoftmaxShape s{6, 4, 3, /*causal=*/true, 0.5};
  Vec x = randomVec(24, 8), y(24);
  softmax(s, x.data(), nullptr, y.data());
  for (int64_t r = 0; r < 6; ++r) {
    int64_t i = r % 3;
    double sum = 0;
    for (int64_t j = 0; j < 4; ++j) {
      sum += y[r * 4 + j];
      if (j > i + 1)
        EXPECT_EQ(y[r * 4 + j], 0.0) << r << "," << j;
      else
        EXPECT_GT(y[r * 4 + j], 0.0);
    }
    EXPECT_NEAR(sum, 1.0, 1e-15);
  }
  // Values: row 0 sees keys 0 and 1 only.
  double e0 = std::exp(0.5 * x[0]), e1 = std::exp(0.5 * x[1]);
  EXPECT_NEAR(y[0], e0 / (e0 + e1), 1e-15);

  // A padding mask, and a row with every key masked.
  SoftmaxShape plain{2, 3, 1, false, 1.0};
  Vec x2 = {1, 2, 3, 4, 5, 6}, y2(6);
  std::vector<uint8_t> mask = {1, 0, 1, 0, 0, 0};
  softmax(plain, x2.data(), mask.data(), y2.data());
  EXPECT_NEAR(y2[0], 1 / (1 + std::exp(2.0)), 1e-15);
  EXPECT_EQ(y2[1], 0.0);
  EXPECT_EQ(y2[3] + y2[4] + y2[5], 0.0);
}

TEST(KernelsTest, SoftmaxGradient) {
  SoftmaxShape s{6, 4, 3, /*causal=*/true, 0.5};
  Vec x = randomVec(24, 9), dy = randomVec(24, 10), y(24), dx(24);
  softmax(s, x.data(), nullptr, y.data());
  softmaxBackward(s, y.data(), dy.data(), dx.data());
  expectGradient(
      [&](const Vec &in) {
        Vec out(24);
        softmax(s, in.data(), nullptr, out.data());
        return out;
      },
      x, dy, dx, "softmax");
}

//===--- Normalisation ----------------------------------------------------===//

TEST(KernelsTest, LayerNormValues) {
  Vec x = {1, 2, 3, 4}, w = {1, 1, 1, 1}, b = {0, 0, 0, 0}, y(4), m(1), r(1);
  layerNorm(x.data(), w.data(), b.data(), y.data(), m.data(), r.data(), 1, 4,
            1e-12);
  // mean 2.5, biased variance 1.25
  EXPECT_NEAR(m[0], 2.5, 1e-15);
  EXPECT_NEAR(r[0], 1 / std::sqrt(1.25), 1e-9);
  EXPECT_NEAR(y[0], -1.5 / std::sqrt(1.25), 1e-9);
  EXPECT_NEAR(y[3], 1.5 / std::sqrt(1.25), 1e-9);
}

TEST(KernelsTest, LayerNormGradients) {
  const int64_t rows = 3, cols = 5;
  Vec x = randomVec(15, 11), w = randomVec(5, 12), b = randomVec(5, 13),
      dy = randomVec(15, 14);
  Vec y(15), mean(3), rstd(3), dx(15), dw(5, 0.0), db(5, 0.0);
  layerNorm(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(),
            rows, cols, 1e-5);
  layerNormBackward(x.data(), w.data(), mean.data(), rstd.data(), dy.data(),
                    dx.data(), dw.data(), db.data(), rows, cols);
  auto run = [&](const Vec &xx, const Vec &ww, const Vec &bb) {
    Vec out(15), m(3), r(3);
    layerNorm(xx.data(), ww.data(), bb.data(), out.data(), m.data(), r.data(),
              rows, cols, 1e-5);
    return out;
  };
  expectGradient([&](const Vec &v) { return run(v, w, b); }, x, dy, dx,
                 "layernorm dx");
  expectGradient([&](const Vec &v) { return run(x, v, b); }, w, dy, dw,
                 "layernorm dweight");
  expectGradient([&](const Vec &v) { return run(x, w, v); }, b, dy, db,
                 "layernorm dbias");
}

TEST(KernelsTest, RmsNormGradients) {
  const int64_t rows = 3, cols = 5;
  Vec x = randomVec(15, 15), w = randomVec(5, 16), dy = randomVec(15, 17);
  Vec y(15), rstd(3), dx(15), dw(5, 0.0);
  rmsNorm(x.data(), w.data(), y.data(), rstd.data(), rows, cols, 1e-5);
  // y = x / sqrt(mean(x²) + eps) · w, checked on the first element.
  double ms =
      (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3] + x[4] * x[4]) / 5;
  EXPECT_NEAR(y[0], x[0] / std::sqrt(ms + 1e-5) * w[0], 1e-12);
  rmsNormBackward(x.data(), w.data(), rstd.data(), dy.data(), dx.data(),
                  dw.data(), rows, cols);
  auto run = [&](const Vec &xx, const Vec &ww) {
    Vec out(15), r(3);
    rmsNorm(xx.data(), ww.data(), out.data(), r.data(), rows, cols, 1e-5);
    return out;
  };
  expectGradient([&](const Vec &v) { return run(v, w); }, x, dy, dx,
                 "rmsnorm dx");
  expectGradient([&](const Vec &v) { return run(x, v); }, w, dy, dw,
                 "rmsnorm dweight");
}

//===--- Dropout ----------------------------------------------------------===//

TEST(KernelsTest, DropoutMaskIsTheSameForEveryPartition) {
  const int64_t n = 10007;
  Vec x(n, 1.0), whole(n), parts(n);
  uint64_t key = dropoutKey(1234, "layers.0.attention.attention_dropout", 7);
  dropout(x.data(), whole.data(), n, 0, 0.1, key);
  // Three ranks, each its slice at its global offset.
  for (int64_t start : {int64_t(0), int64_t(3001), int64_t(7777)}) {
    int64_t end = start == 0 ? 3001 : start == 3001 ? 7777 : n;
    dropout(x.data() + start, parts.data() + start, end - start, start, 0.1,
            key);
  }
  EXPECT_EQ(whole, parts);
  int64_t kept = 0;
  for (double v : whole) {
    ASSERT_TRUE(v == 0.0 || std::abs(v - 1.0 / 0.9) < 1e-12) << v;
    kept += v != 0.0;
  }
  // Binomial(10007, 0.9): standard deviation 30; allow 5.
  EXPECT_NEAR(double(kept), 0.9 * n, 150);

  // Another site, seed or step draws another mask; rate 0 keeps everything.
  Vec other(n);
  dropout(x.data(), other.data(), n, 0, 0.1,
          dropoutKey(1234, "layers.1.attention.attention_dropout", 7));
  EXPECT_NE(whole, other);
  dropout(x.data(), other.data(), n, 0, 0.1,
          dropoutKey(1234, "layers.0.attention.attention_dropout", 8));
  EXPECT_NE(whole, other);
  dropout(x.data(), other.data(), n, 0, 0.0, key);
  EXPECT_EQ(other, x);
}

//===--- Gathers and loss -------------------------------------------------===//

TEST(KernelsTest, EmbeddingGathersAndScatters) {
  Vec table = randomVec(5 * 3, 20), dy = randomVec(4 * 3, 21), y(12);
  std::vector<int32_t> ids = {4, 0, 4, 2};
  ASSERT_TRUE(embedding(table.data(), 5, 3, ids.data(), 4, y.data()));
  EXPECT_EQ(y[0], table[12]);
  EXPECT_EQ(y[3], table[0]);
  Vec dtable(15, 0.0);
  ASSERT_TRUE(embeddingBackward(ids.data(), 4, 5, 3, dy.data(), dtable.data()));
  expectGradient(
      [&](const Vec &t) {
        Vec out(12);
        embedding(t.data(), 5, 3, ids.data(), 4, out.data());
        return out;
      },
      table, dy, dtable, "embedding");
  std::vector<int64_t> bad = {1, 5};
  EXPECT_FALSE(embedding(table.data(), 5, 3, bad.data(), 2, y.data()));
  EXPECT_FALSE(
      embeddingBackward(bad.data(), 2, 5, 3, dy.data(), dtable.data()));
}

TEST(KernelsTest, CrossEntropyValuesAndGradient) {
  // Uniform logits: every token's loss is log(vocab).
  Vec uniform(3 * 8, 0.25), losses(3);
  std::vector<int32_t> labels = {1, -100, 7};
  EXPECT_EQ(
      crossEntropy(uniform.data(), labels.data(), 3, 8, -100, losses.data()),
      2);
  EXPECT_NEAR(losses[0], std::log(8.0), 1e-15);
  EXPECT_EQ(losses[1], 0.0);
  std::vector<int32_t> outOfRange = {8};
  EXPECT_EQ(crossEntropy(uniform.data(), outOfRange.data(), 1, 8, -100,
                         losses.data()),
            -1);

  Vec logits = randomVec(24, 22, -4, 4), dloss = randomVec(3, 23), dlogits(24);
  ASSERT_TRUE(crossEntropyBackward(logits.data(), labels.data(), dloss.data(),
                                   3, 8, -100, dlogits.data()));
  expectGradient(
      [&](const Vec &l) {
        Vec out(3);
        crossEntropy(l.data(), labels.data(), 3, 8, -100, out.data());
        return out;
      },
      logits, dloss, dlogits, "cross_entropy");
}

TEST(KernelsTest, CrossEntropyMasksThePaddedClasses) {
  // 8 columns of which 6 are classes. The padded two hold logits far above
  // the real ones: masked, the losses are those of the 6 real columns alone,
  // and their gradient is 0.
  std::vector<int32_t> labels = {1, -100, 5};
  Vec logits = randomVec(24, 31, -4, 4), real(18);
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t j = 0; j < 6; ++j)
      real[t * 6 + j] = logits[t * 8 + j];
    logits[t * 8 + 6] = logits[t * 8 + 7] = 100.0;
  }
  Vec losses(3), want(3);
  EXPECT_EQ(
      crossEntropy(logits.data(), labels.data(), 3, 8, -100, losses.data(), 6),
      2);
  crossEntropy(real.data(), labels.data(), 3, 6, -100, want.data());
  for (int64_t t = 0; t < 3; ++t)
    EXPECT_NEAR(losses[t], want[t], 1e-12) << "token " << t;
  // A label among the padded columns is outside the classes.
  std::vector<int32_t> padded = {6};
  EXPECT_EQ(
      crossEntropy(logits.data(), padded.data(), 1, 8, -100, losses.data(), 6),
      -1);

  Vec dloss = randomVec(3, 32), dlogits(24, -7.0), dreal(18);
  ASSERT_TRUE(crossEntropyBackward(logits.data(), labels.data(), dloss.data(),
                                   3, 8, -100, dlogits.data(), 6));
  ASSERT_TRUE(crossEntropyBackward(real.data(), labels.data(), dloss.data(), 3,
                                   6, -100, dreal.data()));
  for (int64_t t = 0; t < 3; ++t) {
    for (int64_t j = 0; j < 6; ++j)
      EXPECT_NEAR(dlogits[t * 8 + j], dreal[t * 6 + j], 1e-12);
    EXPECT_EQ(dlogits[t * 8 + 6], 0.0);
    EXPECT_EQ(dlogits[t * 8 + 7], 0.0);
  }
  EXPECT_FALSE(crossEntropyBackward(logits.data(), padded.data(), dloss.data(),
                                    1, 8, -100, dlogits.data(), 6));
}

TEST(KernelsTest, VocabularyParallelCrossEntropyMasksThePaddedClasses) {
  // 12 columns of which 10 are classes, over two ranks of 6: rank 1 holds
  // classes [6, 12), of them [6, 10) real. The blocks' partials combine to
  // the whole masked loss, and the padded classes' gradient is 0.
  std::vector<int32_t> labels = {2, 9, -100, 7};
  Vec whole = randomVec(48, 33, -4, 4);
  for (int64_t t = 0; t < 4; ++t)
    whole[t * 12 + 10] = whole[t * 12 + 11] = 100.0;
  Vec block[2] = {Vec(24), Vec(24)};
  for (int r = 0; r < 2; ++r)
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t c = 0; c < 6; ++c)
        block[r][t * 6 + c] = whole[t * 12 + r * 6 + c];
  Vec max(4, -std::numeric_limits<double>::infinity());
  for (int r = 0; r < 2; ++r) {
    Vec m(4);
    crossEntropyMax(block[r].data(), 4, 6, r * 6, 10, m.data());
    for (int64_t t = 0; t < 4; ++t)
      max[t] = std::max(max[t], m[t]);
  }
  for (int64_t t = 0; t < 4; ++t)
    EXPECT_EQ(max[t], *std::max_element(&whole[t * 12], &whole[t * 12 + 10]));
  // A block with no real class: -inf, which the max over blocks drops.
  Vec none(4);
  crossEntropyMax(block[1].data(), 4, 6, 6, 5, none.data());
  EXPECT_TRUE(std::isinf(none[0]) && none[0] < 0);

  Vec sumExp(4, 0.0), target(4, 0.0);
  for (int r = 0; r < 2; ++r) {
    Vec s(4), tg(4);
    ASSERT_TRUE(crossEntropyPartials(block[r].data(), max.data(), labels.data(),
                                     4, 6, r * 6, 12, -100, s.data(), tg.data(),
                                     10));
    for (int64_t t = 0; t < 4; ++t) {
      sumExp[t] += s[t];
      target[t] += tg[t];
    }
  }
  Vec losses(4), want(4);
  crossEntropyCombine(sumExp.data(), target.data(), labels.data(), 4, -100,
                      losses.data());
  crossEntropy(whole.data(), labels.data(), 4, 12, -100, want.data(), 10);
  for (int64_t t = 0; t < 4; ++t)
    EXPECT_NEAR(losses[t], want[t], 1e-12) << "token " << t;

  Vec a = randomVec(4, 34), b = randomVec(4, 35), dz(24, -7.0);
  ASSERT_TRUE(crossEntropyPartialsBackward(block[1].data(), max.data(),
                                           labels.data(), a.data(), b.data(), 4,
                                           6, 6, 12, -100, dz.data(), 10));
  for (int64_t t = 0; t < 4; ++t) {
    EXPECT_EQ(dz[t * 6 + 4], 0.0);
    EXPECT_EQ(dz[t * 6 + 5], 0.0);
    EXPECT_NE(dz[t * 6 + 3], 0.0);
  }
  // A label among the padded classes is outside the vocabulary.
  std::vector<int32_t> padded = {10, 0, 0, 0};
  Vec s(4), tg(4);
  EXPECT_FALSE(crossEntropyPartials(block[1].data(), max.data(), padded.data(),
                                    4, 6, 6, 12, -100, s.data(), tg.data(),
                                    10));
  EXPECT_FALSE(crossEntropyPartialsBackward(block[1].data(), max.data(),
                                            padded.data(), a.data(), b.data(),
                                            4, 6, 6, 12, -100, dz.data(), 10));
}

//===--- Shape ops --------------------------------------------------------===//

TEST(KernelsTest, TransposeMatchesIndexArithmetic) {
  Shape shape{2, 3, 4};
  Vec x(24), y(24), back(24);
  std::iota(x.begin(), x.end(), 0.0);
  transpose(x.data(), shape, {1, 2, 0}, y.data()); // -> [3, 4, 2]
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 2; ++k)
        EXPECT_EQ(y[i * 8 + j * 2 + k], x[k * 12 + i * 4 + j]);
  transpose(y.data(), {3, 4, 2}, {2, 0, 1}, back.data()); // the inverse
  EXPECT_EQ(back, x);
}

} // namespace
