//===- LoomOps.h - loom dialect operations ----------------------*- C++ -*-===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMOPS_H
#define LOOM_DIALECTS_LOOM_IR_LOOMOPS_H

#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/dialects/Loom/IR/LoomInterfaces.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <string>

namespace loom {
/// The numpy-style broadcast of two tensor types (same element type), or
/// failure with a message through `emitError` (which may be null).
mlir::FailureOr<mlir::RankedTensorType>
inferBroadcastType(mlir::RankedTensorType lhs, mlir::RankedTensorType rhs,
                   llvm::function_ref<mlir::InFlightDiagnostic()> emitError);

/// A shape as messages and reports print it: `[4, 64, 768]`.
std::string shapeString(llvm::ArrayRef<int64_t> shape);

/// True for a non-empty dotted path of identifiers and indices
/// (`layers.3.attention.qkv.weight`), the form of parameter and RNG-site names.
bool isDottedPath(llvm::StringRef name);
} // namespace loom

#define GET_OP_CLASSES
#include "dialects/Loom/LoomOps.h.inc"

#endif // LOOM_DIALECTS_LOOM_IR_LOOMOPS_H
