//===- LoomVJP.cpp - DifferentiableOpInterface for the loom ops -----------===//
//
// Each rule builds, at the builder's insertion point, the gradients of an
// op's operands from the gradients of its results (`resultGrads`, one per
// result; null for a result that does not reach the loss). It appends one
// Value per operand, null for operands that have no gradient (integer
// indices, masks). The rules use forward ops where the math is forward ops,
// and the backward ops (loom.*_grad) where it is not.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Loom/IR/LoomOps.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace loom;

namespace {

RankedTensorType tensorTypeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// Sums `grad` over the dimensions along which `target` was broadcast to
/// `grad`'s shape, and reshapes it to `target`: the gradient of a broadcast.
Value sumToShape(OpBuilder &b, Location loc, Value grad,
                 RankedTensorType target) {
  RankedTensorType type = tensorTypeOf(grad);
  if (type == target)
    return grad;
  int64_t extra = type.getRank() - target.getRank();
  SmallVector<int64_t> dims, kept;
  for (int64_t i = 0; i < type.getRank(); ++i) {
    bool broadcast = i < extra || (target.getDimSize(i - extra) == 1 &&
                                   type.getDimSize(i) != 1);
    if (broadcast)
      dims.push_back(i);
    kept.push_back(broadcast ? 1 : type.getDimSize(i));
  }
  Value summed = grad;
  if (!dims.empty())
    summed = b.create<ReduceOp>(
        loc, RankedTensorType::get(kept, type.getElementType()),
        ReduceKind::Sum, grad, dims, /*keep_dims=*/true);
  return b.create<ReshapeOp>(loc, target, summed);
}

bool isFloatTensor(Value value) {
  return isa<FloatType>(tensorTypeOf(value).getElementType());
}

/// The backward op of an op whose work depends on the rank's block works on
/// the same block: it takes the forward op's `dist.sharding`.
void copyBlockSharding(Operation *forward, Operation *backward) {
  if (Attribute s = forward->getAttr(kBlockShardingAttrName))
    backward->setAttr(kBlockShardingAttrName, s);
}

} // namespace

//===----------------------------------------------------------------------===//
// Contractions and elementwise arithmetic
//===----------------------------------------------------------------------===//

LogicalResult
MatmulOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange resultGrads,
                                     SmallVectorImpl<Value> &grads) {
  // C = op(A) · op(B), op = transpose when flagged.
  Value dc = resultGrads[0];
  Location loc = getLoc();
  Value a = getLhs(), bm = getRhs();
  bool ta = getTransposeLhs(), tb = getTransposeRhs();
  auto matmul = [&](Value lhs, Value rhs, bool tl, bool tr) -> Value {
    FailureOr<RankedTensorType> type = MatmulOp::inferResultType(
        tensorTypeOf(lhs), tensorTypeOf(rhs), tl, tr, nullptr);
    return b.create<MatmulOp>(loc, *type, lhs, rhs, tl, tr);
  };
  // dA = dC · op(B)ᵀ, or its transpose when A is stored transposed.
  Value da = ta ? matmul(bm, dc, tb, true) : matmul(dc, bm, false, !tb);
  // dB = op(A)ᵀ · dC, or its transpose when B is stored transposed.
  Value db;
  RankedTensorType aType = tensorTypeOf(a), dcType = tensorTypeOf(dc);
  if (tensorTypeOf(bm).getRank() == 2 && aType.getRank() > 2 && !ta) {
    // A weight applied to every sequence: fold the batch into the rows,
    // [B..., m, k] -> [B·m, k], so dB is one matmul, not a batch of them
    // summed afterwards (which would need a batch-sized temporary).
    std::optional<int64_t> leading = elementCount(aType.getShape().drop_back());
    if (!leading)
      return emitOpError() << "operand " << aType
                           << " has more elements than a 64-bit count holds";
    int64_t rows = *leading;
    auto flat = [&](Value v, RankedTensorType t) -> Value {
      return b.create<ReshapeOp>(
          loc,
          RankedTensorType::get({rows, t.getShape().back()},
                                t.getElementType()),
          v);
    };
    Value a2 = flat(a, aType), dc2 = flat(dc, dcType);
    db = tb ? matmul(dc2, a2, true, false) : matmul(a2, dc2, true, false);
  } else {
    db = tb ? matmul(dc, a, true, ta) : matmul(a, dc, !ta, false);
  }
  // A rank-2 side was broadcast over the other's batch: sum its gradient.
  grads.push_back(sumToShape(b, loc, da, tensorTypeOf(a)));
  grads.push_back(sumToShape(b, loc, db, tensorTypeOf(bm)));
  return success();
}

