//===- Partition.cpp - --loom-partition -----------------------------------===//
//
// Rewrites a program annotated by --loom-shard into the program each rank
// runs: local shapes and explicit collectives (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#define DEBUG_TYPE "loom-partition"

namespace loom {
#define GEN_PASS_DEF_LOOMPARTITION
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom::dist;

namespace loom {
namespace {

class Partitioner {
public:
  Partitioner(MeshAttr mesh)
      : mesh(mesh), ctx(mesh.getContext()), inShardings(ctx), outShardings(ctx),
        shardingAttr(ctx), layerAttr(ctx) {}
  LogicalResult run(func::FuncOp fn);

private:
  RankedTensorType localType(RankedTensorType global, ShardingAttr s) {
    FailureOr<SmallVector<int64_t>> shape = s.localShape(global.getShape(), mesh);
    assert(succeeded(shape) && "--loom-shard checked divisibility");
    return global.clone(*shape);
  }
  ShardingAttr sharding(ArrayRef<StringAttr> dims) {
    return ShardingAttr::get(ctx, dims, {});
  }
  Value convert(OpBuilder &b, Location loc, Value v, ShardingAttr want);
  Value fanOut(OpBuilder &b, Location loc, Value v, StringRef axis);
  LogicalResult vocabParallelCrossEntropy(CrossEntropyOp ce, ShardingAttr logits);

