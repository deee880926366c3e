//===- Shard.cpp - --loom-shard -------------------------------------------===//
//
// Decides how every value of a global-shape program is split over the mesh:
// Megatron's rules for parameters, factor propagation for everything else
// (see Passes.td for the whole story).
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "llvm/ADT/StringSet.h"

#define DEBUG_TYPE "loom-shard"

namespace loom {
#define GEN_PASS_DEF_LOOMSHARD
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom::dist;

namespace loom {

FailureOr<SmallVector<std::pair<std::string, int64_t>>>
parseMeshSpec(StringRef spec, std::string &error) {
  SmallVector<std::pair<std::string, int64_t>> axes = {
      {"dp", 1}, {"pp", 1}, {"tp", 1}};
  llvm::StringSet<> seen;
  SmallVector<StringRef> parts;
  spec.split(parts, ',', -1, /*KeepEmpty=*/false);
  for (StringRef part : parts) {
    auto [name, value] = part.trim().split('=');
    name = name.trim();
    int64_t size = 0;
    auto axis = llvm::find_if(axes, [&](auto &a) { return a.first == name; });
    if (axis == axes.end()) {
      error = "unknown mesh axis '" + name.str() + "' in '" + spec.str() +
              "'; the axes are dp, pp and tp (e.g. --mesh dp=2,tp=4)";
      return failure();
    }
    if (value.trim().getAsInteger(10, size) || size < 1) {
      error = "mesh axis '" + name.str() + "' needs a size >= 1, as in " +
              name.str() + "=2 (got '" + part.str() + "')";
      return failure();
    }
    if (!seen.insert(name).second) {
      error = "mesh axis '" + name.str() + "' is given twice in '" +
              spec.str() + "'";
      return failure();
    }
    axis->second = size;
  }
  // The runtime runs at most 2^20 ranks (runtime/PlanFile.cpp); checking the
  // product here also keeps every later product of the sizes inside int64.
  constexpr int64_t kMaxRanks = int64_t(1) << 20;
  int64_t ranks = 1;
  for (auto &[name, size] : axes) {
    if (size > kMaxRanks / ranks) {
      error = "the mesh '" + spec.str() + "' has more than " +
              std::to_string(kMaxRanks) +
              " ranks (dp x pp x tp); use smaller axis sizes";
      return failure();
    }
    ranks *= size;
  }
  return axes;
}

namespace {

constexpr int64_t kNone = ShardingRule::kNoFactor;

RankedTensorType tensorType(Value v) {
  return dyn_cast<RankedTensorType>(v.getType());
}

bool isParameter(Value v) { return v.getDefiningOp<ParameterOp>() != nullptr; }

/// Megatron splits a linear by its output features when what reads the
/// output can work on the split: another linear (then row-parallel) or the
/// loss (vocabulary-parallel), through elementwise ops and reshapes. A
/// linear whose output next meets an op that needs its features whole (a
/// layernorm, as in BERT's masked-LM head) stays whole: splitting it would
/// only add an all-gather.
bool splitOutputPays(Value v, DenseMap<Value, bool> &memo) {
  auto [it, inserted] = memo.try_emplace(v, false);
  if (!inserted)
    return it->second;
  bool pays = false;
  for (Operation *user : v.getUsers()) {
    if (isa<MatmulOp, CrossEntropyOp>(user)) {
      pays = true;
      break;
    }
    if (isa<LayerNormOp, RmsNormOp, SoftmaxOp, ReduceOp, func::ReturnOp>(user))
      continue;
    for (Value r : user->getResults())
      pays = pays || splitOutputPays(r, memo);
    if (pays)
      break;
  }
  memo[v] = pays;
  return pays;
}

/// What every divisibility error ends with.
constexpr llvm::StringLiteral kDivisibleAdvice =
    "With tensor parallelism the attention heads, the ffn size and the "
    "padded vocabulary must be divisible by tp";

class Sharder {
public:
  Sharder(MeshAttr mesh, bool sequenceParallel)
      : mesh(mesh), ctx(mesh.getContext()), sp(sequenceParallel) {
    tp = mesh.getAxisSize("tp").value_or(1);
  }

