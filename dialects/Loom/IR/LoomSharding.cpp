//===- LoomSharding.cpp - factor-based sharding rules of the loom ops -----===//
//
// Each op's rule (Shardy's OpShardingRule): every dimension of every operand
// and result names a factor, or kNoFactor where the dimension must stay
// whole for the op to run on blocks (a softmax's or a layernorm's normalised
// dimension, a split's axis). Dimensions that share a factor are split
// together; a factor only operands have is a reduction (matmul's k, the
// embedding table's rows): splitting it leaves partial sums.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Loom/IR/LoomOps.h"

using namespace mlir;

namespace loom {
namespace {

ArrayRef<int64_t> shapeOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

struct RuleBuilder {
  ShardingRule rule;
  int64_t factor(int64_t size) {
    rule.factorSizes.push_back(size);
    return int64_t(rule.factorSizes.size()) - 1;
  }
  SmallVector<int64_t> fresh(ArrayRef<int64_t> shape) {
    SmallVector<int64_t> f;
    for (int64_t d : shape)
      f.push_back(factor(d));
    return f;
  }
  /// `shape` aligned with `factors` (of `full`) at the trailing dimensions,
  /// numpy-style: broadcast (size-1) dimensions carry no factor.
  SmallVector<int64_t> aligned(ArrayRef<int64_t> shape, ArrayRef<int64_t> full,
                               ArrayRef<int64_t> factors) {
    SmallVector<int64_t> f;
    size_t lead = full.size() - shape.size();
    for (size_t d = 0; d < shape.size(); ++d)
      f.push_back(shape[d] == full[lead + d] ? factors[lead + d]
                                             : ShardingRule::kNoFactor);
    return f;
  }
  /// Every result the same rank as `factors` gets them; others none.
  void sameResults(Operation *op, ArrayRef<int64_t> factors) {
    for (Value r : op->getResults())
      rule.resultFactors.push_back(
          shapeOf(r).size() == factors.size()
              ? SmallVector<int64_t>(factors)
              : SmallVector<int64_t>(shapeOf(r).size(),
                                     ShardingRule::kNoFactor));
  }
  /// The rule, without the factors no dimension carries (a dimension made
  /// whole after `fresh` leaves its factor behind); the others keep their
  /// order, so every rule's factors are numbered as its dimensions are read.
  ShardingRule finish() {
    constexpr int64_t kUnused = ShardingRule::kNoFactor;
    SmallVector<int64_t> renumbered(rule.factorSizes.size(), kUnused);
    for (auto *tensors : {&rule.operandFactors, &rule.resultFactors})
      for (ArrayRef<int64_t> dims : *tensors)
        for (int64_t f : dims)
          if (f != ShardingRule::kNoFactor)
            renumbered[f] = 0;
    SmallVector<int64_t> sizes;
    for (auto [f, n] : llvm::enumerate(renumbered))
      if (n != kUnused) {
        n = int64_t(sizes.size());
        sizes.push_back(rule.factorSizes[f]);
      }
    for (auto *tensors : {&rule.operandFactors, &rule.resultFactors})
      for (SmallVector<int64_t> &dims : *tensors)
        for (int64_t &f : dims)
          if (f != ShardingRule::kNoFactor)
            f = renumbered[f];
    SmallVector<int64_t> whole;
    for (int64_t f : rule.wholeFactors)
      if (renumbered[f] != kUnused)
        whole.push_back(renumbered[f]);
    rule.factorSizes = std::move(sizes);
    rule.wholeFactors = std::move(whole);
    return std::move(rule);
  }
};

constexpr int64_t kNone = ShardingRule::kNoFactor;

/// [b, s, 3h] -> [b, s, heads, 3·head_dim]: dimensions group where their
/// products agree. In a group, the major (first non-1) dimensions on both
/// sides share a factor, so a split of it carries through the reshape
/// (the heads); the minor ones stay whole.
ShardingRule reshapeRule(ArrayRef<int64_t> in, ArrayRef<int64_t> out) {
  RuleBuilder b;
  SmallVector<int64_t> fin(in.size(), kNone), fout(out.size(), kNone);
  size_t i = 0, j = 0;
  while (i < in.size() || j < out.size()) {
    // Size-1 dimensions take no part in a group.
    if (i < in.size() && in[i] == 1) {
      ++i;
      continue;
    }
    if (j < out.size() && out[j] == 1) {
      ++j;
      continue;
    }
    if (i >= in.size() || j >= out.size())
      break;
    size_t gi = i, gj = j;
    int64_t pin = in[i++], pout = out[j++];
    while (pin != pout) {
      if (pin < pout && i < in.size())
        pin *= in[i++];
      else if (pout < pin && j < out.size())
        pout *= out[j++];
      else
        break;
    }
    int64_t f = b.factor(std::min(in[gi], out[gj]));
    fin[gi] = f;
    fout[gj] = f;
  }
  b.rule.operandFactors.push_back(fin);
  b.rule.resultFactors.push_back(fout);
  return b.finish();
}

/// Elementwise with numpy broadcasting: one factor per result dimension;
/// an operand's broadcast (size-1) dimensions carry none.
ShardingRule broadcastingRule(Operation *op) {
  RuleBuilder b;
  ArrayRef<int64_t> full = shapeOf(op->getResult(0));
  SmallVector<int64_t> f = b.fresh(full);
  for (Value v : op->getOperands())
    b.rule.operandFactors.push_back(b.aligned(shapeOf(v), full, f));
  b.rule.resultFactors.push_back(f);
  return b.finish();
}

/// One input, results of its shape: every dimension passes through.
ShardingRule sameShapeRule(Operation *op) {
  RuleBuilder b;
  SmallVector<int64_t> f = b.fresh(shapeOf(op->getOperand(0)));
  b.rule.operandFactors.push_back(f);
  b.sameResults(op, f);
  return b.finish();
}

/// Softmax, layernorm, rmsnorm: the last dimension is normalised over, so it
/// stays whole. A causal mask is drawn from the query's position, so the
/// queries stay whole too (a block of them would need its offset). A
/// softmax's padding mask follows the input; a norm's weight and bias are
/// whole.
ShardingRule normalisedLastDimRule(Operation *op, bool causal) {
  RuleBuilder b;
  ArrayRef<int64_t> full = shapeOf(op->getOperand(0));
  SmallVector<int64_t> f = b.fresh(full);
  f.back() = kNone;
  if (causal && f.size() >= 2)
    b.rule.wholeFactors.push_back(f[f.size() - 2]);
  b.rule.operandFactors.push_back(f);
  bool isMask = isa<SoftmaxOp>(op);
  for (Value v : op->getOperands().drop_front())
    b.rule.operandFactors.push_back(
        isMask ? b.aligned(shapeOf(v), full, f)
               : SmallVector<int64_t>(shapeOf(v).size(), kNone));
  b.sameResults(op, f);
  return b.finish();
}

/// No operands: the result's dimensions are free factors.
ShardingRule freshResultRule(Operation *op) {
  RuleBuilder b;
  b.sameResults(op, b.fresh(shapeOf(op->getResult(0))));
  return b.finish();
}

} // namespace

ShardingRule AddOp::getShardingRule() { return broadcastingRule(*this); }
ShardingRule SubOp::getShardingRule() { return broadcastingRule(*this); }
ShardingRule MulOp::getShardingRule() { return broadcastingRule(*this); }
ShardingRule DivOp::getShardingRule() { return broadcastingRule(*this); }

ShardingRule NegOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule ReluOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule SiluOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule GeluOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule ScaleOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule CastOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule DropoutOp::getShardingRule() { return sameShapeRule(*this); }
ShardingRule StopGradientOp::getShardingRule() { return sameShapeRule(*this); }

ShardingRule SoftmaxOp::getShardingRule() {
  return normalisedLastDimRule(*this, getCausal());
}
ShardingRule LayerNormOp::getShardingRule() {
  return normalisedLastDimRule(*this, /*causal=*/false);
}
ShardingRule RmsNormOp::getShardingRule() {
  return normalisedLastDimRule(*this, /*causal=*/false);
}

ShardingRule MatmulOp::getShardingRule() {
  RuleBuilder b;
  ArrayRef<int64_t> lhs = shapeOf(getLhs()), rhs = shapeOf(getRhs());
  ArrayRef<int64_t> out = shapeOf(getResult());
  size_t batch = out.size() - 2;
  SmallVector<int64_t> fb;
  for (size_t d = 0; d < batch; ++d)
    fb.push_back(b.factor(out[d]));
  int64_t m = b.factor(out[batch]), n = b.factor(out[batch + 1]);
  int64_t k = b.factor(getTransposeLhs() ? lhs[lhs.size() - 2] : lhs.back());
  // A side without batch dimensions (a weight) is broadcast over them.
  auto side = [&](ArrayRef<int64_t> shape, int64_t rows, int64_t cols) {
    SmallVector<int64_t> f;
    size_t ownBatch = shape.size() - 2;
    for (size_t d = 0; d < ownBatch; ++d)
      f.push_back(ownBatch == batch ? fb[d] : kNone);
    f.push_back(rows);
    f.push_back(cols);
    return f;
  };
  b.rule.operandFactors.push_back(getTransposeLhs() ? side(lhs, k, m)
                                                    : side(lhs, m, k));
  b.rule.operandFactors.push_back(getTransposeRhs() ? side(rhs, n, k)
                                                    : side(rhs, k, n));
  SmallVector<int64_t> fr(fb);
  fr.push_back(m);
  fr.push_back(n);
  b.rule.resultFactors.push_back(fr);
  return b.finish();
}

ShardingRule EmbeddingOp::getShardingRule() {
  // The table's rows are a reduction factor: a rank holding a block of the
  // vocabulary gathers zeros for the other ids, and the blocks sum.
  RuleBuilder b;
  ArrayRef<int64_t> table = shapeOf(getTable());
  int64_t vocab = b.factor(table[0]), hidden = b.factor(table[1]);
  SmallVector<int64_t> fi = b.fresh(shapeOf(getIndices()));
  b.rule.operandFactors.push_back({vocab, hidden});
  b.rule.operandFactors.push_back(fi);
  SmallVector<int64_t> fr(fi);
  fr.push_back(hidden);
  b.rule.resultFactors.push_back(fr);
  return b.finish();
}

ShardingRule ReshapeOp::getShardingRule() {
  return reshapeRule(shapeOf(getInput()), shapeOf(getResult()));
}

ShardingRule TransposeOp::getShardingRule() {
  RuleBuilder b;
  SmallVector<int64_t> f = b.fresh(shapeOf(getInput()));
  b.rule.operandFactors.push_back(f);
  SmallVector<int64_t> fr;
  for (int64_t p : getPermutation())
    fr.push_back(f[p]);
  b.rule.resultFactors.push_back(fr);
  return b.finish();
}

ShardingRule SplitOp::getShardingRule() {
  RuleBuilder b;
  SmallVector<int64_t> f = b.fresh(shapeOf(getInput()));
  f[getAxis()] = kNone;
  b.rule.operandFactors.push_back(f);
  b.sameResults(*this, f);
  return b.finish();
}

ShardingRule ConcatOp::getShardingRule() {
  RuleBuilder b;
  SmallVector<int64_t> f = b.fresh(shapeOf(getResult()));
  f[getAxis()] = kNone;
  for (size_t i = 0; i < getInputs().size(); ++i)
    b.rule.operandFactors.push_back(f);
  b.rule.resultFactors.push_back(f);
  return b.finish();
}

ShardingRule ReduceOp::getShardingRule() {
  // A sum over a split dimension leaves partial sums; a mean or max needs
  // the dimension whole.
  RuleBuilder b;
  ArrayRef<int64_t> in = shapeOf(getInput());
  SmallVector<int64_t> f = b.fresh(in), fr;
  for (int64_t d = 0; d < int64_t(in.size()); ++d) {
    bool reduced = llvm::is_contained(getDims(), d);
    if (reduced && getKind() != ReduceKind::Sum)
      f[d] = kNone;
    if (!reduced)
      fr.push_back(f[d]);
    else if (getKeepDims())
      fr.push_back(kNone);
  }
  b.rule.operandFactors.push_back(f);
  b.rule.resultFactors.push_back(fr);
  return b.finish();
}

ShardingRule BroadcastOp::getShardingRule() { return broadcastingRule(*this); }

ShardingRule CrossEntropyOp::getShardingRule() {
  // The class dimension may be split (the vocabulary-parallel
  // cross-entropy); the tokens' dimensions only with per-token losses. A
  // mean divides by the tokens counted over the whole batch: that form keeps
  // the classes whole (--loom-global-batch-loss makes the loss of a training
  // step a sum).
  RuleBuilder b;
  ArrayRef<int64_t> logits = shapeOf(getLogits());
  bool perToken = getReduction() == LossReduction::None;
  bool mean = getReduction() == LossReduction::Mean;
  SmallVector<int64_t> fl;
  for (size_t d = 0; d + 1 < logits.size(); ++d)
    fl.push_back(perToken ? b.factor(logits[d]) : kNone);
  SmallVector<int64_t> tokens(fl);
  fl.push_back(mean ? kNone : b.factor(logits.back()));
  b.rule.operandFactors.push_back(fl);
  b.rule.operandFactors.push_back(tokens);
  b.rule.resultFactors.push_back(perToken ? tokens : SmallVector<int64_t>());
  return b.finish();
}

ShardingRule FillOp::getShardingRule() { return freshResultRule(*this); }
ShardingRule ParameterOp::getShardingRule() { return freshResultRule(*this); }

} // namespace loom
