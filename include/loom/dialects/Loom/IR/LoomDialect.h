//===- LoomDialect.h - the loom dialect and its attributes ------*- C++ -*-===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
#define LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include <optional>

namespace loom {
namespace detail {
/// A discardable attribute of a function's arguments (or results), typed as
/// the helpers `discardableAttrs` generates for an op's own attributes are.
template <typename AttrT, bool OnResults> class FunctionAttrHelper {
public:
  constexpr explicit FunctionAttrHelper(llvm::StringLiteral name)
      : name(name) {}
  constexpr llvm::StringLiteral getNameStr() const { return name; }

  AttrT getAttr(mlir::FunctionOpInterface fn, unsigned index) const {
    if constexpr (OnResults)
      return fn.getResultAttrOfType<AttrT>(index, name);
    else
      return fn.getArgAttrOfType<AttrT>(index, name);
  }
  void setAttr(mlir::FunctionOpInterface fn, unsigned index,
               AttrT value) const {
    if constexpr (OnResults)
      fn.setResultAttr(index, name, value);
    else
      fn.setArgAttr(index, name, value);
  }
  bool isAttrPresent(mlir::FunctionOpInterface fn, unsigned index) const {
    return static_cast<bool>(getAttr(fn, index));
  }

private:
  llvm::StringLiteral name;
};
} // namespace detail

/// A discardable attribute of a function's arguments: `LoomDialect` lists them.
template <typename AttrT>
using ArgAttrHelper = detail::FunctionAttrHelper<AttrT, /*OnResults=*/false>;
/// A discardable attribute of a function's results.
template <typename AttrT>
using ResultAttrHelper = detail::FunctionAttrHelper<AttrT, /*OnResults=*/true>;

/// `dist.sharding`, which the VJP rules of the ops whose work depends on the
/// rank's block carry to their backward op. The dist dialect is built on this
/// one, so its helper (DistDialect::ShardingAttrHelper) is out of reach here;
/// DistDialect.h checks that the names agree.
constexpr llvm::StringLiteral kBlockShardingAttrName = "dist.sharding";
} // namespace loom

#include "dialects/Loom/LoomAttrInterfaces.h.inc"
#include "dialects/Loom/LoomDialect.h.inc"
#include "dialects/Loom/LoomEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Loom/LoomAttrs.h.inc"

#endif // LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