static LogicalResult binaryVJP(Operation *op, OpBuilder &b, Value dc,
                               SmallVectorImpl<Value> &grads) {
  Location loc = op->getLoc();
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  if (!isFloatTensor(lhs)) {
    grads.append({Value(), Value()});
    return success();
  }
  auto binary = [&](auto opTag, Value x, Value y) -> Value {
    using OpT = decltype(opTag);
    FailureOr<RankedTensorType> type =
        inferBroadcastType(tensorTypeOf(x), tensorTypeOf(y), nullptr);
    return b.create<OpT>(loc, *type, x, y);
  };
  Value da, db;
  if (isa<AddOp>(op)) {
    da = dc;
    db = dc;
  } else if (isa<SubOp>(op)) {
    da = dc;
    db = b.create<NegOp>(loc, dc);
  } else if (isa<MulOp>(op)) {
    da = binary(MulOp(), dc, rhs);
    db = binary(MulOp(), dc, lhs);
  } else {
    // d(a / b) = dc / b, and -dc · a / b².
    da = binary(DivOp(), dc, rhs);
    Value squared = binary(MulOp(), rhs, rhs);
    db = b.create<NegOp>(loc,
                         binary(DivOp(), binary(MulOp(), dc, lhs), squared));
  }
  grads.push_back(sumToShape(b, loc, da, tensorTypeOf(lhs)));
  grads.push_back(sumToShape(b, loc, db, tensorTypeOf(rhs)));
  return success();
}

LogicalResult AddOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                SmallVectorImpl<Value> &g) {
  return binaryVJP(*this, b, dy[0], g);
}
LogicalResult SubOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                SmallVectorImpl<Value> &g) {
  return binaryVJP(*this, b, dy[0], g);
}
LogicalResult MulOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                SmallVectorImpl<Value> &g) {
  return binaryVJP(*this, b, dy[0], g);
}
LogicalResult DivOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                SmallVectorImpl<Value> &g) {
  return binaryVJP(*this, b, dy[0], g);
}

//===----------------------------------------------------------------------===//
// Unary ops
//===----------------------------------------------------------------------===//

LogicalResult NegOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                SmallVectorImpl<Value> &g) {
  g.push_back(b.create<NegOp>(getLoc(), dy[0]));
  return success();
}

LogicalResult ScaleOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                  SmallVectorImpl<Value> &g) {
  g.push_back(b.create<ScaleOp>(getLoc(), dy[0], getFactorAttr()));
  return success();
}

LogicalResult ReluOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                 SmallVectorImpl<Value> &g) {
  g.push_back(b.create<ReluGradOp>(getLoc(), getInput(), dy[0]));
  return success();
}

LogicalResult SiluOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                 SmallVectorImpl<Value> &g) {
  g.push_back(b.create<SiluGradOp>(getLoc(), getInput(), dy[0]));
  return success();
}

LogicalResult GeluOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                 SmallVectorImpl<Value> &g) {
  g.push_back(
      b.create<GeluGradOp>(getLoc(), getInput(), dy[0], getApproximate()));
  return success();
}

LogicalResult CastOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                 SmallVectorImpl<Value> &g) {
  // A float-to-float cast passes the gradient back in the input's precision.
  g.push_back(isFloatTensor(getInput())
                  ? b.create<CastOp>(getLoc(), getInput().getType(), dy[0])
                  : Value());
  return success();
}

//===----------------------------------------------------------------------===//
// Softmax, normalisation, dropout
//===----------------------------------------------------------------------===//

LogicalResult SoftmaxOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                    SmallVectorImpl<Value> &g) {
  // Masked positions have y = 0, so the backward needs no mask.
  g.push_back(
      b.create<SoftmaxGradOp>(getLoc(), getResult(), dy[0], getScaleAttr()));
  if (getMask())
    g.push_back(Value());
  return success();
}

LogicalResult
LayerNormOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                        SmallVectorImpl<Value> &g) {
  auto grad = b.create<LayerNormGradOp>(getLoc(), getInput(), getWeight(),
                                        dy[0], getEpsilonAttr());
  g.append({grad.getInputGrad(), grad.getWeightGrad(), grad.getBiasGrad()});
  return success();
}

LogicalResult RmsNormOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                    SmallVectorImpl<Value> &g) {
  auto grad = b.create<RmsNormGradOp>(getLoc(), getInput(), getWeight(), dy[0],
                                      getEpsilonAttr());
  g.append({grad.getInputGrad(), grad.getWeightGrad()});
  return success();
}

LogicalResult DropoutOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                    SmallVectorImpl<Value> &g) {
  auto grad =
      b.create<DropoutGradOp>(getLoc(), dy[0], getRateAttr(), getSiteAttr());
  // The mask of a block of a partitioned tensor: the same block's indices.
  copyBlockSharding(*this, grad);
  g.push_back(grad);
  return success();
}

//===----------------------------------------------------------------------===//
// Gathers and shape manipulation
//===----------------------------------------------------------------------===//

LogicalResult
EmbeddingOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                        SmallVectorImpl<Value> &g) {
  auto grad = b.create<EmbeddingGradOp>(getLoc(), getTable().getType(), dy[0],
                                        getIndices());
  // A vocabulary-parallel table's gradient rows are this rank's block.
  copyBlockSharding(*this, grad);
  g.push_back(grad);
  g.push_back(Value()); // indices
  return success();
}

