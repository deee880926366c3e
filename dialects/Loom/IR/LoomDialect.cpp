//===- LoomDialect.cpp - the loom dialect ---------------------------------===//

#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

#include "mlir/Transforms/InliningUtils.h"

#include "dialects/Loom/LoomDialect.cpp.inc"
#include "dialects/Loom/LoomEnums.cpp.inc"

namespace {
/// Every loom op is pure and refers to nothing outside its operands, so any of
/// them may be inlined into a caller (the model language's blocks are calls).
struct LoomInlinerInterface : DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Region *, bool, IRMapping &) const final {
    return true;
  }
};
} // namespace

void LoomDialect::initialize() {
  addInterfaces<LoomInlinerInterface>();
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "dialects/Loom/LoomOps.cpp.inc"
      >();
}
