//===- LoomInterfaces.cpp - cost, differentiation, sharding ---------------===//

#include "loom/dialects/Loom/IR/LoomInterfaces.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;

#include "dialects/Loom/LoomOpInterfaces.cpp.inc"

namespace loom {

bool ShardingRule::isReductionFactor(int64_t factor) const {
  return llvm::none_of(resultFactors, [&](const auto &dims) {
    return llvm::is_contained(dims, factor);
  });
}

bool ShardingRule::mustStayWhole(int64_t factor) const {
  return factor == kNoFactor || llvm::is_contained(wholeFactors, factor);
}

int64_t tensorBytes(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped || !shaped.hasStaticShape())
    return 0;
  int64_t bits = shaped.getElementTypeBitWidth();
  return shaped.getNumElements() * ((bits + 7) / 8);
}

namespace detail {
double defaultBytesRead(Operation *op) {
  double bytes = 0;
  for (Type type : op->getOperandTypes())
    bytes += tensorBytes(type);
  return bytes;
}

double defaultBytesWritten(Operation *op) {
  double bytes = 0;
  for (Type type : op->getResultTypes())
    bytes += tensorBytes(type);
  return bytes;
}
} // namespace detail

} // namespace loom
