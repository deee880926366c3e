//===- MixedPrecision.cpp - --loom-mixed-precision ------------------------===//
//
// Parameters stay f32 (master weights) and are cast where they are read;
// every other float value takes the compute type; the loss stays f32.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#define DEBUG_TYPE "loom-mixed-precision"

namespace loom {
#define GEN_PASS_DEF_LOOMMIXEDPRECISION
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

struct LoomMixedPrecisionPass
    : impl::LoomMixedPrecisionBase<LoomMixedPrecisionPass> {
  using LoomMixedPrecisionBase::LoomMixedPrecisionBase;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    Type computeType = compute == "bf16"  ? Type(BFloat16Type::get(ctx))
                       : compute == "f16" ? Type(Float16Type::get(ctx))
                                          : Type();
    if (!computeType) {
      getOperation().emitError()
          << "--loom-mixed-precision: compute type '" << compute
          << "' is not bf16 or f16";
      return signalPassFailure();
    }
    auto lower = [&](Type type) -> Type {
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (!tensor || !tensor.getElementType().isF32())
        return type;
      return tensor.clone(computeType);
    };
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn.isPrivate())
        continue;
      OpBuilder b(ctx);
      // A float argument (a pipeline chunk's activation from the stage
      // before) arrives in f32 and is cast where the chunk starts.
      b.setInsertionPointToStart(&fn.front());
      for (BlockArgument arg : fn.getArguments()) {
        Type low = lower(arg.getType());
        if (low == arg.getType())
          continue;
        auto cast = b.create<CastOp>(arg.getLoc(), low, arg);
        arg.replaceAllUsesExcept(cast, cast);
      }
      for (Operation &op : llvm::make_early_inc_range(fn.front())) {
        if (auto param = dyn_cast<ParameterOp>(op)) {
          Type low = lower(param.getType());
          if (low == param.getType())
            continue;
          b.setInsertionPointAfter(param);
          auto cast = b.create<CastOp>(param.getLoc(), low, param);
          param.getResult().replaceAllUsesExcept(cast, cast);
          continue;
        }
        // Cross-entropy reduces in f32 whatever its logits are, and so does
        // what works on its f32 results (the vocabulary-parallel
        // cross-entropy's all-reduced sums, the loss's sum over tokens): an
        // op whose float operands are all still f32 stays f32.
        if (isa<CrossEntropyOp, CrossEntropyPartialsOp, func::ReturnOp>(op))
          continue;
        bool anyFloat = false, allF32 = true;
        for (Value v : op.getOperands())
          if (auto t = dyn_cast<RankedTensorType>(v.getType());
              t && isa<FloatType>(t.getElementType())) {
            anyFloat = true;
            allF32 &= t.getElementType().isF32();
          }
        if (anyFloat && allF32)
          continue;
        for (Value result : op.getResults())
          result.setType(lower(result.getType()));
      }
      // The loss (and whatever else is returned) leaves in f32.
      auto ret = cast<func::ReturnOp>(fn.front().getTerminator());
      b.setInsertionPoint(ret);
      for (OpOperand &operand : ret->getOpOperands()) {
        auto type = cast<RankedTensorType>(operand.get().getType());
        if (type.getElementType() != computeType)
          continue;
        operand.set(b.create<CastOp>(ret.getLoc(),
                                     type.clone(b.getF32Type()),
                                     operand.get()));
      }
      fn.setFunctionType(b.getFunctionType(fn.getArgumentTypes(),
                                           ret.getOperandTypes()));
    }
  }
};

} // namespace
} // namespace loom
