//===- LoomDiscardableAttrs.cpp - checks of the loom.* attributes ---------===//
//
// The attributes the front end and the passes record on ops, functions, their
// arguments and results, and the module (LoomDialect.td declares them): where
// each may sit and what its value must be. loom IR is also read from files,
// so what reads these attributes (the passes, the plan builder) relies on the
// verifier, not on who wrote them. A bound that belongs to the plan (the batch
// sizes' range, with the loomc option that sets them) stays with the plan
// builder.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/IR/BuiltinOps.h"

using namespace mlir;
using namespace loom;

namespace {

/// What an attribute describes, for the message when it sits elsewhere.
enum class Holder { AnyOp, Function, Module };

bool holds(Holder holder, Operation *op) {
  switch (holder) {
  case Holder::AnyOp:
    return true;
  case Holder::Function:
    return isa<FunctionOpInterface>(op);
  case Holder::Module:
    return isa<ModuleOp>(op);
  }
  llvm_unreachable("every holder is handled");
}

StringRef describe(Holder holder) {
  switch (holder) {
  case Holder::AnyOp:
    return "an op";
  case Holder::Function:
    return "a function";
  case Holder::Module:
    return "the module";
  }
  llvm_unreachable("every holder is handled");
}

/// An i64 integer of at least `min` (none: any), or an error at `op` whose
/// out-of-range message ends with `range` (what the values mean).
LogicalResult verifyInteger(Operation *op, StringRef name, Attribute value,
                            std::optional<int64_t> min = std::nullopt,
                            StringRef range = {}) {
  auto integer = dyn_cast<IntegerAttr>(value);
  if (!integer)
    return op->emitError() << name << " must be an integer, got " << value;
  if (!integer.getType().isSignlessInteger(64))
    return op->emitError() << name << " must be an i64 integer, got " << value;
  if (min && integer.getInt() < *min)
    return op->emitError() << name << " = " << integer.getInt()
                           << " is out of range; " << range;
  return success();
}

LogicalResult verifyUnit(Operation *op, StringRef name, Attribute value) {
  if (!isa<UnitAttr>(value))
    return op->emitError() << name
                           << " is a unit attribute (present or absent), got "
                           << value;
  return success();
}

/// Where `name`, an attribute of arguments or results, may not be put.
InFlightDiagnostic misplaced(Operation *op, StringRef name, StringRef where) {
  bool argument = name == LoomDialect::kInputArgAttr.getNameStr() ||
                  name == LoomDialect::kBoundaryInputArgAttr.getNameStr() ||
                  name == LoomDialect::kOutputGradArgAttr.getNameStr();
  bool result = name == LoomDialect::kGradResultAttr.getNameStr() ||
                name == LoomDialect::kInputGradResultAttr.getNameStr();
  InFlightDiagnostic diag = op->emitError();
  if (argument)
    diag << name << " is an attribute of a function's arguments, not of "
         << where;
  else if (result)
    diag << name << " is an attribute of a function's results, not of "
         << where;
  else if (where == "an op")
    diag << "'" << name
         << "' is not an attribute of the loom dialect (docs/dialect.md "
            "lists them)";
  else
    diag << name << " is not an attribute of " << where
         << " (docs/dialect.md lists the loom dialect's attributes)";
  return diag;
}

} // namespace

