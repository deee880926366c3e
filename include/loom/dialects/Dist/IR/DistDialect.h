//===- DistDialect.h - the dist dialect and its attributes ------*- C++ -*-===//

#ifndef LOOM_DIALECTS_DIST_IR_DISTDIALECT_H
#define LOOM_DIALECTS_DIST_IR_DISTDIALECT_H

#include "loom/dialects/Loom/IR/LoomDialect.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include <string_view>

// The attributes first: the dialect's discardable-attribute helpers name
// MeshAttr and ShardingAttr.
#define GET_ATTRDEF_CLASSES
#include "dialects/Dist/DistAttrs.h.inc"

#include "dialects/Dist/DistDialect.h.inc"

namespace loom {
namespace dist {
/// The names of `dist.mesh` and `dist.sharding` (DistDialect's MeshAttrHelper
/// and ShardingAttrHelper), for code that reads them by name.
constexpr llvm::StringLiteral kMeshAttrName =
    DistDialect::MeshAttrHelper::getNameStr();
constexpr llvm::StringLiteral kShardingAttrName =
    DistDialect::ShardingAttrHelper::getNameStr();
static_assert(std::string_view(kShardingAttrName.data(),
                               kShardingAttrName.size()) ==
                  std::string_view(loom::kBlockShardingAttrName.data(),
                                   loom::kBlockShardingAttrName.size()),
              "the loom dialect's VJP rules carry dist.sharding by name");

/// The mesh of the module enclosing `op`, or null.
MeshAttr getMesh(mlir::Operation *op);
} // namespace dist
} // namespace loom

#endif // LOOM_DIALECTS_DIST_IR_DISTDIALECT_H
