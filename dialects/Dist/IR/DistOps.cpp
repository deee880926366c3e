//===- DistOps.cpp - dist ops: verifiers, gradients, canonicalization -----===//

#include "loom/dialects/Dist/IR/DistOps.h"

#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace loom;
using namespace loom::dist;

namespace {
/// The size of mesh axis `axis` around `op`, or an error naming what is
/// missing.
FailureOr<int64_t> axisSize(Operation *op, StringRef axis) {
  MeshAttr mesh = getMesh(op);
  if (!mesh)
    return op->emitOpError()
           << "needs a mesh: the enclosing module has no '"
           << DistDialect::MeshAttrHelper::getNameStr() << "' attribute";
  std::optional<int64_t> size = mesh.getAxisSize(axis);
  if (!size)
    return op->emitOpError() << "names mesh axis '" << axis
                             << "', which the mesh " << mesh << " lacks";
  return *size;
}

/// Checks a collective that changes dimension `dim` by the axis size: the
/// result's is the input's times the size (`gather`) or divided by it.
LogicalResult verifyResize(Operation *op, StringRef axis, int64_t dim,
                           RankedTensorType input, RankedTensorType result,
                           bool gather) {
  FailureOr<int64_t> n = axisSize(op, axis);
  if (failed(n))
    return failure();
  if (input.getElementType() != result.getElementType())
    return op->emitOpError() << "changes the element type";
  if (input.getRank() != result.getRank())
    return op->emitOpError() << "changes the rank";
  if (dim < 0 || dim >= input.getRank())
    return op->emitOpError() << "dim " << dim << " is out of range for rank "
                             << input.getRank();
  if (!gather && input.getDimSize(dim) % *n != 0)
    return op->emitOpError()
           << "dimension " << dim << " of the input (" << input.getDimSize(dim)
           << ") does not divide over axis '" << axis << "' of " << *n
           << " ranks";
  for (int64_t d = 0; d < input.getRank(); ++d) {
    int64_t want = d != dim ? input.getDimSize(d)
                   : gather ? input.getDimSize(d) * *n
                            : input.getDimSize(d) / *n;
    if (result.getDimSize(d) != want)
      return op->emitOpError()
             << "dimension " << d << " of the result must be " << want
             << " (axis '" << axis << "' has " << *n << " ranks), not "
             << result.getDimSize(d);
  }
  return success();
}

} // namespace

#define GET_OP_CLASSES
#include "dialects/Dist/DistOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Verifiers.
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::verify() {
  if (getKind() == ReduceKind::Mean)
    return emitOpError() << "kind must be sum or max: a mean is a sum and a "
                            "scale";
  return axisSize(*this, getAxis());
}

LogicalResult AllGatherOp::verify() {
  return verifyResize(*this, getAxis(), getDim(), getInput().getType(),
                      getType(), /*gather=*/true);
}

LogicalResult ReduceScatterOp::verify() {
  return verifyResize(*this, getAxis(), getDim(), getInput().getType(),
                      getType(), /*gather=*/false);
}

LogicalResult AllSliceOp::verify() {
  return verifyResize(*this, getAxis(), getDim(), getInput().getType(),
                      getType(), /*gather=*/false);
}

LogicalResult AllToAllOp::verify() {
  FailureOr<int64_t> n = axisSize(*this, getAxis());
  if (failed(n))
    return failure();
  auto in = getInput().getType(), out = getType();
  int64_t s = getSplitDim(), c = getConcatDim();
  if (in.getRank() != out.getRank() || in.getElementType() != out.getElementType())
    return emitOpError() << "changes the rank or element type";
  if (s < 0 || c < 0 || s >= in.getRank() || c >= in.getRank() || s == c)
    return emitOpError() << "split_dim and concat_dim must be distinct "
                            "dimensions of the input";
  for (int64_t d = 0; d < in.getRank(); ++d) {
    int64_t want = d == s   ? in.getDimSize(d) / *n
                   : d == c ? in.getDimSize(d) * *n
                            : in.getDimSize(d);
    if ((d == s && in.getDimSize(d) % *n) || out.getDimSize(d) != want)
      return emitOpError() << "dimension " << d << " of the result must be "
                           << want << " (axis '" << getAxis() << "' has "
                           << *n << " ranks)";
  }
  return success();
}

