//===- loomc.cpp - Loom's compiler driver ---------------------------------===//
//
// Reads a model, checks it and reports what it is. The model-language front
// end, partitioning and plan emission plug in behind the same driver.
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/ModelSummary.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/dialects/Loom/IR/LoomOps.h"
#include "loom/passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;
namespace cl = llvm::cl;

namespace {

cl::OptionCategory loomcCategory("loomc options");

cl::opt<std::string>
    inputFilename(cl::Positional, cl::Required,
                  cl::desc("<model file: .mlir in the loom dialect>"),
                  cl::cat(loomcCategory));

cl::opt<std::string> outputFilename(
    "o", cl::desc("Write the output to this file (default: standard output)"),
    cl::value_desc("file"), cl::init("-"), cl::cat(loomcCategory));

enum class Emit { None, Loom };
cl::opt<Emit>
    emitAction("emit", cl::desc("Print the model at a level of the compiler:"),
               cl::init(Emit::None),
               cl::values(clEnumValN(
                   Emit::Loom, "loom",
                   "the loom dialect (global shapes, after verification)")),
               cl::cat(loomcCategory));

cl::opt<bool>
    summary("summary",
            cl::desc("Print the model: parameters, FLOPs per execution, ops"),
            cl::cat(loomcCategory));

cl::opt<bool> json("json",
                   cl::desc("With --summary: print it as one JSON object"),
                   cl::cat(loomcCategory));

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(loomcCategory);
  cl::ParseCommandLineOptions(argc, argv,
                              "loomc: Loom's compiler driver\n\n"
                              "  loomc model.mlir --summary [--json]\n"
                              "  loomc model.mlir --emit=loom [-o out.mlir]\n");

  if (json && !summary) {
    llvm::errs() << "loomc: --json goes with --summary\n";
    return 1;
  }
  if (!summary && emitAction == Emit::None) {
    llvm::errs() << "loomc: nothing to do; pass --summary or --emit=loom "
                    "(see loomc --help)\n";
    return 1;
  }
  if (llvm::StringRef(inputFilename).ends_with(".loom")) {
    llvm::errs() << "loomc: " << inputFilename
                 << ": the model-language front end is not part of this "
                    "build yet; pass a .mlir file in the loom dialect\n";
    return 1;
  }

  DialectRegistry registry;
  registry.insert<loom::LoomDialect, func::FuncDialect>();
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  // Users read the source line and caret; the generic form of the op is noise.
  context.printOpOnDiagnostic(false);

  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input =
      openInputFile(inputFilename, &error);
  if (!input) {
    llvm::errs() << "loomc: " << error << "\n";
    return 1;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;
  PassManager pm(&context);
  pm.addPass(loom::createLoomVerifyModel());
  if (failed(pm.run(*module)))
    return 1;

  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFilename, &error);
  if (!output) {
    llvm::errs() << "loomc: " << error << "\n";
    return 1;
  }

  if (summary) {
    FailureOr<loom::ModelSummary> result = loom::summarizeModel(*module);
    if (failed(result))
      return 1;
    if (json)
      loom::printModelSummaryJson(*result, output->os());
    else
      loom::printModelSummary(*result, output->os());
  }
  if (emitAction == Emit::Loom)
    module->print(output->os());
  if (emitAction == Emit::Loom)
    output->os() << "\n";

  output->keep();
  return 0;
}
