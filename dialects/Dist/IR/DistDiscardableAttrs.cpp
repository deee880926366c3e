//===- DistDiscardableAttrs.cpp - checks of the dist.* attributes ---------===//
//
// The attributes the sharding and partition passes record (DistOps.td
// declares them): where each may sit and what its value must be, so that
// --loom-partition and the plan builder can index shardings by operand and
// dimension in a verified module, whoever wrote it.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Dist/IR/DistDialect.h"

#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace loom::dist;

/// `dist.in_shardings` or `dist.out_shardings`: one entry per operand (or
/// result), a sharding of its rank for a tensor, a unit for anything else.
static LogicalResult verifyShardingList(Operation *op, StringRef name,
                                        Attribute value, TypeRange types,
                                        StringRef what) {
  auto list = dyn_cast<ArrayAttr>(value);
  if (!list)
    return op->emitError() << name << " must be an array of #dist.sharding, "
                           << "one per " << what << "; got " << value;
  if (list.size() != types.size())
    return op->emitError() << name << " has " << list.size()
                           << (list.size() == 1 ? " entry" : " entries")
                           << " for the " << types.size() << " " << what
                           << "s of '" << op->getName()
                           << "'; it needs one per " << what;
  for (auto [i, entry, type] : llvm::enumerate(list, types)) {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor) {
      if (!isa<UnitAttr, ShardingAttr>(entry))
        return op->emitError()
               << name << " entry " << i
               << " must be a #dist.sharding or unit, got " << entry;
      continue;
    }
    auto sharding = dyn_cast<ShardingAttr>(entry);
    if (!sharding)
      return op->emitError() << name << " entry " << i << " is for " << what
                             << " " << i << ", a tensor: it must be a "
                             << "#dist.sharding, got " << entry;
    if (int64_t(sharding.getDims().size()) != tensor.getRank())
      return op->emitError()
             << name << " entry " << i << " " << sharding << " has "
             << sharding.getDims().size() << " dimensions; " << what << " " << i
             << " " << tensor << " has " << tensor.getRank();
  }
  return success();
}

LogicalResult DistDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  auto onModule = [&]() -> LogicalResult {
    if (isa<ModuleOp>(op))
      return success();
    return op->emitError() << name << " belongs on the module; it is on '"
                           << op->getName() << "'";
  };

  if (name == MeshAttrHelper::getNameStr()) {
    if (failed(onModule()))
      return failure();
    if (!isa<MeshAttr>(value))
      return op->emitError() << name << " must be a #dist.mesh, got " << value;
    return success();
  }
  if (name == ShardingAttrHelper::getNameStr()) {
    if (!isa<ShardingAttr>(value))
      return op->emitError()
             << name << " must be a #dist.sharding, got " << value;
    return success();
  }
  if (name == InShardingsAttrHelper::getNameStr())
    return verifyShardingList(op, name, value, op->getOperandTypes(),
                              "operand");
  if (name == OutShardingsAttrHelper::getNameStr())
    return verifyShardingList(op, name, value, op->getResultTypes(), "result");
  if (name == SequenceParallelAttrHelper::getNameStr()) {
    if (failed(onModule()))
      return failure();
    if (!isa<UnitAttr>(value))
      return op->emitError()
             << name << " is a unit attribute (present or absent), got "
             << value;
    return success();
  }
  return op->emitError() << "'" << name
                         << "' is not an attribute of the dist dialect "
                            "(docs/parallelism.md lists them)";
}
