//===- Parser.h - the model language's parser -------------------*- C++ -*-===//

#ifndef LOOM_FRONTEND_PARSER_H
#define LOOM_FRONTEND_PARSER_H

#include "loom/Frontend/AST.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringRef.h"

namespace loom {

/// Parses one model-language file. On a syntax error, emits one diagnostic
/// (`file:line:col: error: ...`, through the context's diagnostic engine) and
/// returns failure. Never crashes on any input: empty, binary or truncated.
mlir::FailureOr<ast::File> parseModelFile(llvm::StringRef source,
                                          llvm::StringRef filename,
                                          mlir::MLIRContext *context);

} // namespace loom

#endif // LOOM_FRONTEND_PARSER_H