LogicalResult LoomDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  /// The integer attributes: where each sits and its least value.
  struct IntegerAttrRule {
    llvm::StringLiteral name;
    Holder holder;
    std::optional<int64_t> min;
    llvm::StringLiteral range;
  };
  static constexpr IntegerAttrRule kIntegerAttrs[] = {
      {LayerAttrHelper::getNameStr(), Holder::AnyOp, 0,
       "layers are numbered 0, 1, ... in the order they run"},
      {MicroBatchSizeAttrHelper::getNameStr(), Holder::Module, std::nullopt,
       ""},
      {GlobalBatchSizeAttrHelper::getNameStr(), Holder::Module, std::nullopt,
       ""},
      {PipelineStagesAttrHelper::getNameStr(), Holder::Module, 1,
       "a pipeline has at least one stage"},
      {PipelineChunksPerStageAttrHelper::getNameStr(), Holder::Module, 1,
       "a stage runs at least one chunk"},
      {LayersAttrHelper::getNameStr(), Holder::Function, 0,
       "it counts the model's layers"},
      {PipelineChunkAttrHelper::getNameStr(), Holder::Function, 0,
       "chunks are numbered 0, 1, ... in pipeline order"},
      {ForwardOpsAttrHelper::getNameStr(), Holder::Function, 0,
       "it counts the function's forward ops"},
      {LabelsInputAttrHelper::getNameStr(), Holder::Function, std::nullopt, ""},
      {IgnoreIndexAttrHelper::getNameStr(), Holder::Function, std::nullopt, ""},
  };

  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  auto placed = [&](Holder holder) -> LogicalResult {
    if (holds(holder, op))
      return success();
    return op->emitError() << name << " belongs on " << describe(holder)
                           << "; it is on '" << op->getName() << "'";
  };

  for (const IntegerAttrRule &rule : kIntegerAttrs)
    if (name == rule.name) {
      if (failed(placed(rule.holder)) ||
          failed(verifyInteger(op, name, value, rule.min, rule.range)))
        return failure();
      if (name != LabelsInputAttrHelper::getNameStr())
        return success();
      // The labels' argument is read by index: it must be one.
      auto fn = cast<FunctionOpInterface>(op);
      int64_t index = cast<IntegerAttr>(value).getInt();
      if (index < 0 || index >= int64_t(fn.getNumArguments()))
        return op->emitError()
               << name << " = " << index << " names no argument of @"
               << fn.getName() << ", which has " << fn.getNumArguments();
      return success();
    }
  if (name == LossSeedAttrHelper::getNameStr()) {
    if (failed(verifyUnit(op, name, value)))
      return failure();
    if (!isa<FillOp>(op))
      return op->emitError() << name
                             << " marks the loom.fill that seeds the loss's "
                                "gradient; it is on '"
                             << op->getName() << "'";
    return success();
  }
  if (name == RecomputedAttrHelper::getNameStr())
    return verifyUnit(op, name, value);
  if (name == ConfigsAttrHelper::getNameStr()) {
    if (failed(placed(Holder::Module)))
      return failure();
    auto configs = dyn_cast<DictionaryAttr>(value);
    if (!configs)
      return op->emitError()
             << name << " is a dictionary of the model's configs, got "
             << value;
    for (NamedAttribute config : configs) {
      Attribute v = config.getValue();
      bool scalar = isa<StringAttr, BoolAttr, FloatAttr>(v) ||
                    (isa<IntegerAttr>(v) &&
                     cast<IntegerAttr>(v).getType().isSignlessInteger(64));
      if (!scalar)
        return op->emitError()
               << name << ": config '" << config.getName().getValue()
               << "' must be an i64 integer, a float, a bool or a string, got "
               << v;
    }
    return success();
  }
  if (name == LayerRecomputeAttrHelper::getNameStr()) {
    if (failed(placed(Holder::Function)))
      return failure();
    auto list = dyn_cast<ArrayAttr>(value);
    if (!list || llvm::any_of(list, [](Attribute a) {
          auto s = dyn_cast<StringAttr>(a);
          return !s || (s.getValue() != "none" && s.getValue() != "selective" &&
                        s.getValue() != "full");
        }))
      return op->emitError() << name
                             << " lists, per layer, \"none\", \"selective\" "
                                "or \"full\"; got "
                             << value;
    return success();
  }
  if (name == LossNormalizerAttrHelper::getNameStr()) {
    if (failed(placed(Holder::Function)))
      return failure();
    auto normalizer = dyn_cast<StringAttr>(value);
    if (!normalizer || (normalizer.getValue() != "tokens" &&
                        normalizer.getValue() != "microbatches"))
      return op->emitError() << name
                             << " must be \"tokens\" or \"microbatches\", "
                                "got "
                             << value;
    return success();
  }
  return misplaced(op, name, "an op");
}

LogicalResult LoomDialect::verifyRegionArgAttribute(Operation *op, unsigned,
                                                    unsigned,
                                                    NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == kInputArgAttr.getNameStr()) {
    auto input = dyn_cast<StringAttr>(value);
    if (!input || input.getValue().empty())
      return op->emitError() << name
                             << " names the model input an argument holds, "
                                "a non-empty string; got "
                             << value;
    return success();
  }
  if (name == kBoundaryInputArgAttr.getNameStr() ||
      name == kOutputGradArgAttr.getNameStr())
    return verifyUnit(op, name, value);
  return misplaced(op, name, "a function's arguments");
}

LogicalResult LoomDialect::verifyRegionResultAttribute(Operation *op, unsigned,
                                                       unsigned,
                                                       NamedAttribute attr) {
  StringRef name = attr.getName().getValue();
  Attribute value = attr.getValue();
  if (name == kGradResultAttr.getNameStr()) {
    auto parameter = dyn_cast<StringAttr>(value);
    if (!parameter || !isDottedPath(parameter.getValue()))
      return op->emitError() << name
                             << " names the parameter a result is the "
                                "gradient of, a dotted path; got "
                             << value;
    return success();
  }
  if (name == kInputGradResultAttr.getNameStr())
    return verifyUnit(op, name, value);
  return misplaced(op, name, "a function's results");
}