  LogicalResult run(func::FuncOp fn) {
    // The model's inputs arrive whole on every rank; an integer input
    // [batch, seq, ...] carries the sequence in dimension 1.
    for (BlockArgument arg : fn.getArguments()) {
      auto type = tensorType(arg);
      if (!type)
        continue;
      have[arg] = replicated(type.getRank());
      if (type.getRank() >= 2 && type.getElementType().isInteger(32))
        seqDim[arg] = 1;
    }
    for (Operation &op : fn.front())
      if (failed(decide(&op)))
        return failure();
    // A parameter nothing reads stays whole.
    for (auto param : fn.front().getOps<ParameterOp>())
      if (!have.count(param))
        annotate(param, {}, {replicated(param.getType().getRank())});
    return success();
  }

private:
  ShardingAttr replicated(int64_t rank) {
    return ShardingAttr::getReplicated(ctx, rank);
  }
  ShardingAttr make(ArrayRef<StringRef> dims, ArrayRef<StringRef> partial) {
    SmallVector<StringAttr> d, p;
    for (StringRef a : dims)
      d.push_back(StringAttr::get(ctx, a));
    for (StringRef a : partial)
      p.push_back(StringAttr::get(ctx, a));
    return ShardingAttr::get(ctx, d, p);
  }
  ShardingAttr shardingOf(Value v) {
    ShardingAttr s = have.lookup(v);
    if (!s)
      if (auto type = tensorType(v))
        return replicated(type.getRank());
    return s;
  }
  /// A parameter not decided yet. A tied parameter's declarations share one
  /// decision: the first use of any of them decides them all.
  bool isOpenParameter(Value v) {
    auto param = v.getDefiningOp<ParameterOp>();
    if (!param || have.count(v))
      return false;
    auto known = parameters.find(param.getName());
    if (known == parameters.end())
      return true;
    have[v] = known->second;
    return false;
  }
  int64_t size(StringRef axis) { return mesh.getAxisSize(axis).value_or(1); }

  LogicalResult decide(Operation *op);
  LogicalResult decideParameter(ParameterOp param);
  void annotate(Operation *op, ArrayRef<Attribute> in, ArrayRef<Attribute> out) {
    DistDialect::InShardingsAttrHelper(ctx).setAttr(op,
                                                    ArrayAttr::get(ctx, in));
    DistDialect::OutShardingsAttrHelper(ctx).setAttr(op,
                                                     ArrayAttr::get(ctx, out));
  }

