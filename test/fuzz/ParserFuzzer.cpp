//===- ParserFuzzer.cpp - libFuzzer target for the model language ---------===//
//
// Feeds arbitrary bytes through the whole front end (parser, model builder,
// verifier). Diagnostics are expected; crashes, hangs, sanitizer reports and
// unbounded memory are bugs. Built by scripts/fuzz.sh with clang and
// -fsanitize=fuzzer,address; CI runs it for about a minute.
//
//===----------------------------------------------------------------------===//

#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A fresh context per input: a shared one would keep every uniqued name.
  mlir::DialectRegistry registry;
  registry.insert<loom::LoomDialect, mlir::func::FuncDialect>();
  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  mlir::ScopedDiagnosticHandler quiet(
      &context, [](mlir::Diagnostic &) { return mlir::success(); });

  mlir::FailureOr<loom::ast::File> library = loom::parseModelFile(
      loom::standardLibrarySource(), loom::standardLibraryName(), &context);
  if (mlir::failed(library))
    __builtin_trap(); // the standard library must always parse

  llvm::StringRef source(reinterpret_cast<const char *>(data), size);
  mlir::FailureOr<loom::ast::File> file =
      loom::parseModelFile(source, "fuzz.loom", &context);
  if (mlir::failed(file) || file->models.empty())
    return 0;
  loom::ModelOptions options;
  options.modelName = file->models.front().name;
  auto module = loom::buildModel(*file, *library, options, &context);
  if (mlir::succeeded(module) && mlir::failed(mlir::verify(**module)))
    __builtin_trap(); // the builder checks every op: the module must verify
  return 0;
}
