//===- LoomDialect.cpp - the loom dialect ---------------------------------===//

#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

#include "dialects/Loom/LoomDialect.cpp.inc"
#include "dialects/Loom/LoomEnums.cpp.inc"

void LoomDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "dialects/Loom/LoomOps.cpp.inc"
      >();
}
