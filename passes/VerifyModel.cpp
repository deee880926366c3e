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
    getOperation().walk([&](Operation *op) {
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
