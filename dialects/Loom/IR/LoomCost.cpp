//===- LoomCost.cpp - CostOpInterface for every loom op -------------------===//
//
// One FLOP rule per op. The conventions (documented in docs/dialect.md): a
// matmul is 2·m·n·k per batch element; each elementary add, mul, div, max,
// exp, erf, tanh or compare is one FLOP; views and gathers are free.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

static int64_t numElements(Value value) {
  return cast<RankedTensorType>(value.getType()).getNumElements();
}

// Parameters are resident: reading one is counted at its consumers.
int64_t ParameterOp::getFlops() { return 0; }
int64_t ParameterOp::getBytesRead() { return 0; }
int64_t ParameterOp::getBytesWritten() { return 0; }

int64_t MatmulOp::getFlops() {
  RankedTensorType lhs = getLhs().getType();
  int64_t k = getTransposeLhs() ? lhs.getDimSize(lhs.getRank() - 2)
                                : lhs.getDimSize(lhs.getRank() - 1);
  // The result holds batch·m·n elements, each a k-long dot product.
  return 2 * numElements(getResult()) * k;
}

int64_t AddOp::getFlops() { return numElements(getResult()); }
int64_t SubOp::getFlops() { return numElements(getResult()); }
int64_t MulOp::getFlops() { return numElements(getResult()); }
int64_t DivOp::getFlops() { return numElements(getResult()); }

int64_t NegOp::getFlops() { return numElements(getResult()); }
int64_t ReluOp::getFlops() { return numElements(getResult()); }
int64_t ScaleOp::getFlops() { return numElements(getResult()); }
int64_t CastOp::getFlops() { return numElements(getResult()); }

// x / (1 + exp(-x)): neg, exp, add, div.
int64_t SiluOp::getFlops() { return 4 * numElements(getResult()); }

int64_t GeluOp::getFlops() {
  // none: 0.5·x·(1 + erf(x/√2)) is 5; tanh: x³ (2), ·0.044715, +x, ·√(2/π),
  // tanh, +1, ·x, ·0.5 is 9.
  int64_t perElement = getApproximate() == GeluApproximation::Tanh ? 9 : 5;
  return perElement * numElements(getResult());
}

int64_t SoftmaxOp::getFlops() {
  // max, subtract, exp, sum, divide; plus the scale and the mask select.
  int64_t perElement = 5;
  if (!getScale().isExactlyValue(1.0))
    perElement += 1;
  if (getCausal() || getMask())
    perElement += 1;
  return perElement * numElements(getResult());
}

// mean (add), subtract, square, sum, ·rstd, ·weight, +bias.
int64_t LayerNormOp::getFlops() { return 7 * numElements(getResult()); }
// square, sum, ·rstd, ·weight.
int64_t RmsNormOp::getFlops() { return 4 * numElements(getResult()); }
// compare against the threshold, multiply by the keep scale.
int64_t DropoutOp::getFlops() { return 2 * numElements(getResult()); }

// A gather reads the indices and the selected rows, not the whole table.
int64_t EmbeddingOp::getFlops() { return 0; }
int64_t EmbeddingOp::getBytesRead() {
  return tensorBytes(getIndices().getType()) + tensorBytes(getType());
}

// A reshape is a view of its input: nothing moves.
int64_t ReshapeOp::getFlops() { return 0; }
int64_t ReshapeOp::getBytesRead() { return 0; }
int64_t ReshapeOp::getBytesWritten() { return 0; }

int64_t TransposeOp::getFlops() { return 0; }
int64_t SplitOp::getFlops() { return 0; }
int64_t ConcatOp::getFlops() { return 0; }

int64_t ReduceOp::getFlops() {
  int64_t flops = numElements(getInput());
  if (getKind() == ReduceKind::Mean)
    flops += numElements(getResult());
  return flops;
}

int64_t CrossEntropyOp::getFlops() {
  // Per logit: max, subtract, exp, sum. Per token: log, subtract the target.
  return 4 * numElements(getLogits()) + 2 * numElements(getLabels());
}
