//===- AutodiffTest.cpp - gradients of --loom-autodiff vs finite differences
//
// For every differentiable op (every element of every parameter), and for a
// whole GPT built from examples/gpt.loom (six elements spread over each
// parameter), the gradients the autodiff pass builds are evaluated in double
// precision and compared with central finite differences of the loss.
//
//===----------------------------------------------------------------------===//

#include "loom/Execution/Evaluator.h"
#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/passes/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;

namespace {

class AutodiffTest : public ::testing::Test {
protected:
  AutodiffTest() {
    context.loadDialect<loom::LoomDialect, func::FuncDialect>();
    context.printOpOnDiagnostic(false);
  }

  /// Differentiates `module`'s function and checks each parameter's
  /// gradient at up to `perParameter` elements.
  void checkGradients(ModuleOp module, std::vector<loom::HostTensor> inputs,
                      int perParameter = 1 << 30, uint64_t seed = 1) {
    auto fn = *module.getOps<func::FuncOp>().begin();
    // Random values for every parameter with a random initializer.
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    llvm::StringMap<loom::HostTensor> params;
    fn.walk([&](loom::ParameterOp p) {
      if (params.count(p.getName()))
        return;
      auto type = p.getType();
      loom::HostTensor t{
          std::vector<int64_t>(type.getShape().begin(), type.getShape().end()),
          std::vector<double>(type.getNumElements())};
      for (double &v : t.data)
        v = p.getInit().getConstantValue() ? 1.0 + 0.1 * dist(rng) : dist(rng);
      params[p.getName()] = std::move(t);
    });

    PassManager pm(&context);
    pm.addPass(loom::createLoomAutodiff());
    ASSERT_TRUE(succeeded(pm.run(module)));
    ASSERT_TRUE(succeeded(verify(module)));

    loom::EvaluationOptions options{/*seed=*/42, /*step=*/3};
    auto results = loom::evaluate(fn, inputs, params, options);
    ASSERT_TRUE(succeeded(results));
    auto loss = [&]() {
      auto r = loom::evaluate(fn, inputs, params, options);
      return (*r)[0].data[0];
    };
    int checked = 0;
    for (unsigned i = 1; i < fn.getNumResults(); ++i) {
      auto name = fn.getResultAttrOfType<StringAttr>(i, "loom.grad");
      ASSERT_TRUE(name);
      const loom::HostTensor &grad = (*results)[i];
      loom::HostTensor &param = params[name.getValue()];
      ASSERT_EQ(grad.data.size(), param.data.size()) << name.getValue().str();
      int64_t n = param.data.size();
      int64_t stride = std::max<int64_t>(1, n / perParameter);
      for (int64_t j = 0; j < n; j += stride) {
        double saved = param.data[j], h = 1e-5;
        param.data[j] = saved + h;
        double plus = loss();
        param.data[j] = saved - h;
        double minus = loss();
        param.data[j] = saved;
        double numeric = (plus - minus) / (2 * h);
        EXPECT_NEAR(grad.data[j], numeric,
                    1e-6 * std::max(1.0, std::abs(numeric)))
            << name.getValue().str() << "[" << j << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 0);
  }

  /// Runs --loom-autodiff on `source`, expecting it to fail; returns the
  /// diagnostics.
  std::string autodiffError(const char *source) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(source, &context);
    std::string message;
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &d) {
      message += d.str();
      return success();
    });
    PassManager pm(&context);
    pm.addPass(loom::createLoomAutodiff());
    EXPECT_TRUE(failed(pm.run(*module)));
    return message;
  }

  void checkSource(const char *source, std::vector<loom::HostTensor> inputs) {
    OwningOpRef<ModuleOp> module =
        parseSourceString<ModuleOp>(source, &context);
    ASSERT_TRUE(module);
    checkGradients(*module, std::move(inputs));
  }

  MLIRContext context;
};

loom::HostTensor ids(std::vector<int64_t> shape, std::vector<double> values) {
  return {std::move(shape), std::move(values)};
}

// Each op's output is weighted by a random probe before summing, so every
// output element matters to the loss.
#define PROBE_LOSS(y, T)                                                       \
  "  %probe = loom.parameter \"probe\" init(#loom.normal<std = 1.0>) : " T     \
  "\n  %weighted = loom.mul " y ", %probe : " T ", " T " -> " T "\n"

