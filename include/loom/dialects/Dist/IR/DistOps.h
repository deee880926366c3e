//===- DistOps.h - dist dialect operations ----------------------*- C++ -*-===//

#ifndef LOOM_DIALECTS_DIST_IR_DISTOPS_H
#define LOOM_DIALECTS_DIST_IR_DISTOPS_H

#include "loom/dialects/Dist/IR/DistDialect.h"
#include "loom/dialects/Loom/IR/LoomInterfaces.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "dialects/Dist/DistOps.h.inc"

#endif // LOOM_DIALECTS_DIST_IR_DISTOPS_H