  MeshAttr mesh;
  MLIRContext *ctx;
  bool sp;
  int64_t tp = 1;
  DenseMap<Value, ShardingAttr> have;
  DenseMap<Value, int64_t> seqDim;
  llvm::StringMap<ShardingAttr> parameters;
  DenseMap<Value, bool> pays;
};

LogicalResult Sharder::decideParameter(ParameterOp param) {
  auto type = param.getType();
  ShardingAttr pinned = DistDialect::ShardingAttrHelper(ctx).getAttr(param);
  if (pinned) {
    if (int64_t(pinned.getDims().size()) != type.getRank() ||
        !pinned.getPartial().empty())
      return param.emitError()
             << "the sharding pinned on parameter '" << param.getName()
             << "' has " << pinned.getDims().size()
             << " dimensions and the parameter " << type.getRank()
             << "; give one entry per dimension";
    for (auto [d, axis] : llvm::enumerate(pinned.getDims())) {
      if (axis.empty())
        continue;
      std::optional<int64_t> n = mesh.getAxisSize(axis);
      if (!n)
        return param.emitError() << "parameter '" << param.getName()
                                 << "' is pinned to mesh axis '"
                                 << axis.getValue() << "', which the mesh "
                                 << mesh << " lacks";
      if (type.getDimSize(d) % *n)
        return param.emitError()
               << "parameter '" << param.getName() << "' is pinned to split "
               << "dimension " << d << " (" << type.getDimSize(d)
               << ") over '" << axis.getValue() << "', which has " << *n
               << " ranks and does not divide it";
    }
    auto [it, inserted] = parameters.try_emplace(param.getName(), pinned);
    if (!inserted && it->second != pinned)
      return param.emitError() << "parameter '" << param.getName()
                               << "' is pinned to " << pinned
                               << " here and " << it->second
                               << " elsewhere; a tied parameter has one "
                                  "sharding";
  }
  auto known = parameters.find(param.getName());
  if (known == parameters.end())
    return success(); // decided by its first use
  have[param] = known->second;
  annotate(param, {}, {known->second});
  return success();
}

LogicalResult Sharder::decide(Operation *op) {
  if (auto param = dyn_cast<ParameterOp>(op))
    return decideParameter(param);

  // The op's factor rule (ShardingRuleOpInterface) is all this pass knows of
  // how its dimensions relate.
  std::optional<ShardingRule> rule;
  if (auto ruleOp = dyn_cast<ShardingRuleOpInterface>(op))
    rule = ruleOp.getShardingRule();
  SmallVector<Attribute> in, out;
  if (!rule) {
    // No rule: the op runs on whole values.
    for (Value v : op->getOperands()) {
      auto type = tensorType(v);
      if (!type) {
        in.push_back(UnitAttr::get(ctx));
        continue;
      }
      ShardingAttr s = shardingOf(v);
      if (llvm::any_of(s.getDims(), [](StringAttr a) { return !a.empty(); }) &&
          !isa<func::ReturnOp>(op))
        op->emitWarning() << "'" << op->getName()
                          << "' has no sharding rule: its split operands are "
                             "all-gathered and it runs on whole values";
      if (isOpenParameter(v)) {
        auto param = v.getDefiningOp<ParameterOp>();
        parameters[param.getName()] = replicated(type.getRank());
        have[v] = replicated(type.getRank());
        annotate(param, {}, {have[v]});
      }
      in.push_back(replicated(type.getRank()));
    }
    for (Value r : op->getResults()) {
      auto type = tensorType(r);
      ShardingAttr s = type ? replicated(type.getRank()) : ShardingAttr();
      if (s)
        have[r] = s;
      out.push_back(s ? Attribute(s) : UnitAttr::get(ctx));
    }
    annotate(op, in, out);
    return success();
  }

  int64_t numFactors = rule->factorSizes.size();
  SmallVector<StringRef> factorAxis(numFactors);
  llvm::StringSet<> usedAxes;
  // Every dimension a factor appears at, to check divisibility.
  auto dimsOf = [&](int64_t f) {
    SmallVector<int64_t> sizes;
    for (auto [i, dims] : llvm::enumerate(rule->operandFactors))
      for (auto [d, g] : llvm::enumerate(dims))
        if (g == f)
          sizes.push_back(tensorType(op->getOperand(i)).getDimSize(d));
    for (auto [i, dims] : llvm::enumerate(rule->resultFactors))
      for (auto [d, g] : llvm::enumerate(dims))
        if (g == f)
          sizes.push_back(tensorType(op->getResult(i)).getDimSize(d));
    sizes.push_back(rule->factorSizes[f]);
    return sizes;
  };
  auto divides = [&](int64_t f, StringRef axis) {
    return llvm::all_of(dimsOf(f), [&](int64_t s) { return s % size(axis) == 0; });
  };
  auto assign = [&](int64_t f, StringRef axis) {
    if (rule->mustStayWhole(f))
      return false;
    if (factorAxis[f] == axis)
      return true;
    if (!factorAxis[f].empty() || usedAxes.contains(axis) || !divides(f, axis))
      return false;
    factorAxis[f] = axis;
    usedAxes.insert(axis);
    return true;
  };
  auto divisibilityError = [&](int64_t f, StringRef axis) {
    InFlightDiagnostic diag = op->emitError();
    diag << "cannot split '" << op->getName() << "' over mesh axis '" << axis
         << "' (" << size(axis) << " ranks): a dimension of size ";
    for (int64_t s : dimsOf(f))
      if (s % size(axis)) {
        diag << s;
        break;
      }
    diag << " would be split and " << size(axis)
         << " does not divide it. " << kDivisibleAdvice
         << "; choose another --mesh";
    return diag;
  };

  // 1. Parameters already decided (pinned, or tied to an earlier use).
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    if (!isParameter(v) || isOpenParameter(v))
      continue;
    for (auto [d, axis] : llvm::enumerate(shardingOf(v).getDims()))
      if (!axis.empty())
        assign(rule->operandFactors[i][d], axis);
  }