  MeshAttr mesh;
  MLIRContext *ctx;
  DistDialect::InShardingsAttrHelper inShardings;
  DistDialect::OutShardingsAttrHelper outShardings;
  DistDialect::ShardingAttrHelper shardingAttr;
  LoomDialect::LayerAttrHelper layerAttr;
  DenseMap<Value, ShardingAttr> have;            // of the rewritten values
  DenseMap<Value, RankedTensorType> globalType;  // of the rewritten values
  DenseMap<std::pair<Value, Attribute>, Value> converted;
  DenseMap<std::pair<Value, Attribute>, Value> fannedOut;
};

Value Partitioner::convert(OpBuilder &b, Location loc, Value v,
                           ShardingAttr want) {
  ShardingAttr cur = have.lookup(v);
  if (!cur || cur == want)
    return v;
  auto key = std::make_pair(v, Attribute(want));
  if (Value done = converted.lookup(key))
    return done;
  RankedTensorType global = globalType.lookup(v);
  Value x = v;
  SmallVector<StringAttr> dims(cur.getDims());
  StringAttr whole = StringAttr::get(ctx, "");
  auto typeOf = [&] { return localType(global, sharding(dims)); };
  // Pending sums first: a reduce-scatter when the wanted split of that axis
  // lands on a dimension held whole, else an all-reduce.
  for (StringAttr axis : cur.getPartial()) {
    int64_t scatterDim = -1;
    for (auto [d, a] : llvm::enumerate(want.getDims()))
      if (a == axis && dims[d].empty() && !llvm::is_contained(dims, axis))
        scatterDim = d;
    if (scatterDim >= 0) {
      dims[scatterDim] = axis;
      x = b.create<ReduceScatterOp>(loc, typeOf(), x, axis,
                                    b.getI64IntegerAttr(scatterDim));
    } else {
      x = b.create<AllReduceOp>(loc, x.getType(), ReduceKind::Sum, x, axis);
    }
  }
  // Then every gather, then every slice: an axis moving from one dimension
  // to another is whole in between, never split twice.
  for (size_t d = 0; d < dims.size(); ++d)
    if (!dims[d].empty() && dims[d] != want.getDims()[d]) {
      StringAttr axis = dims[d];
      dims[d] = whole;
      x = b.create<AllGatherOp>(loc, typeOf(), x, axis, b.getI64IntegerAttr(d));
    }
  for (size_t d = 0; d < dims.size(); ++d)
    if (dims[d] != want.getDims()[d]) {
      dims[d] = want.getDims()[d];
      x = b.create<AllSliceOp>(loc, typeOf(), x, dims[d],
                               b.getI64IntegerAttr(d));
    }
  have[x] = want;
  globalType[x] = global;
  converted[key] = x;
  return x;
}

Value Partitioner::fanOut(OpBuilder &b, Location loc, Value v, StringRef axis) {
  auto key = std::make_pair(v, Attribute(StringAttr::get(ctx, axis)));
  if (Value done = fannedOut.lookup(key))
    return done;
  Value y = b.create<FanOutOp>(loc, v, axis);
  have[y] = have.lookup(v);
  globalType[y] = globalType.lookup(v);
  fannedOut[key] = y;
  return y;
}

/// Megatron's vocabulary-parallel cross-entropy: per token, the max over the
/// whole vocabulary, the sum of exponentials and the label's logit, each
/// all-reduced over the axis the classes are split over. The padded classes
/// (from `classes` on) stay out of all three: out of the max too, since a
/// padded logit far above the real ones would underflow the sum.
LogicalResult Partitioner::vocabParallelCrossEntropy(CrossEntropyOp ce,
                                                     ShardingAttr logitsSharding) {
  // (A mean keeps its classes whole: see the rule in LoomSharding.cpp.)
  assert(ce.getReduction() != LossReduction::Mean);
  OpBuilder b(ce);
  Location loc = ce.getLoc();
  Value logits = ce.getLogits(), labels = ce.getLabels();
  auto logitsType = cast<RankedTensorType>(logits.getType());
  int64_t classDim = logitsType.getRank() - 1;
  StringAttr axis = logitsSharding.getDims()[classDim];
  auto tokens = cast<RankedTensorType>(labels.getType()).getShape();
  auto tokenType = RankedTensorType::get(tokens, logitsType.getElementType());
  auto f32Tokens = RankedTensorType::get(tokens, b.getF32Type());
  auto localMax =
      b.create<CrossEntropyMaxOp>(loc, tokenType, logits, ce.getClassesAttr());
  shardingAttr.setAttr(localMax, logitsSharding);
  Value max = b.create<AllReduceOp>(loc, tokenType, ReduceKind::Max, localMax,
                                    axis);
  max = b.create<StopGradientOp>(loc, max);
  auto partials = b.create<CrossEntropyPartialsOp>(
      loc, f32Tokens, f32Tokens, logits, max, labels, ce.getIgnoreIndexAttr(),
      ce.getClassesAttr());
  shardingAttr.setAttr(partials, logitsSharding);
  Value sumexp = b.create<AllReduceOp>(loc, f32Tokens, ReduceKind::Sum,
                                       partials.getSumexp(), axis);
  Value target = b.create<AllReduceOp>(loc, f32Tokens, ReduceKind::Sum,
                                       partials.getTarget(), axis);
  auto resultType = cast<RankedTensorType>(ce.getType());
  Value loss = b.create<CrossEntropyCombineOp>(
      loc, f32Tokens.clone(resultType.getElementType()), sumexp, target,
      labels, ce.getIgnoreIndexAttr());
  if (ce.getReduction() == LossReduction::Sum) {
    SmallVector<int64_t> all;
    for (int64_t d = 0; d < int64_t(tokens.size()); ++d)
      all.push_back(d);
    loss = b.create<ReduceOp>(loc, resultType, ReduceKind::Sum, loss,
                              b.getDenseI64ArrayAttr(all), false);
  }
  ShardingAttr whole = ShardingAttr::getReplicated(ctx, resultType.getRank());
  have[loss] = whole;
  globalType[loss] = resultType;
  ce.getResult().replaceAllUsesWith(loss);
  ce.erase();
  return success();
}

LogicalResult Partitioner::run(func::FuncOp fn) {
  for (BlockArgument arg : fn.getArguments())
    if (auto type = dyn_cast<RankedTensorType>(arg.getType())) {
      have[arg] = ShardingAttr::getReplicated(ctx, type.getRank());
      globalType[arg] = type;
    }
  for (Operation &op : llvm::make_early_inc_range(fn.front())) {
    ArrayAttr ins = inShardings.getAttr(&op);
    ArrayAttr outs = outShardings.getAttr(&op);
    if (!outs || (!ins && !isa<ParameterOp>(op)))
      return op.emitError() << "'" << op.getName()
                            << "' has no shardings: run --loom-shard first";
    op.removeAttr(inShardings.getName());
    op.removeAttr(outShardings.getName());
    // The axes this op's work is split over.
    SmallVector<StringAttr> splitAxes;
    for (Attribute a : outs)
      if (auto s = dyn_cast<ShardingAttr>(a)) {
        for (StringAttr axis : s.getDims())
          if (!axis.empty() && !llvm::is_contained(splitAxes, axis))
            splitAxes.push_back(axis);
        for (StringAttr axis : s.getPartial())
          if (!llvm::is_contained(splitAxes, axis))
            splitAxes.push_back(axis);
      }
    OpBuilder b(&op);
    Operation *last = op.getPrevNode();
    for (auto [i, operand] : llvm::enumerate(op.getOpOperands())) {
      auto want = dyn_cast<ShardingAttr>(ins[i]);
      if (!want)
        continue;
      Value v = convert(b, op.getLoc(), operand.get(), want);
      // A whole value feeding split work: its gradient is a partial sum.
      auto type = cast<RankedTensorType>(v.getType());
      bool whole = llvm::all_of(want.getDims(),
                                [](StringAttr a) { return a.empty(); });
      if (whole && isa<FloatType>(type.getElementType()) &&
          !v.getDefiningOp<StopGradientOp>())
        for (StringAttr axis : splitAxes)
          v = fanOut(b, op.getLoc(), v, axis);
      operand.set(v);
    }
    // Inserted collectives belong to the consumer's layer.
    if (IntegerAttr layer = layerAttr.getAttr(&op))
      for (Operation *made = last ? last->getNextNode() : &fn.front().front();
           made && made != &op; made = made->getNextNode())
        if (!layerAttr.isAttrPresent(made))
          layerAttr.setAttr(made, layer);
    if (auto ce = dyn_cast<CrossEntropyOp>(op)) {
      auto logits = cast<ShardingAttr>(ins[0]);
      if (!logits.getDimAxis(ce.getLogits().getType().getRank() - 1).empty()) {
        if (failed(vocabParallelCrossEntropy(ce, logits)))
          return failure();
        continue;
      }
    }
    // Ops whose work depends on the rank's block record it.
    if (isa<EmbeddingOp, DropoutOp>(op)) {
      if (!cast<ShardingAttr>(ins[0]).isReplicated())
        shardingAttr.setAttr(&op, cast<ShardingAttr>(ins[0]));
    } else if (isa<ParameterOp>(op)) {
      if (!cast<ShardingAttr>(outs[0]).isReplicated())
        shardingAttr.setAttr(&op, cast<ShardingAttr>(outs[0]));
      else
        op.removeAttr(shardingAttr.getName());
    }
    for (auto [r, a] : llvm::zip(op.getResults(), outs)) {
      auto s = dyn_cast<ShardingAttr>(a);
      auto type = dyn_cast<RankedTensorType>(r.getType());
      if (!s || !type)
        continue;
      globalType[r] = type;
      have[r] = s;
      r.setType(localType(type, s));
    }
  }
  auto ret = cast<func::ReturnOp>(fn.front().getTerminator());
  fn.setFunctionType(FunctionType::get(ctx, fn.getArgumentTypes(),
                                       ret.getOperandTypes()));
  return success();
}

struct LoomPartitionPass : impl::LoomPartitionBase<LoomPartitionPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MeshAttr mesh = getMesh(module);
    if (!mesh) {
      module.emitError() << "--loom-partition needs a mesh: run --loom-shard "
                            "first";
      return signalPassFailure();
    }
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn.isPrivate())
        continue;
      Partitioner partitioner(mesh);
      if (failed(partitioner.run(fn)))
        return signalPassFailure();
    }
  }
};

} // namespace
} // namespace loom
