//===- LoomOpsTest.cpp - the loom dialect's C++ API -----------------------===//
//
// What the front end and later passes call directly: building ops with
// OpBuilder, the shape-inference helpers, the verifiers' diagnostics, the cost
// and initializer interfaces, and the model summary.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Loom/IR/LoomOps.h"
#include "loom/Analysis/ModelSummary.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

using namespace mlir;

namespace {

class LoomOpsTest : public ::testing::Test {
protected:
  LoomOpsTest() : builder(&context) {
    context.loadDialect<loom::LoomDialect, func::FuncDialect>();
    module = ModuleOp::create(builder.getUnknownLoc());
    builder.setInsertionPointToEnd(module->getBody());
  }

  RankedTensorType f32(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, builder.getF32Type());
  }

  /// A function with arguments of `types`, the builder inside it.
  func::FuncOp makeFunction(TypeRange types) {
    auto fn = builder.create<func::FuncOp>(builder.getUnknownLoc(), "f",
                                           builder.getFunctionType(types, {}));
    builder.setInsertionPointToStart(fn.addEntryBlock());
    return fn;
  }

  MLIRContext context;
  OpBuilder builder;
  OwningOpRef<ModuleOp> module;
};

TEST_F(LoomOpsTest, MatmulBuildsVerifiesAndCosts) {
  func::FuncOp fn = makeFunction({f32({64, 768}), f32({768, 2304})});
  auto matmul = builder.create<loom::MatmulOp>(
      builder.getUnknownLoc(), f32({64, 2304}), fn.getArgument(0),
      fn.getArgument(1), /*transpose_lhs=*/false, /*transpose_rhs=*/false);
  builder.create<func::ReturnOp>(builder.getUnknownLoc());
  ASSERT_TRUE(succeeded(verify(*module)));

  auto cost = cast<loom::CostOpInterface>(matmul.getOperation());
  EXPECT_EQ(cost.getFlops(), 2LL * 64 * 2304 * 768);
  EXPECT_EQ(cost.getBytesRead(), (64LL * 768 + 768LL * 2304) * 4);
  EXPECT_EQ(cost.getBytesWritten(), 64LL * 2304 * 4);
}

TEST_F(LoomOpsTest, MatmulInfersTransposedAndBroadcastShapes) {
  auto infer = [&](ArrayRef<int64_t> l, ArrayRef<int64_t> r, bool tl, bool tr) {
    return loom::MatmulOp::inferResultType(f32(l), f32(r), tl, tr, nullptr);
  };
  // q · kᵀ over 12 heads.
  FailureOr<RankedTensorType> scores =
      infer({12, 64, 32}, {12, 64, 32}, false, true);
  ASSERT_TRUE(succeeded(scores));
  EXPECT_EQ(*scores, f32({12, 64, 64}));
  // xᵀ · dy, the weight gradient of a linear layer.
  FailureOr<RankedTensorType> grad = infer({64, 768}, {64, 2304}, true, false);
  ASSERT_TRUE(succeeded(grad));
  EXPECT_EQ(*grad, f32({768, 2304}));
  // A rank-2 weight on a batched lhs.
  FailureOr<RankedTensorType> batched =
      infer({4, 64, 768}, {768, 2304}, false, false);
  ASSERT_TRUE(succeeded(batched));
  EXPECT_EQ(*batched, f32({4, 64, 2304}));
  // Failures without an emitter report nothing and do not crash.
  EXPECT_TRUE(failed(infer({64, 768}, {512, 2304}, false, false)));
  EXPECT_TRUE(failed(infer({12, 64, 64}, {8, 64, 64}, false, false)));
  EXPECT_TRUE(failed(infer({768}, {768, 2304}, false, false)));
}

TEST_F(LoomOpsTest, BroadcastFollowsNumpyRules) {
  FailureOr<RankedTensorType> a =
      loom::inferBroadcastType(f32({4, 1, 768}), f32({64, 1}), nullptr);
  ASSERT_TRUE(succeeded(a));
  EXPECT_EQ(*a, f32({4, 64, 768}));
  EXPECT_TRUE(
      failed(loom::inferBroadcastType(f32({8, 768}), f32({8}), nullptr)));
  auto bf16 = RankedTensorType::get({768}, builder.getBF16Type());
  EXPECT_TRUE(failed(loom::inferBroadcastType(f32({8, 768}), bf16, nullptr)));
}

