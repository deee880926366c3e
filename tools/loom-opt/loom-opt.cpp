//===- loom-opt.cpp - Loom's pass driver, like mlir-opt -------------------===//

#include "loom/Plan/TrainingPipeline.h"
#include "loom/dialects/Dist/IR/DistDialect.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/passes/Passes.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<loom::LoomDialect, loom::dist::DistDialect, mlir::func::FuncDialect>();
  mlir::func::registerInlinerExtension(registry);

  loom::registerLoomPasses();
  // The sequence loomc runs to build the training step.
  loom::registerTrainingStepPipeline();
  // The upstream passes Loom's pipelines use.
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  mlir::registerInlinerPass();

  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Loom optimizer driver\n", registry));
}
