//===- FlashAttentionKernelsTest.cpp - flash attention under emulation ----===//
//
// The flash-attention kernels (runtime/cuda/kernels/FlashAttention.cu)
// against what the plan computes today on the CPU backend: matmul, softmax
// (causal rule and padding mask), dropout, matmul, and their backward
// (dropout of dO Vᵀ, softmaxBackward, matmuls), composed from the CPU
// reference kernels in double. Shapes are small and awkward: sequences not
// a multiple of the tiles, fewer queries than keys (and more), a padding
// length of 0, one element, grids smaller than the work.
//
//===----------------------------------------------------------------------===//

#include "Emulated.h"

#include "loom/runtime/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace loom {
namespace test {
namespace {

namespace cpu = runtime::cpu;

struct Case {
  const char *name;
  int64_t bh, heads, queries, keys, headDim;
  bool causal;
  std::vector<int64_t> lengths; // per batch (bh / heads); empty: no padding
  double rate;
  unsigned grid;
};

struct Tensors {
  std::vector<double> q, k, v, dout;
};

struct Results {
  std::vector<double> o, lse, dq, dk, dv;
};

std::vector<double> randomValues(size_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> x(n);
  for (double &e : x)
    e = float(u(rng)); // representable in f32: both sides see the same inputs
  return x;
}

constexpr uint64_t kKey = 0x9E3779B97F4A7C15ull;
constexpr int64_t kOffset = 1234567;

/// The plan's composition on the CPU reference kernels, in double.
Results reference(const Case &c, const Tensors &t) {
  const int64_t bh = c.bh, tq = c.queries, tk = c.keys, dh = c.headDim;
  const double scale = 1.0 / std::sqrt(double(dh));
  Results r;
  std::vector<double> s(size_t(bh * tq * tk)), p(s.size()), pd(s.size());
  runtime::MatmulShape qk{bh, tq, tk, dh, false, true, false, false};
  cpu::matmul<double>(qk, t.q.data(), t.k.data(), s.data());
  std::vector<uint8_t> mask;
  if (!c.lengths.empty()) {
    mask.assign(s.size(), 0);
    for (int64_t b = 0; b < bh; ++b)
      for (int64_t i = 0; i < tq; ++i)
        for (int64_t j = 0; j < tk; ++j)
          mask[size_t((b * tq + i) * tk + j)] =
              j < c.lengths[size_t(b / c.heads)];
  }
  runtime::SoftmaxShape shape{bh * tq, tk, tq, c.causal, scale};
  cpu::softmax<double>(shape, s.data(), mask.empty() ? nullptr : mask.data(),
                       p.data());
  cpu::dropout<double>(p.data(), pd.data(), int64_t(p.size()), kOffset, c.rate,
                       kKey);
  r.o.assign(size_t(bh * tq * dh), 0);
  runtime::MatmulShape pv{bh, tq, dh, tk, false, false, false, false};
  cpu::matmul<double>(pv, pd.data(), t.v.data(), r.o.data());

  // The row log-sum-exp of the visible scaled scores (no CPU kernel keeps
  // it): the statistic the backward recomputes P from.
  r.lse.assign(size_t(bh * tq), -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < bh; ++b)
    for (int64_t i = 0; i < tq; ++i) {
      auto visible = [&](int64_t j) {
        return (!c.causal || j <= i + (tk - tq)) &&
               (c.lengths.empty() || j < c.lengths[size_t(b / c.heads)]);
      };
      double m = -std::numeric_limits<double>::infinity(), sum = 0;
      const double *row = &s[size_t((b * tq + i) * tk)];
      for (int64_t j = 0; j < tk; ++j)
        if (visible(j))
          m = std::max(m, scale * row[j]);
      if (m == -std::numeric_limits<double>::infinity())
        continue;
      for (int64_t j = 0; j < tk; ++j)
        if (visible(j))
          sum += std::exp(scale * row[j] - m);
      r.lse[size_t(b * tq + i)] = m + std::log(sum);
    }

  std::vector<double> dpd(s.size()), dp(s.size()), ds(s.size());
  runtime::MatmulShape dov{bh, tq, tk, dh, false, true, false, false};
  cpu::matmul<double>(dov, t.dout.data(), t.v.data(), dpd.data());
  cpu::dropout<double>(dpd.data(), dp.data(), int64_t(dp.size()), kOffset,
                       c.rate, kKey);
  cpu::softmaxBackward<double>(shape, p.data(), dp.data(), ds.data());
  r.dq.assign(size_t(bh * tq * dh), 0);
  r.dk.assign(size_t(bh * tk * dh), 0);
  r.dv.assign(size_t(bh * tk * dh), 0);
  runtime::MatmulShape dsk{bh, tq, dh, tk, false, false, false, false};
  cpu::matmul<double>(dsk, ds.data(), t.k.data(), r.dq.data());
  runtime::MatmulShape dsq{bh, tk, dh, tq, true, false, false, false};
  cpu::matmul<double>(dsq, ds.data(), t.q.data(), r.dk.data());
  cpu::matmul<double>(dsq, pd.data(), t.dout.data(), r.dv.data());
  return r;
}

/// The entry that holds headDim.
std::string entrySuffix(int64_t headDim) {
  return headDim <= 32 ? "_d32" : headDim <= 64 ? "_d64" : "_d128";
}

std::vector<float> toFloat(const std::vector<double> &x) {
  return std::vector<float>(x.begin(), x.end());
}

/// The kernels: forward, Delta, dK/dV, dQ. Outputs start as NaN so that an
/// element no kernel writes fails the comparison.
Results flash(const Case &c, const Tensors &t, unsigned grid) {
  const int64_t bh = c.bh, tq = c.queries, tk = c.keys, dh = c.headDim;
  const float scale = float(1.0 / std::sqrt(double(dh)));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> q = toFloat(t.q), k = toFloat(t.k), v = toFloat(t.v),
                     dout = toFloat(t.dout);
  std::vector<float> o(q.size(), nan), lse(size_t(bh * tq), nan),
      delta(lse.size(), nan), dq(q.size(), nan), dk(k.size(), nan),
      dv(v.size(), nan);
  const int64_t *lengths = c.lengths.empty() ? nullptr : c.lengths.data();
  const std::string d = entrySuffix(dh);
  const Dim3 g{grid, 1, 1}, block{128, 1, 1};
  auto common = [&]() {
    return std::vector<KernelArg>{
        i64(bh),     i64(tq),    i64(tk),       i64(dh),     i64(c.heads),
        lengths,     f32(scale), i32(c.causal), f64(c.rate), i64(int64_t(kKey)),
        i64(kOffset)};
  };
  auto with = [&](std::vector<KernelArg> front) {
    std::vector<KernelArg> rest = common();
    front.insert(front.end(), rest.begin(), rest.end());
    return front;
  };
  EXPECT_EQ(
      launchKernel("loom_flash_forward" + d, g, block,
                   with({q.data(), k.data(), v.data(), o.data(), lse.data()})),
      "");
  EXPECT_EQ(launchKernel(
                "loom_flash_backward_delta", g, block,
                {o.data(), dout.data(), delta.data(), i64(bh * tq), i64(dh)}),
            "");
  EXPECT_EQ(
      launchKernel("loom_flash_backward_dkdv" + d, g, block,
                   with({q.data(), k.data(), v.data(), dout.data(), lse.data(),
                         delta.data(), dk.data(), dv.data()})),
      "");
  EXPECT_EQ(launchKernel("loom_flash_backward_dq" + d, g, block,
                         with({q.data(), k.data(), v.data(), dout.data(),
                               lse.data(), delta.data(), dq.data()})),
            "");
  auto wide = [](const std::vector<float> &x) {
    return std::vector<double>(x.begin(), x.end());
  };
  return {wide(o), wide(lse), wide(dq), wide(dk), wide(dv)};
}

// The conformance suite's norm-family tolerance: f32 dot products and an
// online softmax against a double composition of four kernels.
constexpr double kRtol = 1e-4, kAtol = 1e-5;

void expectClose(const char *what, const std::vector<double> &got,
                 const std::vector<double> &want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bool ok = std::isinf(want[i]) ? got[i] == want[i]
                                  : std::abs(got[i] - want[i]) <=
                                        kAtol + kRtol * std::abs(want[i]);
    if (!ok && reported++ < 5)
      ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", want "
                    << want[i];
  }
  EXPECT_EQ(reported, 0) << what << ": " << reported << " elements differ";
}

Tensors inputs(const Case &c) {
  std::mt19937 rng(
      uint32_t(c.bh * 131 + c.queries * 17 + c.keys * 7 + c.headDim));
  Tensors t;
  t.q = randomValues(size_t(c.bh * c.queries * c.headDim), rng);
  t.k = randomValues(size_t(c.bh * c.keys * c.headDim), rng);
  t.v = randomValues(size_t(c.bh * c.keys * c.headDim), rng);
  t.dout = randomValues(size_t(c.bh * c.queries * c.headDim), rng);
  return t;
}

class FlashAttention : public ::testing::TestWithParam<Case> {};

TEST_P(FlashAttention, MatchesTheCpuComposition) {
  const Case &c = GetParam();
  Tensors t = inputs(c);
  Results want = reference(c, t), got = flash(c, t, c.grid);
  expectClose("O", got.o, want.o);
  expectClose("L", got.lse, want.lse);
  expectClose("dQ", got.dq, want.dq);
  expectClose("dK", got.dk, want.dk);
  expectClose("dV", got.dv, want.dv);
}

// Each output element is one thread's fixed-order sum, whichever block
// computes its tile: any grid gives the same bits.
TEST_P(FlashAttention, TheSameBitsOnAnyGrid) {
  const Case &c = GetParam();
  Tensors t = inputs(c);
  Results a = flash(c, t, 1), b = flash(c, t, 7);
  auto same = [](const std::vector<double> &x, const std::vector<double> &y) {
    return x.size() == y.size() &&
           std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
  };
  EXPECT_TRUE(same(a.o, b.o) && same(a.lse, b.lse) && same(a.dq, b.dq) &&
              same(a.dk, b.dk) && same(a.dv, b.dv));
}

const Case kCases[] = {
    // name, bh, heads, queries, keys, headDim, causal, lengths, rate, grid
    {"Plain_d32", 2, 2, 37, 37, 32, false, {}, 0.0, 1},
    {"Plain_d64", 3, 3, 45, 45, 64, false, {}, 0.0, 64},
    {"CausalFewerQueries_d64", 2, 1, 20, 45, 64, true, {}, 0.0, 3},
    {"CausalMoreQueries_d32", 2, 2, 40, 10, 32, true, {}, 0.0, 2},
    {"Padding_d64", 4, 2, 33, 33, 64, false, {29, 7}, 0.0, 5},
    {"PaddingCausalEmpty_d32", 4, 2, 35, 35, 32, true, {0, 34}, 0.0, 3},
    {"Dropout_d32", 2, 2, 37, 41, 32, false, {}, 0.1, 4},
    {"DropoutCausalPadding_d64", 2, 1, 33, 40, 64, true, {38, 21}, 0.1, 2},
    {"OddHeadDim_d64", 2, 2, 9, 17, 40, true, {}, 0.1, 1},
    {"HeadDim100_d128", 1, 1, 19, 35, 100, true, {}, 0.1, 2},
    {"OneElement", 1, 1, 1, 1, 1, false, {}, 0.0, 1},
};

INSTANTIATE_TEST_SUITE_P(Kernels, FlashAttention, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case> &info) {
                           return std::string(info.param.name);
                         });

// Every entry assumes 128 threads; another block size writes nothing
// rather than a wrong answer.
TEST(FlashAttentionEntry, OtherBlockSizesWriteNothing) {
  std::vector<float> q(32, 0.5f), o(32, -7.0f), lse(1, -7.0f);
  EXPECT_EQ(launchKernel("loom_flash_forward_d32", {1, 1, 1}, {64, 1, 1},
                         {q.data(), q.data(), q.data(), o.data(), lse.data(),
                          i64(1), i64(1), i64(1), i64(32), i64(1), nullptr,
                          f32(1.0f), i32(0), f64(0.0), i64(0), i64(0)}),
            "");
  EXPECT_EQ(o[0], -7.0f);
  EXPECT_EQ(lse[0], -7.0f);
}

} // namespace
} // namespace test
} // namespace loom