TEST_F(AutodiffTest, Matmul) {
  checkSource(R"mlir(
func.func @f() -> tensor<f32> {
  %a = loom.parameter "a" init(#loom.normal<std = 1.0>) : tensor<2x3x4xf32>
  %w = loom.parameter "w" init(#loom.normal<std = 1.0>) : tensor<5x4xf32>
  %b = loom.parameter "b" init(#loom.normal<std = 1.0>) : tensor<2x5x3xf32>
  %y = loom.matmul %a, %w transposed : tensor<2x3x4xf32>, tensor<5x4xf32> -> tensor<2x3x5xf32>
  %z = loom.matmul %b transposed, %y transposed : tensor<2x5x3xf32>, tensor<2x3x5xf32> -> tensor<2x3x3xf32>
)mlir" PROBE_LOSS("%z", "tensor<2x3x3xf32>") R"mlir(
  %l = loom.reduce sum %weighted dims [0, 1, 2] : tensor<2x3x3xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {});
}

TEST_F(AutodiffTest, MatmulTransposeCombinationsAndBroadcastLhs) {
  // (no, no) with a rank-2 weight; (transposed lhs, no) batched; a rank-2 lhs
  // applied to a batched rhs; and a constant in the loss.
  checkSource(R"mlir(
func.func @f() -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.0>) : tensor<2x3x4xf32>
  %w = loom.parameter "w" init(#loom.normal<std = 1.0>) : tensor<4x5xf32>
  %y = loom.matmul %x, %w : tensor<2x3x4xf32>, tensor<4x5xf32> -> tensor<2x3x5xf32>
  %b = loom.parameter "b" init(#loom.normal<std = 1.0>) : tensor<2x3x2xf32>
  %z = loom.matmul %b transposed, %y : tensor<2x3x2xf32>, tensor<2x3x5xf32> -> tensor<2x2x5xf32>
  %l2 = loom.parameter "l" init(#loom.normal<std = 1.0>) : tensor<3x2xf32>
  %u = loom.matmul %l2, %z : tensor<3x2xf32>, tensor<2x2x5xf32> -> tensor<2x3x5xf32>
  %half = loom.fill 0.5 : tensor<2x3x5xf32>
  %v = loom.mul %u, %half : tensor<2x3x5xf32>, tensor<2x3x5xf32> -> tensor<2x3x5xf32>
)mlir" PROBE_LOSS("%v", "tensor<2x3x5xf32>") R"mlir(
  %l = loom.reduce sum %weighted dims [0, 1, 2] : tensor<2x3x5xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {});
}

TEST_F(AutodiffTest, BroadcastingArithmetic) {
  checkSource(R"mlir(
func.func @f() -> tensor<f32> {
  %a = loom.parameter "a" init(#loom.normal<std = 1.0>) : tensor<2x3x4xf32>
  %b = loom.parameter "b" init(#loom.normal<std = 1.0>) : tensor<4xf32>
  %c = loom.parameter "c" init(#loom.ones) : tensor<3x1xf32>
  %s = loom.add %a, %b : tensor<2x3x4xf32>, tensor<4xf32> -> tensor<2x3x4xf32>
  %d = loom.sub %s, %c : tensor<2x3x4xf32>, tensor<3x1xf32> -> tensor<2x3x4xf32>
  %m = loom.mul %d, %b : tensor<2x3x4xf32>, tensor<4xf32> -> tensor<2x3x4xf32>
  %q = loom.div %m, %c : tensor<2x3x4xf32>, tensor<3x1xf32> -> tensor<2x3x4xf32>
  %n = loom.neg %q : tensor<2x3x4xf32>
  %y = loom.scale %n by 0.5 : tensor<2x3x4xf32>
)mlir" PROBE_LOSS("%y", "tensor<2x3x4xf32>") R"mlir(
  %l = loom.reduce sum %weighted dims [0, 1, 2] : tensor<2x3x4xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {});
}

TEST_F(AutodiffTest, Activations) {
  checkSource(R"mlir(
func.func @f() -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.0>) : tensor<4x6xf32>
  %g = loom.gelu %x : tensor<4x6xf32>
  %t = loom.gelu %g approximate tanh : tensor<4x6xf32>
  %s = loom.silu %t : tensor<4x6xf32>
  %r = loom.relu %s : tensor<4x6xf32>
  %y = loom.add %r, %g : tensor<4x6xf32>, tensor<4x6xf32> -> tensor<4x6xf32>
)mlir" PROBE_LOSS("%y", "tensor<4x6xf32>") R"mlir(
  %l = loom.reduce sum %weighted dims [0, 1] : tensor<4x6xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {});
}

TEST_F(AutodiffTest, SoftmaxWithCausalAndPaddingMasks) {
  checkSource(R"mlir(
func.func @f(%m: tensor<2x1x4xi1>) -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.0>) : tensor<2x3x4xf32>
  %p = loom.softmax %x causal scale 0.5 : tensor<2x3x4xf32>
  %q = loom.softmax %p mask(%m : tensor<2x1x4xi1>) : tensor<2x3x4xf32>
)mlir" PROBE_LOSS("%q", "tensor<2x3x4xf32>") R"mlir(
  %l = loom.reduce sum %weighted dims [0, 1, 2] : tensor<2x3x4xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {ids({2, 1, 4}, {1, 1, 0, 1, 1, 1, 1, 0})});
}

TEST_F(AutodiffTest, Norms) {
  checkSource(R"mlir(
func.func @f() -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.0>) : tensor<3x5xf32>
  %g = loom.parameter "ln.weight" init(#loom.ones) : tensor<5xf32>
  %b = loom.parameter "ln.bias" init(#loom.zeros) : tensor<5xf32>
  %r = loom.parameter "rms.weight" init(#loom.ones) : tensor<5xf32>
  %y = loom.layernorm %x, %g, %b : tensor<3x5xf32>, tensor<5xf32>, tensor<5xf32>
  %z = loom.rmsnorm %y, %r : tensor<3x5xf32>, tensor<5xf32>
)mlir" PROBE_LOSS("%z", "tensor<3x5xf32>") R"mlir(
  %l = loom.reduce sum %weighted dims [0, 1] : tensor<3x5xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {});
}

TEST_F(AutodiffTest, ShapesDropoutAndBroadcast) {
  checkSource(R"mlir(
func.func @f() -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.0>) : tensor<2x6xf32>
  %c = loom.parameter "c" init(#loom.normal<std = 1.0>) : tensor<3x1x1xf32>
  %r = loom.reshape %x : tensor<2x6xf32> -> tensor<2x3x2xf32>
  %t = loom.transpose %r [1, 2, 0] : tensor<2x3x2xf32> -> tensor<3x2x2xf32>
  %a, %unused = loom.split %t axis 1 : tensor<3x2x2xf32> -> tensor<3x1x2xf32>, tensor<3x1x2xf32>
  %cc = loom.concat %a, %a axis 2 : tensor<3x1x2xf32>, tensor<3x1x2xf32> -> tensor<3x1x4xf32>
  %d = loom.dropout %cc rate 0.3 site "d" : tensor<3x1x4xf32>
  %b = loom.broadcast %c : tensor<3x1x1xf32> -> tensor<3x1x4xf32>
  %s = loom.mul %d, %b : tensor<3x1x4xf32>, tensor<3x1x4xf32> -> tensor<3x1x4xf32>
  %mk = loom.reduce mean %s dims [2] keep_dims : tensor<3x1x4xf32> -> tensor<3x1x1xf32>
  %mb = loom.broadcast %mk : tensor<3x1x1xf32> -> tensor<3x1x4xf32>
  %m = loom.mul %mb, %s : tensor<3x1x4xf32>, tensor<3x1x4xf32> -> tensor<3x1x4xf32>
  %y = loom.cast %m : tensor<3x1x4xf32> to tensor<3x1x4xf16>
  %z = loom.cast %y : tensor<3x1x4xf16> to tensor<3x1x4xf32>
)mlir" PROBE_LOSS("%z", "tensor<3x1x4xf32>") R"mlir(
  %l = loom.reduce mean %weighted dims [0, 1, 2] : tensor<3x1x4xf32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
              {});
}

TEST_F(AutodiffTest, EmbeddingAndCrossEntropy) {
  checkSource(
      R"mlir(
func.func @f(%ids: tensor<2x3xi32>, %labels: tensor<2x3xi32>) -> tensor<f32> {
  %table = loom.parameter "table" init(#loom.normal<std = 1.0>) : tensor<7x4xf32>
  %x = loom.embedding %table[%ids] : tensor<7x4xf32>, tensor<2x3xi32> -> tensor<2x3x4xf32>
  %logits = loom.matmul %x, %table transposed : tensor<2x3x4xf32>, tensor<7x4xf32> -> tensor<2x3x7xf32>
  %mean = loom.cross_entropy %logits, %labels : tensor<2x3x7xf32>, tensor<2x3xi32> -> tensor<f32>
  %sum = loom.cross_entropy %logits, %labels reduction sum : tensor<2x3x7xf32>, tensor<2x3xi32> -> tensor<f32>
  %tok = loom.cross_entropy %logits, %labels reduction none : tensor<2x3x7xf32>, tensor<2x3xi32> -> tensor<2x3xf32>
  %toksum = loom.reduce sum %tok dims [0, 1] : tensor<2x3xf32> -> tensor<f32>
  %a = loom.add %mean, %sum : tensor<f32>, tensor<f32> -> tensor<f32>
  %l = loom.add %a, %toksum : tensor<f32>, tensor<f32> -> tensor<f32>
  return %l : tensor<f32>
})mlir",
      {ids({2, 3}, {1, 6, 1, 0, 3, 5}), ids({2, 3}, {2, -100, 6, 0, 1, 1})});
}

TEST_F(AutodiffTest, WholeGptFromTheModelLanguage) {
  // examples/gpt.loom at a tiny size: every op of a GPT, dropout included
  // (its masks are fixed by the seed, so the loss is smooth in the weights).
  auto buffer =
      llvm::MemoryBuffer::getFile(LOOM_SOURCE_DIR "/examples/gpt.loom");
  ASSERT_TRUE(bool(buffer));
  auto library = loom::parseModelFile(loom::standardLibrarySource(),
                                      loom::standardLibraryName(), &context);
  auto file =
      loom::parseModelFile((*buffer)->getBuffer(), "gpt.loom", &context);
  ASSERT_TRUE(succeeded(library) && succeeded(file));
  loom::ModelOptions options;
  options.overrides = {{"vocab", "11"},
                       {"seq", "4"},
                       {"hidden", "8"},
                       {"heads", "2"},
                       {"layers", "2"}};
  options.microBatchSize = 2;
  auto module = loom::buildModel(*file, *library, options, &context);
  ASSERT_TRUE(succeeded(module));
  checkGradients(**module,
                 {ids({2, 4}, {1, 5, 9, 2, 0, 10, 3, 3}),
                  ids({2, 4}, {5, 9, 2, 7, 10, 3, 3, -100})},
                 /*perParameter=*/6);
}

TEST_F(AutodiffTest, RejectsWhatItCannotDifferentiate) {
  const char *source = R"mlir(
func.func @f() -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.0>) : tensor<4xf32>
  %m = loom.reduce max %x dims [0] : tensor<4xf32> -> tensor<f32>
  return %m : tensor<f32>
})mlir";
  std::string message = autodiffError(source);
  EXPECT_NE(message.find("reduce max is not differentiable"), std::string::npos)
      << message;
}

TEST_F(AutodiffTest, RejectsATiedParameterWithTwoTypes) {
  const char *source = R"mlir(
func.func @f() -> tensor<f32> {
  %a = loom.parameter "w" init(#loom.ones) : tensor<4xf32>
  %b = loom.parameter "w" init(#loom.ones) : tensor<2x2xf32>
  %x = loom.reduce sum %a dims [0] : tensor<4xf32> -> tensor<f32>
  %y = loom.reduce sum %b dims [0, 1] : tensor<2x2xf32> -> tensor<f32>
  %l = loom.add %x, %y : tensor<f32>, tensor<f32> -> tensor<f32>
  return %l : tensor<f32>
})mlir";
  std::string message = autodiffError(source);
  EXPECT_NE(message.find("a tied parameter has one type"), std::string::npos)
      << message;
}

} // namespace
