//===- GlobalBatchLoss.cpp - --loom-global-batch-loss ---------------------===//
//
// A mean cross-entropy becomes a sum, and the function records how the
// training step normalises it: over the tokens counted in the global batch.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#define DEBUG_TYPE "loom-global-batch-loss"

namespace loom {
#define GEN_PASS_DEF_LOOMGLOBALBATCHLOSS
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

/// The function argument `v` is, looking through reshapes, or null.
BlockArgument argumentThroughReshapes(Value v) {
  while (auto reshape = v.getDefiningOp<ReshapeOp>())
    v = reshape.getInput();
  return dyn_cast<BlockArgument>(v);
}

struct LoomGlobalBatchLossPass
    : impl::LoomGlobalBatchLossBase<LoomGlobalBatchLossPass> {
  void runOnOperation() override {
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn.isPrivate())
        continue;
      auto ret = cast<func::ReturnOp>(fn.front().getTerminator());
      MLIRContext *ctx = fn.getContext();
      Builder b(ctx);
      LoomDialect::LossNormalizerAttrHelper normalizer(ctx);
      normalizer.setAttr(fn, b.getStringAttr("microbatches"));
      if (ret.getNumOperands() == 0)
        continue;
      auto loss = ret.getOperand(0).getDefiningOp<CrossEntropyOp>();
      if (!loss || loss.getReduction() != LossReduction::Mean)
        continue;
      BlockArgument labels = argumentThroughReshapes(loss.getLabels());
      if (!labels || labels.getOwner() != &fn.front())
        continue; // labels computed in the model: no count to take
      loss.setReduction(LossReduction::Sum);
      normalizer.setAttr(fn, b.getStringAttr("tokens"));
      LoomDialect::LabelsInputAttrHelper(ctx).setAttr(
          fn, b.getI64IntegerAttr(labels.getArgNumber()));
      LoomDialect::IgnoreIndexAttrHelper(ctx).setAttr(
          fn, b.getI64IntegerAttr(int64_t(loss.getIgnoreIndex())));
    }
  }
};

} // namespace
} // namespace loom
