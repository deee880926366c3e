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

namespace {

/// The module's loom.configs as the plan's model_config, in name order.
void copyConfigs(ModuleOp module, plan::PlanT &plan) {
  auto configs =
      LoomDialect::ConfigsAttrHelper(module.getContext()).getAttr(module);
  if (!configs)
    return;
  for (NamedAttribute config : configs) {
    auto c = std::make_unique<plan::ModelConfigT>();
    c->name = config.getName().str();
    Attribute v = config.getValue();
    if (auto flag = dyn_cast<BoolAttr>(v)) {
      c->kind = "bool";
      c->i = flag.getValue();
    } else if (auto integer = dyn_cast<IntegerAttr>(v)) {
      c->kind = "int";
      c->i = integer.getInt();
    } else if (auto number = dyn_cast<FloatAttr>(v)) {
      c->kind = "float";
      c->f = number.getValueAsDouble();
    } else if (auto text = dyn_cast<StringAttr>(v)) {
      c->kind = "string";
      c->s = text.str();
    } else {
      continue; // the dialect's verifier admits no other kind
    }
    plan.model_config.push_back(std::move(c));
  }
}

FailureOr<std::unique_ptr<plan::PlanT>>
buildPlanOf(ModuleOp module, const PlanOptions &options) {
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

} // namespace

FailureOr<std::unique_ptr<plan::PlanT>> buildPlan(ModuleOp module,
                                                  const PlanOptions &options) {
  FailureOr<std::unique_ptr<plan::PlanT>> plan = buildPlanOf(module, options);
  if (succeeded(plan))
    copyConfigs(module, **plan);
  return plan;
}

} // namespace loom
