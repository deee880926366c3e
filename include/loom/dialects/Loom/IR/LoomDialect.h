//===- LoomDialect.h - the loom dialect and its attributes ------*- C++ -*-===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
#define LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectImplementation.h"

#include <optional>

#include "dialects/Loom/LoomAttrInterfaces.h.inc"
#include "dialects/Loom/LoomDialect.h.inc"
#include "dialects/Loom/LoomEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Loom/LoomAttrs.h.inc"

#endif // LOOM_DIALECTS_LOOM_IR_LOOMDIALECT_H