  // 2. Megatron's choices for parameters at their first use.
  if (tp > 1) {
    if (auto mm = dyn_cast<MatmulOp>(op); mm && isOpenParameter(mm.getRhs())) {
      int64_t kLhs = mm.getTransposeLhs() ? tensorType(mm.getLhs()).getRank() - 2
                                          : tensorType(mm.getLhs()).getRank() - 1;
      bool rowParallel = !shardingOf(mm.getLhs()).getDimAxis(kLhs).empty();
      int64_t n = rule->resultFactors[0].back();
      if (!rowParallel && splitOutputPays(mm.getResult(), pays) &&
          !assign(n, "tp") && factorAxis[n].empty() && !divides(n, "tp")) {
        auto weight = mm.getRhs().getDefiningOp<ParameterOp>();
        return op->emitError()
               << "the column-parallel linear with weight '"
               << weight.getName() << "' " << shapeString(weight.getType().getShape())
               << " splits its " << rule->factorSizes[n]
               << " output features over tp=" << tp
               << ", which does not divide them. " << kDivisibleAdvice
               << "; choose another --mesh (or pin the weight whole with "
                  "shard(none, none))";
      }
    }
    // A vocabulary (at least as many rows as features) is split by rows; a
    // small table (BERT's token types, a position table) stays whole, as
    // in Megatron.
    if (auto emb = dyn_cast<EmbeddingOp>(op);
        emb && isOpenParameter(emb.getTable()) &&
        emb.getTable().getType().getDimSize(0) >=
            emb.getTable().getType().getDimSize(1)) {
      int64_t vocab = rule->operandFactors[0][0];
      if (!assign(vocab, "tp")) {
        int64_t rows = tensorType(emb.getTable()).getDimSize(0);
        return op->emitError()
               << "the vocabulary-parallel embedding splits the "
               << rows << " rows of '"
               << emb.getTable().getDefiningOp<ParameterOp>().getName()
               << "' over tp=" << tp
               << ", which does not divide them: pad the vocabulary to a "
                  "multiple of tp (Megatron pads to a multiple of 128 x tp)";
      }
    }
  }

  // 3. Sequence parallelism: a partial sum with a sequence dimension is
  //    resolved by a reduce-scatter along it.
  if (sp)
    for (auto [i, v] : llvm::enumerate(op->getOperands())) {
      ShardingAttr s = shardingOf(v);
      auto seq = seqDim.find(v);
      if (!s || s.getPartial().empty() || seq == seqDim.end())
        continue;
      StringRef axis = s.getPartial()[0];
      int64_t f = rule->operandFactors[i][seq->second];
      if (!assign(f, axis) && !rule->mustStayWhole(f) && factorAxis[f].empty() &&
          !usedAxes.contains(axis) && !divides(f, axis))
        return op->emitError()
               << "sequence parallelism splits the sequence ("
               << tensorType(v).getDimSize(seq->second) << ") over '" << axis
               << "' (" << size(axis)
               << " ranks), which does not divide it; choose a sequence "
                  "length divisible by tp, or drop --sequence-parallel";
    }

  // 4. Splits of activations propagate through the factors.
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    if (isParameter(v))
      continue;
    ShardingAttr s = shardingOf(v);
    if (!s)
      continue;
    for (auto [d, axisAttr] : llvm::enumerate(s.getDims())) {
      StringRef axis = axisAttr.getValue();
      if (axis.empty())
        continue;
      int64_t f = rule->operandFactors[i][d];
      if (rule->mustStayWhole(f)) {
        op->emitWarning() << "dimension " << d << " of operand " << i
                          << " is split over '" << axis << "', but '"
                          << op->getName()
                          << "' needs it whole: it is all-gathered";
        continue;
      }
      if (assign(f, axis))
        continue;
      if (factorAxis[f].empty() && !usedAxes.contains(axis))
        return divisibilityError(f, axis);
      // Otherwise another operand's split wins; this one is resharded.
    }
  }

