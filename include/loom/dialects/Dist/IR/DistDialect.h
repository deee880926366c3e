//===- DistDialect.h - the dist dialect and its attributes ------*- C++ -*-===//

#ifndef LOOM_DIALECTS_DIST_IR_DISTDIALECT_H
#define LOOM_DIALECTS_DIST_IR_DISTDIALECT_H

#include "loom/dialects/Loom/IR/LoomDialect.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include "dialects/Dist/DistDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Dist/DistAttrs.h.inc"

namespace loom {
namespace dist {
/// The name of the module attribute that holds the mesh.
constexpr llvm::StringLiteral kMeshAttrName = "dist.mesh";
/// The discardable attribute naming how an op's operand or result is split,
/// where the op's work depends on the rank's block (an embedding table's
/// rows, a dropout mask's global indices).
constexpr llvm::StringLiteral kShardingAttrName = "dist.sharding";

/// The mesh of the module enclosing `op`, or null.
MeshAttr getMesh(mlir::Operation *op);
} // namespace dist
} // namespace loom

#endif // LOOM_DIALECTS_DIST_IR_DISTDIALECT_H
