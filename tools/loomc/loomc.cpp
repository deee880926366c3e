//===- loomc.cpp - Loom's compiler driver ---------------------------------===//
//
// Reads a model (the model language, or loom IR), checks it and reports or
// prints it. Partitioning and plan emission plug in behind the same driver.
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/ModelSummary.h"
#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/dialects/Loom/IR/LoomOps.h"
#include "loom/passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
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
                  cl::desc("<model file: .loom, or .mlir in the loom dialect>"),
                  cl::cat(loomcCategory));

cl::opt<std::string>
    outputFilename("o",
                   cl::desc("Write the output to this file (default: standard "
                            "output)"),
                   cl::value_desc("file"), cl::init("-"),
                   cl::cat(loomcCategory));

enum class Emit { None, Loom };
cl::opt<Emit>
    emitAction("emit", cl::desc("Print the model at a level of the compiler:"),
               cl::init(Emit::None),
               cl::values(clEnumValN(Emit::Loom, "loom",
                                     "the loom dialect (global shapes, after "
                                     "verification); loom-opt reads it")),
               cl::cat(loomcCategory));

cl::opt<bool> summary("summary",
                      cl::desc("Print the model: parameters by block, layers, "
                               "FLOPs per execution, ops, tensor shapes"),
                      cl::cat(loomcCategory));

cl::opt<bool> json("json",
                   cl::desc("With --summary: print it as one JSON object"),
                   cl::cat(loomcCategory));

cl::list<std::string>
    defines("D", cl::Prefix,
            cl::desc("Override a config of a .loom model: -D hidden=2048 "
                     "(repeatable; configs computed from it follow)"),
            cl::value_desc("name=value"), cl::cat(loomcCategory));

cl::opt<int64_t> microBatchSize(
    "micro-batch-size",
    cl::desc("Sequences per data-parallel rank per microbatch: the size of "
             "the model's `batch` dimension (default 1)"),
    cl::init(1), cl::cat(loomcCategory));

cl::opt<int64_t> globalBatchSize(
    "global-batch-size",
    cl::desc("Sequences per training step, a multiple of --micro-batch-size "
             "(default: the micro-batch size)"),
    cl::init(0), cl::cat(loomcCategory));

cl::opt<std::string>
    modelName("model",
              cl::desc("Which model of the file to compile, when it has "
                       "several"),
              cl::value_desc("name"), cl::init(""), cl::cat(loomcCategory));

/// Builds the module of a .loom file; diagnostics go through `sourceMgr`.
OwningOpRef<ModuleOp> buildFromModelFile(llvm::SourceMgr &sourceMgr,
                                         MLIRContext &context) {
  const llvm::MemoryBuffer *buffer =
      sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
  llvm::StringRef filename = buffer->getBufferIdentifier();

  // The standard library is a buffer too, so its diagnostics show its lines.
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBuffer(loom::standardLibrarySource(),
                                       loom::standardLibraryName()),
      llvm::SMLoc());
  FailureOr<loom::ast::File> library = loom::parseModelFile(
      loom::standardLibrarySource(), loom::standardLibraryName(), &context);
  if (failed(library))
    return nullptr;

  FailureOr<loom::ast::File> file =
      loom::parseModelFile(buffer->getBuffer(), filename, &context);
  if (failed(file))
    return nullptr;
  if (file->models.empty()) {
    bool blank = buffer->getBuffer().trim().empty();
    emitError(FileLineColLoc::get(&context, filename, 1, 1))
        << (blank ? "the file is empty" : "the file defines no model")
        << "; a model file holds `model NAME { ... }` (docs/language.md "
           "walks through examples/gpt.loom)";
    return nullptr;
  }

  loom::ModelOptions options;
  for (const std::string &define : defines) {
    auto [name, value] = llvm::StringRef(define).split('=');
    if (!llvm::StringRef(define).contains('=') || name.trim().empty()) {
      llvm::errs() << "loomc: -D " << define
                   << ": write -D NAME=VALUE, e.g. -D hidden=2048\n";
      return nullptr;
    }
    options.overrides.push_back({name.trim().str(), value.trim().str()});
  }
  options.microBatchSize = microBatchSize;
  options.globalBatchSize = globalBatchSize;
  options.modelName = modelName;
  FailureOr<OwningOpRef<ModuleOp>> module =
      loom::buildModel(*file, *library, options, &context);
  if (failed(module))
    return nullptr;
  // The builder checks every op as it builds it; this is the last word.
  if (failed(verify(**module)))
    return nullptr;
  return std::move(*module);
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(loomcCategory);
  cl::ParseCommandLineOptions(
      argc, argv,
      "loomc: Loom's compiler driver\n\n"
      "  loomc examples/gpt.loom --summary [--json] [-D layers=24 ...]\n"
      "  loomc examples/gpt.loom --emit=loom [-o gpt.mlir]\n"
      "  loomc model.mlir --summary       (loom IR, as loom-opt reads it)\n\n"
      "  A response file holds more arguments: loomc examples/gpt.loom "
      "@examples/configs/gpt2-355m.args --summary\n");

  if (json && !summary) {
    llvm::errs() << "loomc: --json goes with --summary\n";
    return 1;
  }
  if (!summary && emitAction == Emit::None) {
    llvm::errs() << "loomc: nothing to do; pass --summary or --emit=loom "
                    "(see loomc --help)\n";
    return 1;
  }
  bool isModelFile = llvm::StringRef(inputFilename).ends_with(".loom");
  if (!isModelFile && (!defines.empty() || !modelName.empty())) {
    llvm::errs() << "loomc: -D and --model apply to .loom model files; "
                 << inputFilename << " is read as loom IR\n";
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

  OwningOpRef<ModuleOp> module =
      isModelFile ? buildFromModelFile(sourceMgr, context)
                  : parseSourceFile<ModuleOp>(sourceMgr, &context);
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
  if (emitAction == Emit::Loom) {
    module->print(output->os());
    output->os() << "\n";
  }
  output->keep();
  return 0;
}
