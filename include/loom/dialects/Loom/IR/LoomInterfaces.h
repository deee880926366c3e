//===- LoomInterfaces.h - cost, differentiation, sharding -------*- C++ -*-===//

#ifndef LOOM_DIALECTS_LOOM_IR_LOOMINTERFACES_H
#define LOOM_DIALECTS_LOOM_IR_LOOMINTERFACES_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypeInterfaces.h"
#include "mlir/IR/OpDefinition.h"
#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <optional>

namespace loom {

/// A factor-based sharding rule, in the notation of Shardy's OpShardingRule:
/// `([i, k], [k, j]) -> ([i, j]) {i=8, j=16, k=32}` for a matmul. Each tensor
/// dimension names the factor it carries (kNoFactor for a dimension that must
/// stay whole). A factor present in operands but absent from every result is a
/// reduction factor: sharding it leaves partial sums.
struct ShardingRule {
  static constexpr int64_t kNoFactor = -1;

  /// The size of each factor. Every factor is carried by some dimension;
  /// factors are numbered in the order the dimensions are read.
  llvm::SmallVector<int64_t> factorSizes;
  /// For each operand, for each of its dimensions, a factor index.
  llvm::SmallVector<llvm::SmallVector<int64_t>> operandFactors;
  /// For each result, for each of its dimensions, a factor index.
  llvm::SmallVector<llvm::SmallVector<int64_t>> resultFactors;

  /// Factors that must stay whole although they relate dimensions (a causal
  /// softmax's queries: the mask depends on the query's position). They
  /// still say which dimensions correspond, e.g. to follow the sequence.
  llvm::SmallVector<int64_t> wholeFactors;

  /// True when `factor` appears in no result (sharding it needs a reduction).
  bool isReductionFactor(int64_t factor) const;
  /// True when `factor` may not be split.
  bool mustStayWhole(int64_t factor) const;
};

namespace detail {
/// Bytes of every tensor operand (the default of CostOpInterface).
double defaultBytesRead(mlir::Operation *op);
/// Bytes of every tensor result (the default of CostOpInterface).
double defaultBytesWritten(mlir::Operation *op);
} // namespace detail

/// The most elements a tensor may have, in the model language and in loom IR
/// (--loom-verify-model): far above any real model's tensor, and low enough
/// that element counts, byte sizes and offsets fit in int64 with room to add.
constexpr int64_t kMaxTensorElements = int64_t(1) << 48;

/// The element count of a static shape, or std::nullopt when it does not fit
/// in int64 (ShapedType::getNumElements would overflow, which is undefined).
std::optional<int64_t> elementCount(llvm::ArrayRef<int64_t> shape);
std::optional<int64_t> elementCount(mlir::ShapedType type);

/// Bytes of a statically shaped tensor; i1 is stored as one byte. Saturates at
/// INT64_MAX: callers that need the exact size check it first (a verified
/// model's tensors have at most kMaxTensorElements elements).
int64_t tensorBytes(mlir::Type type);
/// The same as a double, for the cost model: never overflows, exact to 2^53.
double tensorBytesAsDouble(mlir::Type type);
/// Elements of a statically shaped tensor as a double (the cost model's
/// counts): the product of the dimensions, which never overflows.
double elementCountAsDouble(mlir::Type type);

} // namespace loom

#include "dialects/Loom/LoomOpInterfaces.h.inc"

#endif // LOOM_DIALECTS_LOOM_IR_LOOMINTERFACES_H
