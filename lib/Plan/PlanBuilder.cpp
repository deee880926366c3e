//===- PlanBuilder.cpp - a differentiated model to the plan bundle --------===//
//
// The entry to the plan builder: a module with pipeline chunks becomes a
// pipeline's plan (PipelinePlan.cpp), any other its one public function's
// (LowerToPlan.cpp). lib/Plan/Lowering.h lists the files and their jobs.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/PlanBuilder.h"
#include "Lowering.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

using namespace mlir;
using namespace loom::detail;

namespace loom {

FailureOr<std::unique_ptr<plan::PlanT>> buildPlan(ModuleOp module,
                                                  const PlanOptions &options) {
  SmallVector<func::FuncOp> chunks;
  for (auto fn : module.getOps<func::FuncOp>())
    if (!fn.isExternal() && !fn.isPrivate() &&
        fn->hasAttr(LoomDialect::PipelineChunkAttrHelper::getNameStr())) {
      auto index = fn->getAttrOfType<IntegerAttr>(
          LoomDialect::PipelineChunkAttrHelper::getNameStr());
      if (!index)
        return fn.emitError()
               << "loom.pipeline_chunk must be an integer, got "
               << fn->getAttr(
                      LoomDialect::PipelineChunkAttrHelper::getNameStr());
      chunks.push_back(fn);
    }
  if (!chunks.empty())
    return buildPipelinePlan(module, chunks, options);
  func::FuncOp entry;
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (fn.isExternal() || fn.isPrivate())
      continue;
    if (entry)
      return fn.emitError()
             << "a plan trains one model; the module has @"
             << entry.getSymName() << " and @" << fn.getSymName();
    entry = fn;
  }
  if (!entry)
    return module.emitError() << "the module has no public function to train";
  return lowerFunction(entry, options);
}

} // namespace loom