TEST_F(LoomOpsTest, VerifierReportsWhatWasExpected) {
  func::FuncOp fn = makeFunction({f32({8, 768}), f32({512, 2304})});
  builder.create<loom::MatmulOp>(builder.getUnknownLoc(), f32({8, 2304}),
                                 fn.getArgument(0), fn.getArgument(1), false,
                                 false);
  builder.create<func::ReturnOp>(builder.getUnknownLoc());

  std::string messages;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    messages += diag.str() + "\n";
    return success();
  });
  EXPECT_TRUE(failed(verify(*module)));
  EXPECT_NE(messages.find("contraction dimensions differ"), std::string::npos)
      << messages;
  EXPECT_NE(messages.find("has k = 768"), std::string::npos) << messages;
  EXPECT_NE(messages.find("has k = 512"), std::string::npos) << messages;
}

TEST_F(LoomOpsTest, InitializersReportTheirDistribution) {
  auto normal = loom::NormalInitAttr::get(&context, APFloat(0.02));
  EXPECT_DOUBLE_EQ(normal.getEffectiveStd(), 0.02);
  EXPECT_FALSE(normal.getConstantValue().has_value());

  // Megatron's output-layer init: 0.02 / sqrt(2 · 24).
  auto scaled = loom::ScaledNormalInitAttr::get(&context, APFloat(0.02), 24);
  EXPECT_DOUBLE_EQ(scaled.getEffectiveStd(), 0.02 / std::sqrt(48.0));

  auto ones =
      cast<loom::InitializerAttrInterface>(loom::OnesInitAttr::get(&context));
  ASSERT_TRUE(ones.getConstantValue().has_value());
  EXPECT_EQ(*ones.getConstantValue(), 1.0);
  EXPECT_EQ(ones.getEffectiveStd(), 0.0);
}

TEST(ShardingRuleTest, MatmulContractionIsTheReductionFactor) {
  // ([i, k], [k, j]) -> ([i, j]) {i=64, j=2304, k=768}
  loom::ShardingRule rule;
  rule.factorSizes = {64, 2304, 768};
  rule.operandFactors = {{0, 2}, {2, 1}};
  rule.resultFactors = {{0, 1}};
  EXPECT_FALSE(rule.isReductionFactor(0));
  EXPECT_FALSE(rule.isReductionFactor(1));
  EXPECT_TRUE(rule.isReductionFactor(2));
}

TEST(DottedPathTest, AcceptsHierarchicalNamesOnly) {
  EXPECT_TRUE(loom::isDottedPath("layers.3.attention.qkv.weight"));
  EXPECT_TRUE(loom::isDottedPath("wte"));
  EXPECT_FALSE(loom::isDottedPath(""));
  EXPECT_FALSE(loom::isDottedPath("layers..qkv"));
  EXPECT_FALSE(loom::isDottedPath(".weight"));
  EXPECT_FALSE(loom::isDottedPath("mlp.fc 1"));
}

TEST(ModelSummaryTest, CountsTiedParametersOnce) {
  MLIRContext context;
  context.loadDialect<loom::LoomDialect, func::FuncDialect>();
  // The token embedding used twice (input embedding and tied LM head).
  const char *source = R"mlir(
    func.func @f(%ids: tensor<2x4xi32>) -> (tensor<2x4x8xf32>, tensor<100x8xf32>) {
      %wte = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<100x8xf32>
      %x = loom.embedding %wte[%ids] : tensor<100x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
      %head = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<100x8xf32>
      %b = loom.parameter "ln_f.bias" init(#loom.zeros) : tensor<8xbf16>
      return %x, %head : tensor<2x4x8xf32>, tensor<100x8xf32>
    })mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &context);
  ASSERT_TRUE(module);
  FailureOr<loom::ModelSummary> summary = loom::summarizeModel(*module);
  ASSERT_TRUE(succeeded(summary));
  EXPECT_EQ(summary->totalParameters, 100 * 8 + 8);
  EXPECT_EQ(summary->parameterBytes, 100 * 8 * 4 + 8 * 2);
  ASSERT_EQ(summary->parameters.size(), 2u);
  EXPECT_EQ(summary->cost.opCounts["loom.parameter"], 3);
  EXPECT_EQ(summary->cost.opCounts["loom.embedding"], 1);
}

} // namespace
