//===- BuiltinsNN.cpp - layer and loss builtins ---------------------------===//
//
// matmul, the activations, softmax, the norms, dropout, embedding and
// cross_entropy: one loom op each. Their shape rules live in the dialect's
// verifiers; these handlers only compute result types the verifier checks.
//
//===----------------------------------------------------------------------===//

#include "Builtins.h"

#include "loom/dialects/Loom/IR/LoomOps.h"

using namespace mlir;

namespace loom {
namespace frontend {

FailureOr<Val> buildMatmul(BuiltinCall &call) {
  FailureOr<Value> lhs = call.tensor("a");
  if (failed(lhs))
    return failure();
  FailureOr<Value> rhs = call.tensor("b");
  if (failed(rhs))
    return failure();
  FailureOr<bool> transposeA = call.boolean("transpose_a", false);
  if (failed(transposeA))
    return failure();
  FailureOr<bool> transposeB = call.boolean("transpose_b", false);
  if (failed(transposeB))
    return failure();
  FailureOr<RankedTensorType> type = MatmulOp::inferResultType(
      cast<RankedTensorType>(lhs->getType()),
      cast<RankedTensorType>(rhs->getType()), *transposeA, *transposeB,
      [&] { return call.error() << "matmul: "; });
  if (failed(type))
    return failure();
  return call.tensorResult(call.builder().create<MatmulOp>(
      call.loc(), *type, *lhs, *rhs, *transposeA, *transposeB));
}

FailureOr<Val> buildGelu(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<std::string> approximate = call.string("approximate", "none");
  if (failed(approximate))
    return failure();
  std::optional<GeluApproximation> kind =
      symbolizeGeluApproximation(*approximate);
  if (!kind)
    return call.error() << "gelu's approximate must be \"none\" or \"tanh\", "
                           "got \""
                        << *approximate << "\"";
  return call.tensorResult(
      call.builder().create<GeluOp>(call.loc(), *x, *kind));
}

FailureOr<Val> buildRelu(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  return call.tensorResult(call.builder().create<ReluOp>(call.loc(), *x));
}

FailureOr<Val> buildSilu(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  return call.tensorResult(call.builder().create<SiluOp>(call.loc(), *x));
}

FailureOr<Val> buildSoftmax(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<bool> causal = call.boolean("causal", false);
  if (failed(causal))
    return failure();
  FailureOr<double> scale = call.number("scale", 1.0);
  if (failed(scale))
    return failure();
  Value mask;
  if (call.given("mask")) {
    FailureOr<Value> m = call.tensor("mask");
    if (failed(m))
      return failure();
    mask = *m;
  }
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<SoftmaxOp>(
      call.loc(), x->getType(), *x, mask,
      *causal ? b.getUnitAttr() : UnitAttr(), b.getF64FloatAttr(*scale)));
}

FailureOr<Val> buildLayerNorm(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<Value> weight = call.tensor("weight");
  if (failed(weight))
    return failure();
  FailureOr<Value> bias = call.tensor("bias");
  if (failed(bias))
    return failure();
  FailureOr<double> eps = call.number("eps", 1e-5);
  if (failed(eps))
    return failure();
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<LayerNormOp>(
      call.loc(), x->getType(), *x, *weight, *bias, b.getF64FloatAttr(*eps)));
}

FailureOr<Val> buildRmsNorm(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<Value> weight = call.tensor("weight");
  if (failed(weight))
    return failure();
  FailureOr<double> eps = call.number("eps", 1e-5);
  if (failed(eps))
    return failure();
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<RmsNormOp>(
      call.loc(), x->getType(), *x, *weight, b.getF64FloatAttr(*eps)));
}

FailureOr<Val> buildDropout(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<double> rate = call.number("rate");
  if (failed(rate))
    return failure();
  // The site's name keys the dropout mask, so every site needs its own.
  const std::string &instanceName = call.expr().instanceName;
  if (instanceName == "_")
    return call.error() << "a dropout needs a site name; write `as NAME`, "
                           "not `as _`";
  FailureOr<std::string> site = call.claimName(
      instanceName.empty() ? "dropout" : instanceName, "dropout site");
  if (failed(site))
    return failure();
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<DropoutOp>(call.loc(), x->getType(), *x,
                                               b.getF64FloatAttr(*rate),
                                               b.getStringAttr(*site)));
}

FailureOr<Val> buildEmbedding(BuiltinCall &call) {
  FailureOr<Value> table = call.tensor("table");
  if (failed(table))
    return failure();
  FailureOr<Value> indices = call.tensor("indices");
  if (failed(indices))
    return failure();
  auto tableType = cast<RankedTensorType>(table->getType());
  if (tableType.getRank() != 2)
    return call.error() << "embedding: the table must be [vocab, hidden], got "
                        << tableType;
  SmallVector<int64_t> shape(
      cast<RankedTensorType>(indices->getType()).getShape());
  shape.push_back(tableType.getDimSize(1));
  return call.tensorResult(call.builder().create<EmbeddingOp>(
      call.loc(), RankedTensorType::get(shape, tableType.getElementType()),
      *table, *indices));
}

FailureOr<Val> buildCrossEntropy(BuiltinCall &call) {
  FailureOr<Value> logits = call.tensor("logits");
  if (failed(logits))
    return failure();
  FailureOr<Value> labels = call.tensor("labels");
  if (failed(labels))
    return failure();
  FailureOr<int64_t> ignoreIndex = call.integer("ignore_index", -100);
  if (failed(ignoreIndex))
    return failure();
  FailureOr<std::string> reduction = call.string("reduction", "mean");
  if (failed(reduction))
    return failure();
  std::optional<LossReduction> kind = symbolizeLossReduction(*reduction);
  if (!kind)
    return call.error() << "cross_entropy's reduction must be \"none\", "
                           "\"mean\" or \"sum\", got \""
                        << *reduction << "\"";
  // `classes`: how many of the logits' columns are real classes; the rest
  // pad the vocabulary (so the tensor-parallel size divides it) and are
  // masked out of the softmax. 0 (the default): all of them.
  FailureOr<int64_t> classes = call.integer("classes", 0);
  if (failed(classes))
    return failure();
  auto logitsType = cast<RankedTensorType>(logits->getType());
  int64_t columns =
      logitsType.getRank() ? logitsType.getShape().back() : int64_t(0);
  if (*classes < 0 || *classes > columns)
    return call.error() << "cross_entropy's classes must be between 1 and the "
                           "logits' last dimension, "
                        << columns << " (0 or left out: all of them), got "
                        << *classes;
  if (*classes == columns)
    *classes = 0; // nothing padded: the op's default
  // The loss is f32 whatever the logits' precision; a "none" reduction keeps
  // one loss per label.
  auto labelType = cast<RankedTensorType>(labels->getType());
  SmallVector<int64_t> shape;
  if (*kind == LossReduction::None)
    shape.assign(labelType.getShape().begin(), labelType.getShape().end());
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<CrossEntropyOp>(
      call.loc(), RankedTensorType::get(shape, b.getF32Type()), *logits,
      *labels, *kind, *ignoreIndex, *classes));
}

} // namespace frontend
} // namespace loom
