//===- SoftmaxKernelsTest.cpp - kernels/Softmax.cu against the CPU's ------===//
//
// The softmax kernels under emulation against runtime/cpu's softmax and
// softmaxBackward: rows longer than the block, grids smaller than the rows,
// causal masks with fewer queries than keys (and more), broadcast i1 masks,
// one element.
//
//===----------------------------------------------------------------------===//

#include "Compare.h"
#include "Emulated.h"

#include "loom/runtime/cpu/Kernels.h"

#include <vector>

namespace loom {
namespace test {
namespace {

using runtime::Shape;
using runtime::SoftmaxShape;

constexpr double kRtol = 1e-5, kAtol = 1e-6; // the conformance suite's

/// The kernel's mask geometry without merging: the scores' sizes, then the
/// mask's strides over them (0 where it broadcasts).
std::vector<long long> unmergedMaskDims(const Shape &xs, const Shape &ms) {
  size_t rank = xs.size(), lead = rank - ms.size();
  std::vector<long long> dims(xs.begin(), xs.end()), strides(rank, 0);
  long long stride = 1;
  for (size_t d = rank; d-- > lead;) {
    strides[d] = ms[d - lead] == 1 ? 0 : stride;
    stride *= ms[d - lead];
  }
  dims.insert(dims.end(), strides.begin(), strides.end());
  return dims;
}

/// The mask broadcast to the scores, one byte per element, as the CPU
/// backend's binder gives it to the reference kernel.
std::vector<uint8_t> broadcastMask(const std::vector<uint8_t> &mask,
                                   const Shape &xs, const Shape &ms) {
  std::vector<long long> dims = unmergedMaskDims(xs, ms);
  size_t rank = xs.size();
  std::vector<uint8_t> full(size_t(runtime::numElements(xs)));
  for (size_t e = 0; e < full.size(); ++e) {
    long long rest = (long long)e, offset = 0;
    for (size_t d = rank; d-- > 0;) {
      offset += rest % dims[d] * dims[rank + d];
      rest /= dims[d];
    }
    full[e] = mask[size_t(offset)];
  }
  return full;
}

SoftmaxShape shapeOf(const Shape &xs, bool causal, double scale) {
  SoftmaxShape s;
  s.cols = xs.back();
  s.rows = runtime::numElements(xs) / s.cols;
  s.queries = xs.size() >= 2 ? xs[xs.size() - 2] : 1;
  s.causal = causal;
  s.scale = scale;
  return s;
}

/// The forward kernel's result on `grid` blocks of `threads`.
std::vector<float> runForward(const SoftmaxShape &s,
                              const std::vector<float> &x,
                              const std::vector<uint8_t> *mask,
                              const std::vector<long long> &dims, unsigned grid,
                              unsigned threads) {
  std::vector<float> y(x.size(), -7.0f);
  std::string error = launchKernel(
      "loom_softmax_forward", Dim3{grid, 1, 1}, Dim3{threads, 1, 1},
      {x.data(), mask ? mask->data() : nullptr, mask ? dims.data() : nullptr,
       i32(mask ? int(dims.size() / 2) : 0), y.data(), i64(s.rows), i64(s.cols),
       i64(s.queries), i32(s.causal ? 1 : 0), f32(float(s.scale))});
  EXPECT_EQ(error, "");
  return y;
}

std::vector<float> reference(const SoftmaxShape &s, const std::vector<float> &x,
                             const uint8_t *fullMask) {
  std::vector<float> y(x.size());
  runtime::cpu::softmax<float>(s, x.data(), fullMask, y.data());
  return y;
}

TEST(SoftmaxKernels, RowsLongerThanTheBlockOnASmallGrid) {
  Shape xs{5, 300};
  SoftmaxShape s = shapeOf(xs, false, 0.7);
  std::vector<float> x = randomFloats(1500, 1, -3, 3);
  for (unsigned grid : {1u, 2u, 5u, 9u})
    expectClose(runForward(s, x, nullptr, {}, grid, 64),
                reference(s, x, nullptr), kRtol, kAtol,
                "softmax, grid " + std::to_string(grid));
}

TEST(SoftmaxKernels, CausalWithFewerQueriesThanKeys) {
  // 5 queries over 9 keys (a KV cache's shape): query q sees keys up to
  // q + 4; and 5 queries over 3 keys, where the first rows see nothing.
  for (Shape xs : {Shape{2, 3, 5, 9}, Shape{2, 5, 3}, Shape{4, 4}}) {
    SoftmaxShape s = shapeOf(xs, true, 0.125);
    std::vector<float> x =
        randomFloats(size_t(runtime::numElements(xs)), 2, -4, 4);
    expectClose(runForward(s, x, nullptr, {}, 4, 32), reference(s, x, nullptr),
                kRtol, kAtol, "causal softmax");
  }
}

TEST(SoftmaxKernels, BroadcastMasks) {
  Shape xs{2, 2, 3, 37};
  size_t n = size_t(runtime::numElements(xs));
  std::vector<float> x = randomFloats(n, 3, -2, 2);
  std::mt19937 gen(4);
  for (Shape ms : {Shape{2, 1, 1, 37}, Shape{3, 37}, Shape{2, 1, 3, 37},
                   Shape{2, 2, 3, 37}, Shape{1}}) {
    std::vector<uint8_t> mask(size_t(runtime::numElements(ms)));
    for (uint8_t &m : mask)
      m = gen() % 4 != 0; // a quarter masked
    if (mask.size() > 37)
      std::fill(mask.begin(), mask.begin() + 37, 0); // a row all masked
    for (bool causal : {false, true}) {
      SoftmaxShape s = shapeOf(xs, causal, 1.0);
      std::vector<uint8_t> full = broadcastMask(mask, xs, ms);
      expectClose(runForward(s, x, &mask, unmergedMaskDims(xs, ms), 3, 32),
                  reference(s, x, full.data()), kRtol, kAtol,
                  "masked softmax, mask rank " + std::to_string(ms.size()));
    }
  }
}

TEST(SoftmaxKernels, MergedMaskGeometry) {
  // [2, 1, 1, 37] over [2, 2, 3, 37] as the binder merges it: sizes
  // {2, 6, 37}, strides {37, 0, 1}.
  Shape xs{2, 2, 3, 37}, ms{2, 1, 1, 37};
  std::vector<float> x = randomFloats(444, 5, -2, 2);
  std::vector<uint8_t> mask(74);
  for (size_t i = 0; i < mask.size(); ++i)
    mask[i] = i % 3 != 1;
  SoftmaxShape s = shapeOf(xs, false, 1.0);
  std::vector<uint8_t> full = broadcastMask(mask, xs, ms);
  expectClose(runForward(s, x, &mask, {2, 6, 37, 37, 0, 1}, 2, 64),
              reference(s, x, full.data()), kRtol, kAtol, "merged mask");
}

TEST(SoftmaxKernels, OneElement) {
  SoftmaxShape s = shapeOf(Shape{1}, false, 3.0);
  std::vector<float> x{0.25f};
  expectClose(runForward(s, x, nullptr, {}, 1, 32), reference(s, x, nullptr),
              kRtol, kAtol, "softmax of one");
}

TEST(SoftmaxKernels, Backward) {
  for (Shape xs : {Shape{7, 300}, Shape{3, 5}, Shape{1, 1}}) {
    SoftmaxShape s = shapeOf(xs, false, 0.35);
    size_t n = size_t(runtime::numElements(xs));
    std::vector<float> x = randomFloats(n, 6, -2, 2), dy = randomFloats(n, 7);
    std::vector<float> y = reference(s, x, nullptr), want(n), dx(n, -7.0f);
    runtime::cpu::softmaxBackward<float>(s, y.data(), dy.data(), want.data());
    ASSERT_EQ(launchKernel("loom_softmax_backward", Dim3{3, 1, 1},
                           Dim3{64, 1, 1},
                           {y.data(), dy.data(), dx.data(), i64(s.rows),
                            i64(s.cols), f32(float(s.scale))}),
              "");
    expectClose(dx, want, kRtol, kAtol, "softmax backward");
    // In place over dy, as a plan may reuse the buffer.
    std::vector<float> inPlace = dy;
    ASSERT_EQ(launchKernel("loom_softmax_backward", Dim3{2, 1, 1},
                           Dim3{32, 1, 1},
                           {y.data(), inPlace.data(), inPlace.data(),
                            i64(s.rows), i64(s.cols), f32(float(s.scale))}),
              "");
    expectClose(inPlace, want, kRtol, kAtol, "softmax backward in place");
  }
}

} // namespace
} // namespace test
} // namespace loom