LogicalResult BroadcastOp::verify() {
  FailureOr<int64_t> n = axisSize(*this, getAxis());
  if (failed(n))
    return failure();
  int64_t root = int64_t(getRoot());
  if (root < 0 || root >= *n)
    return emitOpError() << "root " << root << " is not a rank of axis '"
                         << getAxis() << "' (0.." << *n - 1 << ")";
  return success();
}

LogicalResult FanOutOp::verify() { return axisSize(*this, getAxis()); }

static LogicalResult verifyPeer(Operation *op, StringRef axis, int64_t peer) {
  FailureOr<int64_t> n = axisSize(op, axis);
  if (failed(n))
    return failure();
  if (peer < 0 || peer >= *n)
    return op->emitOpError() << "peer " << peer << " is not a rank of axis '"
                             << axis << "' (0.." << *n - 1 << ")";
  return success();
}

LogicalResult SendOp::verify() { return verifyPeer(*this, getAxis(), getPeer()); }
LogicalResult RecvOp::verify() { return verifyPeer(*this, getAxis(), getPeer()); }

//===----------------------------------------------------------------------===//
// Gradients. The convention: the gradient of a replicated value is whole on
// every rank; of a split value, each rank's block; of a partial value, the
// same on every rank.
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  if (getKind() != ReduceKind::Sum)
    return emitOpError() << "an all_reduce " << stringifyReduceKind(getKind())
                         << " has no gradient; stop the gradient before it";
  g.push_back(dy[0]);
  return success();
}

LogicalResult AllGatherOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  g.push_back(b.create<AllSliceOp>(getLoc(), getInput().getType(), dy[0],
                                   getAxis(), getDim()));
  return success();
}

LogicalResult ReduceScatterOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  g.push_back(b.create<AllGatherOp>(getLoc(), getInput().getType(), dy[0],
                                    getAxis(), getDim()));
  return success();
}

LogicalResult AllSliceOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  g.push_back(b.create<AllGatherOp>(getLoc(), getInput().getType(), dy[0],
                                    getAxis(), getDim()));
  return success();
}

LogicalResult AllToAllOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  g.push_back(b.create<AllToAllOp>(getLoc(), getInput().getType(), dy[0],
                                   getAxis(), getConcatDim(), getSplitDim()));
  return success();
}

LogicalResult BroadcastOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  return emitOpError() << "has no gradient rule yet";
}

LogicalResult FanOutOp::buildVectorJacobianProduct(
    OpBuilder &b, ValueRange dy, SmallVectorImpl<Value> &g) {
  g.push_back(b.create<AllReduceOp>(getLoc(), getType(), ReduceKind::Sum, dy[0],
                                    getAxisAttr()));
  return success();
}

//===----------------------------------------------------------------------===//
// Cost: collectives move bytes and do no FLOPs worth counting.
//===----------------------------------------------------------------------===//

double AllReduceOp::getFlops() { return 0; }
double AllGatherOp::getFlops() { return 0; }
double ReduceScatterOp::getFlops() { return 0; }
double AllSliceOp::getFlops() { return 0; }
double AllToAllOp::getFlops() { return 0; }
double BroadcastOp::getFlops() { return 0; }
double FanOutOp::getFlops() { return 0; }

//===----------------------------------------------------------------------===//
// all_slice(all_reduce sum x) over one axis is reduce_scatter x: the
// backward of a fan_out after an all_gather (sequence parallelism).
//===----------------------------------------------------------------------===//

namespace {
struct SliceOfAllReduce : OpRewritePattern<AllSliceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AllSliceOp slice,
                                PatternRewriter &rewriter) const override {
    auto reduce = slice.getInput().getDefiningOp<AllReduceOp>();
    if (!reduce || reduce.getKind() != ReduceKind::Sum ||
        reduce.getAxis() != slice.getAxis() || !reduce->hasOneUse())
      return failure();
    // It does the slice's work, for the same layer.
    LoomDialect::LayerAttrHelper layerAttr(slice.getContext());
    IntegerAttr layer = layerAttr.getAttr(slice);
    auto scatter = rewriter.replaceOpWithNewOp<ReduceScatterOp>(
        slice, slice.getType(), reduce.getInput(), slice.getAxisAttr(),
        slice.getDimAttr());
    if (layer)
      layerAttr.setAttr(scatter, layer);
    rewriter.eraseOp(reduce);
    return success();
  }
};
} // namespace

void AllSliceOp::getCanonicalizationPatterns(RewritePatternSet &patterns,
                                             MLIRContext *context) {
  patterns.add<SliceOfAllReduce>(context);
}
