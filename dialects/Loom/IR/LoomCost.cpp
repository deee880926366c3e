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

// Counts are doubles, the product taken in double: an int64 product of huge
// dimensions would overflow (undefined), and FLOPs exceed int64 anyway.
static double numElements(Value value) {
  return elementCountAsDouble(value.getType());
}

// Parameters are resident: reading one is counted at its consumers.
double ParameterOp::getFlops() { return 0; }
double ParameterOp::getBytesRead() { return 0; }
double ParameterOp::getBytesWritten() { return 0; }

double MatmulOp::getFlops() {
  RankedTensorType lhs = getLhs().getType();
  double k = getTransposeLhs() ? lhs.getDimSize(lhs.getRank() - 2)
                               : lhs.getDimSize(lhs.getRank() - 1);
  // The result holds batch·m·n elements, each a k-long dot product.
  return 2 * numElements(getResult()) * k;
}

double AddOp::getFlops() { return numElements(getResult()); }
double SubOp::getFlops() { return numElements(getResult()); }
double MulOp::getFlops() { return numElements(getResult()); }
double DivOp::getFlops() { return numElements(getResult()); }

double NegOp::getFlops() { return numElements(getResult()); }
double ReluOp::getFlops() { return numElements(getResult()); }
double ScaleOp::getFlops() { return numElements(getResult()); }
double CastOp::getFlops() { return numElements(getResult()); }

// x / (1 + exp(-x)): neg, exp, add, div.
double SiluOp::getFlops() { return 4 * numElements(getResult()); }

double GeluOp::getFlops() {
  // none: 0.5·x·(1 + erf(x/√2)) is 5; tanh: x³ (2), ·0.044715, +x, ·√(2/π),
  // tanh, +1, ·x, ·0.5 is 9.
  double perElement = getApproximate() == GeluApproximation::Tanh ? 9 : 5;
  return perElement * numElements(getResult());
}

double SoftmaxOp::getFlops() {
  // max, subtract, exp, sum, divide; plus the scale and a select per mask.
  double perElement = 5;
  if (!getScale().isExactlyValue(1.0))
    perElement += 1;
  if (getCausal())
    perElement += 1;
  if (getMask())
    perElement += 1;
  return perElement * numElements(getResult());
}

// mean (add), subtract, square, sum, ·rstd, ·weight, +bias.
double LayerNormOp::getFlops() { return 7 * numElements(getResult()); }
// square, sum, ·rstd, ·weight.
double RmsNormOp::getFlops() { return 4 * numElements(getResult()); }
// compare against the threshold, multiply by the keep scale.
double DropoutOp::getFlops() { return 2 * numElements(getResult()); }

// A gather reads the indices and the selected rows, not the whole table.
double EmbeddingOp::getFlops() { return 0; }
double EmbeddingOp::getBytesRead() {
  return tensorBytesAsDouble(getIndices().getType()) +
         tensorBytesAsDouble(getType());
}

// A reshape is a view of its input: nothing moves.
double ReshapeOp::getFlops() { return 0; }
double ReshapeOp::getBytesRead() { return 0; }
double ReshapeOp::getBytesWritten() { return 0; }

double TransposeOp::getFlops() { return 0; }
double SplitOp::getFlops() { return 0; }
double ConcatOp::getFlops() { return 0; }

double ReduceOp::getFlops() {
  double flops = numElements(getInput());
  if (getKind() == ReduceKind::Mean)
    flops += numElements(getResult());
  return flops;
}

double CrossEntropyOp::getFlops() {
  // Per logit: max, subtract, exp, sum. Per token: log, subtract the target.
  return 4 * numElements(getLogits()) + 2 * numElements(getLabels());
}

// Constants and broadcasts move data only.
double FillOp::getFlops() { return 0; }
double BroadcastOp::getFlops() { return 0; }

// Backward ops, by the same convention (one FLOP per elementary operation).
// dy · (x > 0).
double ReluGradOp::getFlops() { return 2 * numElements(getResult()); }
// s = sigmoid(x) (3), s · (1 + x · (1 - s)) (4), · dy.
double SiluGradOp::getFlops() { return 8 * numElements(getResult()); }
double GeluGradOp::getFlops() {
  // none: 0.5·(1 + erf(x/√2)) + x·exp(-x²/2)/√(2π) is 10 with the · dy;
  // tanh: the tanh argument (4), tanh, 1 - t², and the products, 16.
  double perElement = getApproximate() == GeluApproximation::Tanh ? 16 : 10;
  return perElement * numElements(getResult());
}
// dy · y, the row sum, dy - sum, · y, · scale.
double SoftmaxGradOp::getFlops() { return 5 * numElements(getResult()); }
// The mean and variance again (4), xhat (2), g = dy · w, two row means of g
// and g · xhat, and dx (4): 13; dweight and dbias accumulate 3 more.
double LayerNormGradOp::getFlops() { return 16 * numElements(getInputGrad()); }
// rstd again (2), g = dy · w, mean(g · x) (2), dx (4), dweight (2).
double RmsNormGradOp::getFlops() { return 11 * numElements(getInputGrad()); }
double DropoutGradOp::getFlops() { return 2 * numElements(getResult()); }
// One add per element of dy into the table.
double EmbeddingGradOp::getFlops() { return numElements(getGrad()); }
// Per logit: max, subtract, exp, sum, divide, subtract the one-hot, · dloss.
double CrossEntropyGradOp::getFlops() { return 7 * numElements(getLogits()); }

double StopGradientOp::getFlops() { return 0; }
// One compare per logit, as the reduce max it stands for.
double CrossEntropyMaxOp::getFlops() { return numElements(getLogits()); }
// max subtraction, exp, sum; the label compare.
double CrossEntropyPartialsOp::getFlops() { return 3 * numElements(getLogits()); }
double CrossEntropyPartialsGradOp::getFlops() {
  return 4 * numElements(getLogits());
}
double CrossEntropyCombineOp::getFlops() { return 2 * numElements(getSumexp()); }
double CrossEntropyCombineGradOp::getFlops() {
  return 2 * numElements(getSumexp());
}

// A fusion region costs what its ops cost: fusing saves memory traffic, not
// arithmetic, and the plan's FLOPs per step must not change with fusion.
double FusedOp::getFlops() {
  double flops = 0;
  for (Operation &op : getBody().front().without_terminator())
    if (auto cost = dyn_cast<CostOpInterface>(op))
      flops += cost.getFlops();
  return flops;
}
double YieldOp::getFlops() { return 0; }