LogicalResult ReshapeOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                    SmallVectorImpl<Value> &g) {
  g.push_back(isFloatTensor(getInput())
                  ? b.create<ReshapeOp>(getLoc(), getInput().getType(), dy[0])
                  : Value());
  return success();
}

LogicalResult
TransposeOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                        SmallVectorImpl<Value> &g) {
  if (!isFloatTensor(getInput())) {
    g.push_back(Value());
    return success();
  }
  ArrayRef<int64_t> perm = getPermutation();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm))
    inverse[p] = i;
  g.push_back(b.create<TransposeOp>(getLoc(), getInput().getType(), dy[0],
                                    b.getDenseI64ArrayAttr(inverse)));
  return success();
}

LogicalResult SplitOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                  SmallVectorImpl<Value> &g) {
  if (!isFloatTensor(getInput())) {
    g.push_back(Value());
    return success();
  }
  // The pieces' gradients side by side; an unused piece contributes zeros.
  SmallVector<Value> pieces;
  for (auto [result, grad] : llvm::zip(getResults(), dy))
    pieces.push_back(grad ? grad
                          : b.create<FillOp>(getLoc(), result.getType(),
                                             b.getF64FloatAttr(0.0))
                                .getResult());
  g.push_back(b.create<ConcatOp>(getLoc(), getInput().getType(), pieces,
                                 getAxisAttr()));
  return success();
}

LogicalResult ConcatOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                   SmallVectorImpl<Value> &g) {
  if (!isFloatTensor(getResult())) {
    g.append(getInputs().size(), Value());
    return success();
  }
  auto split =
      b.create<SplitOp>(getLoc(), getInputs().getTypes(), dy[0], getAxisAttr());
  g.append(split.getResults().begin(), split.getResults().end());
  return success();
}

LogicalResult ReduceOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                                   SmallVectorImpl<Value> &g) {
  RankedTensorType in = getInput().getType();
  if (!isa<FloatType>(in.getElementType())) {
    g.push_back(Value());
    return success();
  }
  if (getKind() == ReduceKind::Max)
    return emitOpError() << "reduce max is not differentiable here; use it "
                            "outside the loss's graph";
  // Bring the reduced dimensions back as 1s, then broadcast.
  SmallVector<int64_t> kept(in.getShape());
  for (int64_t d : getDims())
    kept[d] = 1;
  Value grad = dy[0];
  auto keptType = RankedTensorType::get(kept, in.getElementType());
  if (tensorTypeOf(grad) != keptType)
    grad = b.create<ReshapeOp>(getLoc(), keptType, grad);
  grad = b.create<BroadcastOp>(getLoc(), in, grad);
  if (getKind() == ReduceKind::Mean) {
    double count = 1; // in double: a product of huge dims cannot overflow
    for (int64_t d : getDims())
      count *= double(in.getDimSize(d));
    grad = b.create<ScaleOp>(getLoc(), grad, b.getF64FloatAttr(1.0 / count));
  }
  g.push_back(grad);
  return success();
}

LogicalResult
BroadcastOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                        SmallVectorImpl<Value> &g) {
  g.push_back(isFloatTensor(getInput())
                  ? sumToShape(b, getLoc(), dy[0], getInput().getType())
                  : Value());
  return success();
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

LogicalResult
CrossEntropyOp::buildVectorJacobianProduct(OpBuilder &b, ValueRange dy,
                                           SmallVectorImpl<Value> &g) {
  g.push_back(b.create<CrossEntropyGradOp>(
      getLoc(), getLogits().getType(), getLogits(), getLabels(), dy[0],
      getReductionAttr(), getIgnoreIndexAttr(), getClassesAttr()));
  g.push_back(Value()); // labels
  return success();
}

LogicalResult StopGradientOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  g.push_back(Value());
  return success();
}

LogicalResult CrossEntropyPartialsOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  // An unused result's gradient is zero.
  SmallVector<Value, 2> grads(dy);
  for (auto [i, grad] : llvm::enumerate(grads))
    if (!grad)
      grad = b.create<FillOp>(getLoc(), getResult(i).getType(),
                              b.getF64FloatAttr(0));
  auto grad = b.create<CrossEntropyPartialsGradOp>(
      getLoc(), getLogits().getType(), getLogits(), getMax(), getLabels(),
      grads[0], grads[1], getIgnoreIndexAttr(), getClassesAttr());
  copyBlockSharding(*this, grad);
  g.push_back(grad);
  g.push_back(Value()); // the max is a shift that cancels
  g.push_back(Value());
  return success();
}

LogicalResult CrossEntropyCombineOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  auto grads = b.create<CrossEntropyCombineGradOp>(
      getLoc(), getSumexp().getType(), getTarget().getType(), getSumexp(),
      getLabels(), dy[0], getIgnoreIndexAttr());
  g.push_back(grads.getDsumexp());
  g.push_back(grads.getDtarget());
  g.push_back(Value());
  return success();
}
