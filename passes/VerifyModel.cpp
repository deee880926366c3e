//===- VerifyModel.cpp - --loom-verify-model ------------------------------===//
//
// Rules across ops that no op verifier can check.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "llvm/ADT/StringMap.h"

#define DEBUG_TYPE "loom-verify-model"

namespace loom {
#define GEN_PASS_DEF_LOOMVERIFYMODEL
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

struct LoomVerifyModelPass : impl::LoomVerifyModelBase<LoomVerifyModelPass> {
  void runOnOperation() override {
    llvm::StringMap<ParameterOp> parameters;
    llvm::StringMap<DropoutOp> dropouts;
    bool ok = true;
    // Element counts and byte sizes are int64 everywhere after this pass
    // (the summary, the planner, the runtime): bound them here, once; the
    // first oversized tensor is reported, not every op that uses its size.
    bool sizeReported = false;
    auto checkSize = [&](Type type, Operation *at) {
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (sizeReported || !tensor || !tensor.hasStaticShape())
        return;
      std::optional<int64_t> count = elementCount(tensor);
      if (count && *count <= kMaxTensorElements)
        return;
      at->emitError() << tensor
                      << " has more than 2^48 elements, the most a "
                         "tensor may have";
      ok = false;
      sizeReported = true;
    };
    getOperation().walk([&](Operation *op) {
      for (Type type : op->getResultTypes())
        checkSize(type, op);
      for (Region &region : op->getRegions())
        for (Block &block : region)
          for (BlockArgument arg : block.getArguments())
            checkSize(arg.getType(), op);
      if (auto param = dyn_cast<ParameterOp>(op)) {
        auto [it, inserted] = parameters.try_emplace(param.getName(), param);
        ParameterOp first = it->second;
        if (inserted || (first.getType() == param.getType() &&
                         first.getInit() == param.getInit()))
          return;
        InFlightDiagnostic diag = param.emitError();
        diag << "parameter '" << param.getName()
             << "' is declared again with type " << param.getType()
             << " and init " << param.getInit()
             << "; a shared parameter must repeat its first declaration "
                "exactly";
        diag.attachNote(first.getLoc())
            << "first declared here with type " << first.getType()
            << " and init " << first.getInit();
        ok = false;
      } else if (auto dropout = dyn_cast<DropoutOp>(op)) {
        auto [it, inserted] = dropouts.try_emplace(dropout.getSite(), dropout);
        if (inserted)
          return;
        InFlightDiagnostic diag = dropout.emitError();
        diag << "dropout site '" << dropout.getSite()
             << "' is used twice; the mask is keyed by the site, so both "
                "would draw the same mask: give each dropout its own site";
        diag.attachNote(it->second.getLoc()) << "first used here";
        ok = false;
      }
    });
    if (!ok)
      signalPassFailure();
  }
};

} // namespace
} // namespace loom
