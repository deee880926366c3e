//===- ElementwiseKernelsTest.cpp - Elementwise.cu against the CPU --------===//
//
// Each kernel of runtime/cuda/kernels/Elementwise.cu, launched under
// emulation with the geometry its binder builds (KernelGeometry.h), against
// the CPU reference kernel on small and awkward shapes. Under emulation the
// kernels compute the CPU's formulas in the same order, so results are
// compared bit for bit where the CPU's are exact, and within the
// conformance suite's tolerances for the transcendental activations.
//
//===----------------------------------------------------------------------===//

#include "KernelGeometry.h"
#include "KernelTesting.h"
#include "loom/runtime/cpu/Kernels.h"

#include <limits>

namespace loom {
namespace test {
namespace {

namespace rt = runtime;
using rt::Shape;

int binaryCode(rt::BinaryKind k) {
  return k == rt::BinaryKind::Add   ? 0
         : k == rt::BinaryKind::Sub ? 1
         : k == rt::BinaryKind::Mul ? 2
                                    : 3;
}

struct BroadcastCase {
  Shape a, b, y;
};

TEST(ElementwiseKernels, BinaryBroadcastsAsTheCpu) {
  std::vector<BroadcastCase> cases = {
      {{3, 5, 7}, {3, 5, 7}, {3, 5, 7}}, // contiguous: no geometry
      {{4, 1, 6}, {5, 1}, {4, 5, 6}},    // both sides broadcast
      {{2, 3, 4}, {4}, {2, 3, 4}},       // a bias row
      {{6, 1}, {1, 9}, {6, 9}},          // outer product
      {{}, {2, 3}, {2, 3}},              // a scalar
      {{1}, {1}, {1}},                   // one element
      {{300}, {1}, {300}},               // more than a block, not a multiple
      {{2, 1, 3, 1}, {1, 4, 1, 5}, {2, 4, 3, 5}},
  };
  for (const BroadcastCase &c : cases) {
    int64_t n = rt::numElements(c.y);
    std::vector<float> a = randomFloats(size_t(rt::numElements(c.a)), 1);
    std::vector<float> b = randomFloats(size_t(rt::numElements(c.b)), 2, 0.5f,
                                        3.0f); // away from 0 for div
    rt::cuda::StridedLoop loop = rt::cuda::broadcastLoop(c.a, c.b, c.y);
    int rank = loop.contiguous() ? 0 : loop.rank();
    std::vector<int64_t> geometry = loop.flat();
    for (rt::BinaryKind kind : {rt::BinaryKind::Add, rt::BinaryKind::Sub,
                                rt::BinaryKind::Mul, rt::BinaryKind::Div}) {
      std::vector<float> want(static_cast<size_t>(n));
      rt::cpu::broadcastBinary<float>(kind, a.data(), c.a, b.data(), c.b,
                                      want.data(), c.y);
      for (const TestGrid &g : testGrids(n)) {
        std::vector<float> y(size_t(n), -7.0f);
        ASSERT_EQ(launchKernel("loom_elementwise_binary", g.grid, g.block,
                               {a.data(), b.data(), y.data(), i64(n),
                                i32(binaryCode(kind)), i32(rank),
                                rank ? geometry.data() : nullptr}),
                  "");
        expectSameBits(y, want,
                       "binary " + std::to_string(binaryCode(kind)) + " rank " +
                           std::to_string(c.y.size()) + ", " + g.name);
      }
    }
  }
}

TEST(ElementwiseKernels, CollapsedLoopsMergeWhatIsContiguous) {
  // [4, 5, 6] + [5, 1]: a walks all three dimensions as one, b repeats
  // each of its 5 elements 6 times, 4 times over: three dimensions stay.
  rt::cuda::StridedLoop l =
      rt::cuda::broadcastLoop({4, 5, 6}, {5, 1}, {4, 5, 6});
  EXPECT_EQ(l.sizes, (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(l.strides[0], (std::vector<int64_t>{30, 6, 1}));
  EXPECT_EQ(l.strides[1], (std::vector<int64_t>{0, 1, 0}));
  // A bias row: [rows, cols] with b's stride 0 along the rows.
  rt::cuda::StridedLoop bias =
      rt::cuda::broadcastLoop({2, 3, 4}, {4}, {2, 3, 4});
  EXPECT_EQ(bias.sizes, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(bias.strides[1], (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(rt::cuda::broadcastLoop({3, 5}, {3, 5}, {3, 5}).contiguous());
}

TEST(ElementwiseKernels, ScaleAndAccumulate) {
  for (int64_t n : {1, 255, 256, 1001}) {
    std::vector<float> x = randomFloats(size_t(n), 3);
    std::vector<float> y0 = randomFloats(size_t(n), 4);
    for (bool accumulate : {false, true}) {
      for (float factor : {-1.0f, 0.125f, 3.3f}) {
        std::vector<float> want = y0;
        rt::cpu::scale<float>(x.data(), want.data(), n, factor, accumulate);
        for (const TestGrid &g : testGrids(n)) {
          std::vector<float> y = y0;
          ASSERT_EQ(launchKernel("loom_elementwise_scale", g.grid, g.block,
                                 {x.data(), y.data(), i64(n), f32(factor),
                                  i32(accumulate)}),
                    "");
          expectSameBits(y, want,
                         "scale n=" + std::to_string(n) + ", " + g.name);
        }
      }
    }
  }
}

TEST(ElementwiseKernels, Fill) {
  for (int64_t n : {1, 300}) {
    for (const TestGrid &g : testGrids(n)) {
      std::vector<float> y(size_t(n), 0.0f);
      ASSERT_EQ(launchKernel("loom_elementwise_fill", g.grid, g.block,
                             {y.data(), i64(n), f32(1024.0f)}),
                "");
      expectSameBits(y, std::vector<float>(size_t(n), 1024.0f), g.name);
      // The loss scale from a step slot.
      double scale = 65536.0;
      ASSERT_EQ(launchKernel("loom_elementwise_fill_slot", g.grid, g.block,
                             {y.data(), i64(n), &scale}),
                "");
      expectSameBits(y, std::vector<float>(size_t(n), 65536.0f), g.name);
    }
  }
}

TEST(ElementwiseKernels, ActivationsAndGradientsAsTheCpu) {
  int64_t n = 777;
  std::vector<float> x = randomFloats(size_t(n), 5, -6.0f, 6.0f);
  // The edges: zeros of both signs, large magnitudes, tiny ones.
  float edges[] = {0.0f, -0.0f, 20.0f, -20.0f, 1e-8f, -1e-8f, 88.0f, -88.0f};
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); ++i)
    x[i] = edges[i];
  std::vector<float> dy = randomFloats(size_t(n), 6);
  const rt::Activation kinds[] = {rt::Activation::Relu, rt::Activation::Silu,
                                  rt::Activation::Gelu,
                                  rt::Activation::GeluTanh};
  for (int code = 0; code < 4; ++code) {
    std::vector<float> want(static_cast<size_t>(n)),
        wantGrad(static_cast<size_t>(n));
    rt::cpu::activation<float>(kinds[code], x.data(), want.data(), n);
    rt::cpu::activationBackward<float>(kinds[code], x.data(), dy.data(),
                                       wantGrad.data(), n);
    for (const TestGrid &g : testGrids(n)) {
      std::vector<float> y(static_cast<size_t>(n)), dx(static_cast<size_t>(n));
      ASSERT_EQ(launchKernel("loom_elementwise_activation", g.grid, g.block,
                             {x.data(), y.data(), i64(n), i32(code)}),
                "");
      ASSERT_EQ(
          launchKernel("loom_elementwise_activation_grad", g.grid, g.block,
                       {x.data(), dy.data(), dx.data(), i64(n), i32(code)}),
          "");
      // The conformance suite's activation tolerance (a GPU's expf, erff
      // and tanhf differ from the host's by an ulp or two).
      std::string what = "activation " + std::to_string(code) + ", " + g.name;
      expectClose(y, want, 1e-5, 1e-6, what);
      expectClose(dx, wantGrad, 1e-5, 1e-6, what + " (gradient)");
      // Under emulation the same formulas in the same order: the CPU's bits.
      expectSameBits(y, want, what);
      expectSameBits(dx, wantGrad, what + " (gradient)");
    }
  }
}

TEST(ElementwiseKernels, BroadcastAsTheCpu) {
  std::vector<std::pair<Shape, Shape>> cases = {{{3, 1}, {2, 3, 4}},
                                                {{}, {5}},
                                                {{4}, {3, 4}},
                                                {{2, 3}, {2, 3}},
                                                {{1, 7, 1}, {3, 7, 65}}};
  for (auto [xs, ys] : cases) {
    int64_t n = rt::numElements(ys);
    std::vector<float> x = randomFloats(size_t(rt::numElements(xs)), 7);
    x[0] = -0.0f; // the CPU's x + 0 makes it +0
    std::vector<float> want(static_cast<size_t>(n));
    float zero = 0;
    rt::cpu::broadcastBinary<float>(rt::BinaryKind::Add, x.data(), xs, &zero,
                                    Shape{}, want.data(), ys);
    rt::cuda::StridedLoop loop = rt::cuda::broadcastLoop(xs, ys);
    int rank = loop.contiguous() ? 0 : loop.rank();
    std::vector<int64_t> geometry = loop.flat();
    for (const TestGrid &g : testGrids(n)) {
      std::vector<float> y(size_t(n), 9.0f);
      ASSERT_EQ(launchKernel("loom_elementwise_broadcast", g.grid, g.block,
                             {x.data(), y.data(), i64(n), i32(rank),
                              rank ? geometry.data() : nullptr}),
                "");
      expectSameBits(y, want,
                     "broadcast to rank " + std::to_string(ys.size()) + ", " +
                         g.name);
    }
  }
}

/// Dropout launched as BindElementwise.cpp launches it: the contiguous
/// kernel when the block's global indices are consecutive, else the
/// strided one.
std::string launchDropout(const TestGrid &g, const std::vector<float> &x,
                          std::vector<float> &y, const rt::Block &block,
                          int64_t offset, double rate, uint64_t key) {
  int64_t n = rt::numElements(block.local);
  rt::cuda::DropoutLoop dl = rt::cuda::dropoutLoop(block, offset);
  int rank = dl.loop.contiguous() ? 0 : dl.loop.rank();
  std::vector<int64_t> geometry = dl.loop.flat();
  float r = float(rate), keepScale = float(1.0 / (1.0 - rate));
  // The block's first element, the key and "training", as the step slots
  // hold them.
  long long step[3] = {dl.first, (long long)key, 1};
  if (rank == 0)
    return launchKernel("loom_elementwise_dropout", g.grid, g.block,
                        {x.data(), y.data(), i64(n), step, f32(r),
                         f32(keepScale)});
  return launchKernel("loom_elementwise_dropout_strided", g.grid, g.block,
                      {x.data(), y.data(), i64(n), step, f32(r),
                       f32(keepScale), i32(rank), geometry.data()});
}

rt::Block wholeBlock(Shape shape) {
  rt::Block b;
  b.local = b.global = shape;
  b.offset.assign(shape.size(), 0);
  return b;
}
rt::Block splitBlock(Shape local, Shape global, std::vector<int64_t> offset) {
  rt::Block b;
  b.local = std::move(local);
  b.global = std::move(global);
  b.offset = std::move(offset);
  b.split = true;
  return b;
}

TEST(ElementwiseKernels, DropoutDrawsTheCpusMask) {
  uint64_t key = rt::cpu::dropoutKey(1234, "layers.0.attention.dropout", 7);
  std::vector<rt::Block> blocks = {
      wholeBlock({37}),       // not a multiple of 4
      wholeBlock({1}),        // one element
      wholeBlock({3, 5, 40}), // more than a block of threads
      splitBlock({2, 3, 10}, {4, 6, 10}, {2, 3, 0}), // rows of a split
      splitBlock({4, 6, 5}, {4, 6, 10}, {0, 0, 5}),  // the last dimension
      splitBlock({3, 5}, {3, 10}, {0, 3}),           // rows off a multiple of 4
      splitBlock({2, 6, 10}, {4, 6, 10}, {2, 0, 0}), // contiguous when split
  };
  for (const rt::Block &block : blocks) {
    int64_t n = rt::numElements(block.local);
    std::vector<float> x = randomFloats(size_t(n), 8);
    // The microbatch's first element as the CPU binder computes it: the
    // microbatch times the whole tensor's elements (and a non-multiple of 4).
    for (int64_t offset :
         {int64_t(0), int64_t(3) * rt::numElements(block.global) + 6}) {
      for (double rate : {0.1, 0.5}) {
        std::vector<float> want(static_cast<size_t>(n));
        rt::cpu::dropoutBlock<float>(x.data(), want.data(), block, offset, rate,
                                     key);
        for (const TestGrid &g : testGrids(n)) {
          std::vector<float> y(size_t(n), 5.0f);
          ASSERT_EQ(launchDropout(g, x, y, block, offset, rate, key), "");
          expectSameBits(y, want,
                         std::string(block.split ? "split" : "whole") +
                             " block of " + std::to_string(n) + " at " +
                             std::to_string(offset) + ", rate " +
                             std::to_string(rate) + ", " + g.name);
        }
      }
    }
  }
}

TEST(ElementwiseKernels, DropoutKeepsAndDropsBothHappen) {
  // A mask of all kept (or all dropped) would pass a comparison with a
  // broken reference too: check the draw itself.
  int64_t n = 4000;
  std::vector<float> x(size_t(n), 1.0f), y(static_cast<size_t>(n));
  rt::Block block = wholeBlock({n});
  ASSERT_EQ(launchDropout(testGrids(n)[0], x, y, block, 0, 0.25,
                          rt::cpu::dropoutKey(1, "d", 1)),
            "");
  int64_t kept = 0;
  for (float v : y)
    kept += v != 0.0f;
  EXPECT_GT(kept, n * 7 / 10);
  EXPECT_LT(kept, n * 8 / 10);
}

} // namespace
} // namespace test
} // namespace loom
