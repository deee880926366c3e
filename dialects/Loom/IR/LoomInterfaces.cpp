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

std::optional<int64_t> elementCount(llvm::ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, d, &count))
      return std::nullopt;
  return count;
}

std::optional<int64_t> elementCount(ShapedType type) {
  if (!type.hasStaticShape())
    return std::nullopt;
  return elementCount(type.getShape());
}

static int64_t bytesPerElement(ShapedType type) {
  return (type.getElementTypeBitWidth() + 7) / 8;
}

int64_t tensorBytes(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped || !shaped.hasStaticShape())
    return 0;
  std::optional<int64_t> count = elementCount(shaped);
  int64_t bytes;
  if (!count || __builtin_mul_overflow(*count, bytesPerElement(shaped), &bytes))
    return INT64_MAX;
  return bytes;
}

double elementCountAsDouble(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped || !shaped.hasStaticShape())
    return 0;
  double count = 1;
  for (int64_t d : shaped.getShape())
    count *= static_cast<double>(d);
  return count;
}

double tensorBytesAsDouble(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  if (!shaped || !shaped.hasStaticShape())
    return 0;
  return elementCountAsDouble(type) *
         static_cast<double>(bytesPerElement(shaped));
}

namespace detail {
double defaultBytesRead(Operation *op) {
  double bytes = 0;
  for (Type type : op->getOperandTypes())
    bytes += tensorBytesAsDouble(type);
  return bytes;
}

double defaultBytesWritten(Operation *op) {
  double bytes = 0;
  for (Type type : op->getResultTypes())
    bytes += tensorBytesAsDouble(type);
  return bytes;
}
} // namespace detail

} // namespace loom
