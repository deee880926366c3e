//===- ModelBuilder.h - model language to the loom dialect ------*- C++ -*-===//

#ifndef LOOM_FRONTEND_MODELBUILDER_H
#define LOOM_FRONTEND_MODELBUILDER_H

#include "loom/Frontend/AST.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>
#include <utility>
#include <vector>

namespace loom {

struct ModelOptions {
  /// `-D name=value` overrides, in command-line order.
  std::vector<std::pair<std::string, std::string>> overrides;
  /// Sequences per data-parallel rank per microbatch: the `batch` dimension.
  int64_t microBatchSize = 1;
  /// The mesh's tensor-parallel size: the model language's `tp`.
  int64_t tensorParallel = 1;
  /// Sequences per step; 0 means the micro-batch size.
  int64_t globalBatchSize = 0;
  /// Which model of the file to build; "" means its only one.
  std::string modelName;
};

/// Builds the model of `file` as a loom-dialect module: one `func.func` named
/// after the model, whose arguments are its inputs and whose results are what
/// it returns, with every block expanded and every `repeat` unrolled, and
/// every parameter named by its place (`layers.3.attention.qkv.weight`).
/// `library` holds the standard blocks; a block of `file` replaces the
/// library's block of the same name. Errors are emitted as diagnostics at the
/// source location (with a note for each enclosing block call).
mlir::FailureOr<mlir::OwningOpRef<mlir::ModuleOp>>
buildModel(const ast::File &file, const ast::File &library,
           const ModelOptions &options, mlir::MLIRContext *context);

/// The standard library's source text (lib/Frontend/stdlib/nn.loom) and the
/// name its diagnostics use.
llvm::StringRef standardLibrarySource();
llvm::StringRef standardLibraryName();

} // namespace loom

#endif // LOOM_FRONTEND_MODELBUILDER_H