  // 5. Parameters at their first use take the factors' splits.
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    if (!isOpenParameter(v))
      continue;
    SmallVector<StringRef> dims;
    for (int64_t f : rule->operandFactors[i])
      dims.push_back(f == kNone ? StringRef() : factorAxis[f]);
    ShardingAttr s = make(dims, {});
    auto param = v.getDefiningOp<ParameterOp>();
    parameters[param.getName()] = s;
    have[v] = s;
    annotate(param, {}, {s});
  }

  if (auto emb = dyn_cast<EmbeddingOp>(op)) {
    int64_t hidden = rule->operandFactors[0][1];
    if (!factorAxis[hidden].empty())
      return op->emitError()
             << "the embedding table '"
             << emb.getTable().getDefiningOp<ParameterOp>().getName()
             << "' would be split along its features; an embedding table "
                "is split by rows (vocabulary-parallel) or kept whole: pin "
                "it shard(tp, none) or shard(none, none)";
  }

  // 6. What the op needs of its operands, and what its results are.
  for (auto [i, v] : llvm::enumerate(op->getOperands())) {
    SmallVector<StringRef> dims;
    for (int64_t f : rule->operandFactors[i])
      dims.push_back(f == kNone ? StringRef() : factorAxis[f]);
    in.push_back(make(dims, {}));
  }
  SmallVector<StringRef> partial;
  // The vocabulary-parallel cross-entropy reduces over the classes itself.
  if (!isa<CrossEntropyOp>(op))
    for (int64_t f = 0; f < numFactors; ++f)
      if (!factorAxis[f].empty() && rule->isReductionFactor(f))
        partial.push_back(factorAxis[f]);
  for (auto [i, r] : llvm::enumerate(op->getResults())) {
    SmallVector<StringRef> dims;
    for (int64_t f : rule->resultFactors[i])
      dims.push_back(f == kNone ? StringRef() : factorAxis[f]);
    ShardingAttr s = make(dims, partial);
    have[r] = s;
    out.push_back(s);
    // The sequence dimension follows its factor.
    for (auto [j, v] : llvm::enumerate(op->getOperands())) {
      auto seq = seqDim.find(v);
      if (seq == seqDim.end())
        continue;
      int64_t f = rule->operandFactors[j][seq->second];
      if (f == kNone)
        continue;
      auto pos = llvm::find(rule->resultFactors[i], f);
      if (pos != rule->resultFactors[i].end()) {
        seqDim[r] = pos - rule->resultFactors[i].begin();
        break;
      }
    }
  }
  annotate(op, in, out);
  return success();
}

struct LoomShardPass : impl::LoomShardBase<LoomShardPass> {
  using LoomShardBase::LoomShardBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    std::string error;
    auto axes = parseMeshSpec(meshSpec, error);
    if (failed(axes)) {
      module.emitError() << "--loom-shard: " << error;
      return signalPassFailure();
    }
    SmallVector<StringAttr> names;
    SmallVector<int64_t> sizes;
    for (auto &[name, size] : *axes) {
      names.push_back(StringAttr::get(ctx, name));
      sizes.push_back(size);
    }
    auto mesh = MeshAttr::get(ctx, names, sizes);
    DistDialect::MeshAttrHelper(ctx).setAttr(module, mesh);
    if (sequenceParallel)
      DistDialect::SequenceParallelAttrHelper(ctx).setAttr(module,
                                                           UnitAttr::get(ctx));
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn.isPrivate())
        continue;
      Sharder sharder(mesh, sequenceParallel);
      if (failed(sharder.run(fn)))
        return signalPassFailure();
    }
  }
};

} // namespace
} // namespace loom
