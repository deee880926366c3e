//===- Autodiff.cpp - --loom-autodiff -------------------------------------===//
//
// Reverse-mode differentiation of a loss function into one that also returns
// every parameter's gradient.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "llvm/ADT/MapVector.h"

#define DEBUG_TYPE "loom-autodiff"

namespace loom {
#define GEN_PASS_DEF_LOOMAUTODIFF
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

LogicalResult differentiate(func::FuncOp fn) {
  MLIRContext *ctx = fn.getContext();
  Block &body = fn.front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  auto lossType = ret.getNumOperands()
                      ? dyn_cast<RankedTensorType>(ret.getOperand(0).getType())
                      : RankedTensorType();
  // A pipeline chunk other than the last returns an activation: its
  // gradient arrives from the next stage as a new argument.
  bool activationOut =
      LoomDialect::PipelineChunkAttrHelper(ctx).isAttrPresent(fn) && lossType &&
      lossType.getRank() > 0 && isa<FloatType>(lossType.getElementType());
  if (!activationOut &&
      (!lossType || lossType.getRank() != 0 ||
       !isa<FloatType>(lossType.getElementType())))
    return fn.emitError() << "cannot differentiate @" << fn.getSymName()
                          << ": its first result must be the scalar loss "
                             "(tensor<f32>)";
  for (Operation &op : body)
    if (isa<func::CallOp>(op))
      return op.emitError() << "inline calls before differentiating "
                               "(--inline)";

  SmallVector<Operation *> forward;
  for (Operation &op : body.without_terminator())
    forward.push_back(&op);
  // How many ops are the forward: a pipeline stage runs them alone.
  LoomDialect::ForwardOpsAttrHelper(ctx).setAttr(
      fn, OpBuilder(fn).getI64IntegerAttr(int64_t(forward.size())));

  OpBuilder b(ret);
  Value loss = ret.getOperand(0);
  DenseMap<Value, Value> grads;
  if (activationOut) {
    unsigned index = fn.getNumArguments();
    fn.insertArgument(
        index, lossType,
        b.getDictionaryAttr(b.getNamedAttr(
            LoomDialect::kOutputGradArgAttr.getNameStr(), b.getUnitAttr())),
        ret.getLoc());
    grads[loss] = body.getArgument(index);
  } else {
    // The seed dloss/dloss = 1; marked, so the lowering can make it the
    // loss scale of f16 training.
    auto seed = b.create<FillOp>(ret.getLoc(), lossType, b.getF64FloatAttr(1));
    LoomDialect::LossSeedAttrHelper(ctx).setAttr(seed, b.getUnitAttr());
    grads[loss] = seed;
  }
  LoomDialect::LayerAttrHelper layerAttr(ctx);
  for (Operation *op : llvm::reverse(forward)) {
    SmallVector<Value> resultGrads;
    bool reached = false;
    for (Value result : op->getResults()) {
      resultGrads.push_back(grads.lookup(result));
      reached |= static_cast<bool>(resultGrads.back());
    }
    // Parameters are the leaves; constants (no operands) need no gradient.
    if (!reached || isa<ParameterOp>(op) || op->getNumOperands() == 0)
      continue;
    auto rule = dyn_cast<DifferentiableOpInterface>(op);
    if (!rule)
      return op->emitError() << "cannot differentiate through '"
                             << op->getName() << "': it has no gradient rule";
    SmallVector<Value> operandGrads;
    Operation *last = ret->getPrevNode();
    if (failed(rule.buildVectorJacobianProduct(b, resultGrads, operandGrads)))
      return failure();
    if (operandGrads.size() != op->getNumOperands())
      return op->emitError()
             << "gradient rule gave " << operandGrads.size()
             << " gradients for " << op->getNumOperands() << " operands";
    for (auto [operand, grad] : llvm::zip(op->getOperands(), operandGrads)) {
      if (!grad)
        continue;
      Value &slot = grads[operand];
      slot = slot ? b.create<AddOp>(op->getLoc(), operand.getType(), slot, grad)
                        .getResult()
                  : grad;
    }
    // The backward of a layer's op belongs to the layer (pipeline stages
    // and per-layer reports read it).
    if (IntegerAttr layer = layerAttr.getAttr(op))
      for (Operation *made = last ? last->getNextNode() : &body.front();
           made && made != ret.getOperation(); made = made->getNextNode())
        if (!layerAttr.isAttrPresent(made))
          layerAttr.setAttr(made, layer);
  }

  // One gradient per parameter name; a tied parameter's declarations sum.
  llvm::MapVector<StringRef, std::pair<Value, ParameterOp>> byName;
  for (Operation *op : forward) {
    auto param = dyn_cast<ParameterOp>(op);
    if (!param)
      continue;
    auto &[grad, first] = byName[param.getName()];
    if (!first)
      first = param;
    if (first.getType() != param.getType()) {
      InFlightDiagnostic diag = param.emitError();
      diag << "parameter '" << param.getName() << "' is declared with type "
           << param.getType() << " here and " << first.getType()
           << " before; a tied parameter has one type (--loom-verify-model "
              "checks this)";
      diag.attachNote(first.getLoc()) << "first declared here";
      return failure();
    }
    Value g = grads.lookup(param.getResult());
    if (g)
      grad = grad ? b.create<AddOp>(param.getLoc(), param.getType(), grad, g)
                        .getResult()
                  : g;
  }
  SmallVector<Value> results(ret.getOperands());
  // A pipeline chunk's input activation: its gradient goes to the stage
  // before, right after the loss (or activation).
  int64_t inputGrad = -1;
  for (BlockArgument arg : body.getArguments())
    if (LoomDialect::kBoundaryInputArgAttr.isAttrPresent(fn,
                                                         arg.getArgNumber())) {
      Value g = grads.lookup(arg);
      if (!g)
        g = b.create<FillOp>(ret.getLoc(), arg.getType(), b.getF64FloatAttr(0));
      inputGrad = int64_t(results.size());
      results.push_back(g);
    }
  SmallVector<StringRef> names;
  for (auto &[name, entry] : byName) {
    auto &[grad, param] = entry;
    if (!grad) // a parameter the loss does not reach
      grad = b.create<FillOp>(param.getLoc(), param.getType(),
                              b.getF64FloatAttr(0));
    results.push_back(grad);
    names.push_back(name);
  }
  unsigned firstGrad = ret.getNumOperands();
  b.create<func::ReturnOp>(ret.getLoc(), results);
  ret.erase();
  fn.setFunctionType(
      b.getFunctionType(fn.getArgumentTypes(), ValueRange(results).getTypes()));
  if (inputGrad >= 0) {
    ++firstGrad;
    LoomDialect::kInputGradResultAttr.setAttr(fn, unsigned(inputGrad),
                                              b.getUnitAttr());
  }
  for (auto [i, name] : llvm::enumerate(names))
    LoomDialect::kGradResultAttr.setAttr(fn, firstGrad + i,
                                         b.getStringAttr(name));
  return success();
}

struct LoomAutodiffPass : impl::LoomAutodiffBase<LoomAutodiffPass> {
  void runOnOperation() override {
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn.isPrivate())
        continue;
      if (failed(differentiate(fn)))
        return signalPassFailure();
    }
  }
};

} // namespace
} // namespace loom
