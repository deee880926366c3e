//===- Pipeline.cpp - --loom-pipeline -------------------------------------===//
//
// Cuts a model's layer stack into pipeline chunks: p stages × v virtual
// chunks, each a function of its own (see Passes.td).
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

#define DEBUG_TYPE "loom-pipeline"

namespace loom {
#define GEN_PASS_DEF_LOOMPIPELINE
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {

FailureOr<SmallVector<int64_t>>
balanceLayers(ArrayRef<double> layerCost, double firstExtra, double lastExtra,
              int64_t chunks, std::string &error) {
  int64_t layers = int64_t(layerCost.size());
  if (chunks < 1 || layers < chunks) {
    error = "the model has " + std::to_string(layers) +
            " layers; " + std::to_string(chunks) +
            " pipeline chunks need at least one layer each";
    return failure();
  }
  // Contiguous ranges minimising the most expensive chunk (the embedding
  // counts with the first, the head and loss with the last): dynamic
  // programming over (chunks used, layers placed).
  std::vector<double> prefix(layers + 1, 0);
  for (int64_t l = 0; l < layers; ++l)
    prefix[l + 1] = prefix[l] + layerCost[l];
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(chunks + 1,
                                        std::vector<double>(layers + 1, inf));
  std::vector<std::vector<int64_t>> cut(chunks + 1,
                                        std::vector<int64_t>(layers + 1, 0));
  best[0][0] = 0;
  for (int64_t c = 1; c <= chunks; ++c)
    for (int64_t l = c; l <= layers - (chunks - c); ++l)
      for (int64_t k = c - 1; k < l; ++k) {
        double cost = prefix[l] - prefix[k] + (c == 1 ? firstExtra : 0) +
                      (c == chunks ? lastExtra : 0);
        double worst = std::max(best[c - 1][k], cost);
        if (worst < best[c][l]) {
          best[c][l] = worst;
          cut[c][l] = k;
        }
      }
  SmallVector<int64_t> sizes(chunks);
  for (int64_t c = chunks, l = layers; c > 0; --c) {
    sizes[c - 1] = l - cut[c][l];
    l = cut[c][l];
  }
  return sizes;
}

namespace {

struct LoomPipelinePass : impl::LoomPipelineBase<LoomPipelinePass> {
  using LoomPipelineBase::LoomPipelineBase;
  void runOnOperation() override;
  LogicalResult split(func::FuncOp fn);
};

double flopsOf(Operation *op) {
  auto cost = dyn_cast<CostOpInterface>(op);
  return cost ? cost.getFlops() : 0;
}

LogicalResult LoomPipelinePass::split(func::FuncOp fn) {
  // runOnOperation bounds both, so the product fits.
  int64_t p = stages, v = chunksPerStage, chunks = p * v;
  Block &body = fn.front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());

  // Each op's layer; ops before the first layer (the embedding) go with
  // layer 0's chunk, ops after a layer with the latest layer seen (the
  // final layernorm, the head and the loss with the last).
  // The cost of each layer, of what comes before the first (the embedding)
  // and of what follows the last (the head and the loss).
  LoomDialect::LayerAttrHelper layerAttr(fn.getContext());
  DenseMap<Operation *, int64_t> layerOf;
  int64_t current = -1;
  double firstExtra = 0;
  SmallVector<double> layerCost, trailing;
  for (Operation &op : body.without_terminator()) {
    if (isa<ParameterOp>(op))
      continue;
    bool inLayer = false;
    if (IntegerAttr l = layerAttr.getAttr(&op)) {
      // Layers number 0, 1, ... in order (the verifier refuses a negative
      // one, but IR built in C++ may not have been verified); a number past
      // the ops there are would only size the cost table.
      int64_t ops = int64_t(body.getOperations().size());
      if (l.getInt() < 0 || l.getInt() > ops)
        return op.emitError() << "loom.layer = " << l.getInt()
                              << " is out of range; layers are numbered 0, "
                                 "1, ... in the order they run";
      if (l.getInt() < current)
        return op.emitError() << "layer " << l.getInt() << " comes after layer "
                              << current
                              << "; a pipeline cuts a model whose layers run "
                                 "in order";
      current = l.getInt();
      inLayer = true;
      layerCost.resize(current + 1, 0);
      trailing.resize(current + 1, 0);
    }
    layerOf[&op] = current;
    (current < 0  ? firstExtra
     : inLayer    ? layerCost[current]
                  : trailing[current]) += flopsOf(&op);
  }
  int64_t layers = int64_t(layerCost.size());
  if (layers == 0)
    return fn.emitError() << "@" << fn.getSymName()
                          << " has no layers (a `repeat` block) to cut into "
                             "pipeline stages";
  double lastExtra = trailing.back();
  for (int64_t l = 0; l + 1 < layers; ++l)
    layerCost[l] += trailing[l];

  // Layers per chunk: the layout given, or balanced by the cost model.
  SmallVector<int64_t> sizes;
  if (!layout.empty()) {
    SmallVector<StringRef> parts;
    StringRef(layout).split(parts, ',');
    int64_t total = 0;
    for (StringRef part : parts) {
      int64_t n = 0;
      // Each at most the model's layers, so the sum cannot overflow.
      if (part.trim().getAsInteger(10, n) || n < 1 || n > layers)
        return fn.emitError() << "--pipeline-layout " << layout
                              << ": give layers per chunk as whole numbers "
                                 "from 1 to the model's "
                              << layers << " layers, e.g. 3,3,2,2";
      sizes.push_back(n);
      total += n;
    }
    if (int64_t(sizes.size()) != chunks || total != layers)
      return fn.emitError()
             << "--pipeline-layout " << layout << " gives " << sizes.size()
             << " chunks of " << total << " layers; the model has " << layers
             << " layers and the pipeline " << chunks << " chunks (pp="
             << p << " x " << v << " per stage)";
  } else {
    std::string error;
    auto balanced =
        balanceLayers(layerCost, firstExtra, lastExtra, chunks, error);
    if (failed(balanced))
      return fn.emitError() << "cannot cut @" << fn.getSymName() << " into pp="
                            << p << " x " << v << " chunks: " << error
                            << " (use fewer stages or virtual chunks, or "
                               "more layers)";
    sizes = *balanced;
  }
  SmallVector<int64_t> chunkOfLayer;
  for (int64_t c = 0; c < chunks; ++c)
    chunkOfLayer.append(sizes[c], c);
  auto chunkOf = [&](Operation *op) -> int64_t {
    int64_t layer = layerOf.lookup(op);
    return layer < 0 ? 0 : chunkOfLayer[layer];
  };

  // What crosses each boundary: one activation, from chunk c to c + 1.
  SmallVector<Value> crossing(chunks, Value());
  for (Operation &op : body.without_terminator()) {
    if (isa<ParameterOp>(op))
      continue;
    int64_t c = chunkOf(&op);
    for (Value v : op.getOperands()) {
      Operation *def = v.getDefiningOp();
      if (!def || isa<ParameterOp>(def))
        continue; // model inputs and parameters are available everywhere
      int64_t from = chunkOf(def);
      if (from == c)
        continue;
      if (from != c - 1)
        return op.emitError()
               << "this op of pipeline chunk " << c << " reads a value of chunk "
               << from << "; a pipeline passes one activation from each chunk "
                          "to the next";
      if (crossing[from] && crossing[from] != v) {
        InFlightDiagnostic diag = op.emitError();
        diag << "two values cross from pipeline chunk " << from << " to "
             << c << "; a pipeline passes one activation between chunks";
        diag.attachNote(crossing[from].getLoc()) << "the other one";
        return diag;
      }
      crossing[from] = v;
    }
  }
  for (Value v : ret.getOperands())
    if (Operation *def = v.getDefiningOp();
        def && !isa<ParameterOp>(def) && chunkOf(def) != chunks - 1)
      return ret.emitError() << "the loss must come from the last pipeline "
                                "chunk";
  for (int64_t c = 0; c + 1 < chunks; ++c)
    if (!crossing[c])
      return fn.emitError() << "nothing flows from pipeline chunk " << c
                            << " to chunk " << c + 1;

  // One function per chunk: its ops, the parameters they read (a tied
  // parameter is declared in each chunk that reads it), the model inputs
  // they read, and the activation in and out.
  OpBuilder mb(fn);
  MLIRContext *ctx = fn.getContext();
  for (int64_t c = 0; c < chunks; ++c) {
    llvm::SetVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      if (!isa<ParameterOp>(op) && chunkOf(&op) == c)
        ops.insert(&op);
    llvm::SetVector<BlockArgument> inputs;
    for (Operation *op : ops)
      for (Value v : op->getOperands())
        if (auto arg = dyn_cast<BlockArgument>(v))
          inputs.insert(arg);
    SmallVector<Type> argTypes;
    SmallVector<DictionaryAttr> argAttrs;
    if (c > 0) {
      argTypes.push_back(crossing[c - 1].getType());
      argAttrs.push_back(mb.getDictionaryAttr(mb.getNamedAttr(
          LoomDialect::kBoundaryInputArgAttr.getNameStr(), mb.getUnitAttr())));
    }
    for (BlockArgument arg : inputs) {
      argTypes.push_back(arg.getType());
      argAttrs.push_back(fn.getArgAttrDict(arg.getArgNumber()));
    }
    SmallVector<Type> resultTypes;
    if (c + 1 < chunks)
      resultTypes.push_back(crossing[c].getType());
    else
      llvm::append_range(resultTypes, ret.getOperandTypes());
    auto chunk = mb.create<func::FuncOp>(
        fn.getLoc(), (fn.getSymName() + "_chunk" + Twine(c)).str(),
        mb.getFunctionType(argTypes, resultTypes));
    for (auto [i, attrs] : llvm::enumerate(argAttrs))
      if (attrs)
        chunk.setArgAttrs(i, attrs);
    // The function's settings; the loss's go with the last chunk.
    for (NamedAttribute a : fn->getDiscardableAttrs())
      chunk->setAttr(a.getName(), a.getValue());
    LoomDialect::PipelineChunkAttrHelper(ctx).setAttr(chunk,
                                                      mb.getI64IntegerAttr(c));
    LoomDialect::LabelsInputAttrHelper labelsAttr(ctx);
    if (c + 1 < chunks) {
      chunk->removeAttr(LoomDialect::LossNormalizerAttrHelper::getNameStr());
      chunk->removeAttr(LoomDialect::LabelsInputAttrHelper::getNameStr());
      chunk->removeAttr(LoomDialect::IgnoreIndexAttrHelper::getNameStr());
    } else if (IntegerAttr labels = labelsAttr.getAttr(fn)) {
      int64_t index = -1;
      for (auto [i, arg] : llvm::enumerate(inputs))
        if (arg.getArgNumber() == labels.getInt())
          index = int64_t(i) + (c > 0 ? 1 : 0);
      if (index < 0)
        return fn.emitError() << "the loss's labels are not read by the last "
                                 "pipeline chunk";
      labelsAttr.setAttr(chunk, mb.getI64IntegerAttr(index));
    }
    Block *entry = chunk.addEntryBlock();
    OpBuilder b = OpBuilder::atBlockEnd(entry);
    IRMapping map;
    if (c > 0)
      map.map(crossing[c - 1], entry->getArgument(0));
    for (auto [i, arg] : llvm::enumerate(inputs))
      map.map(arg, entry->getArgument(i + (c > 0 ? 1 : 0)));
    for (Operation *op : ops) {
      for (Value v : op->getOperands())
        if (auto param = v.getDefiningOp<ParameterOp>();
            param && !map.contains(v))
          map.map(v, b.clone(*param)->getResult(0));
      b.clone(*op, map);
    }
    SmallVector<Value> results;
    if (c + 1 < chunks)
      results.push_back(map.lookup(crossing[c]));
    else
      for (Value v : ret.getOperands())
        results.push_back(map.lookupOrDefault(v));
    b.create<func::ReturnOp>(ret.getLoc(), results);
  }
  fn.erase();
  return success();
}

void LoomPipelinePass::runOnOperation() {
  ModuleOp module = getOperation();
  // A chunk holds at least one layer, and a layer at least one op, so more
  // chunks than 2^20 can never be cut; the bound keeps stages x chunks inside
  // int64.
  constexpr int64_t kMaxChunks = int64_t(1) << 20;
  if (stages < 1 || chunksPerStage < 1 || stages > kMaxChunks ||
      chunksPerStage > kMaxChunks / stages) {
    module.emitError() << "--loom-pipeline needs stages >= 1 and chunks >= 1, "
                          "at most "
                       << kMaxChunks << " chunks in all (got stages="
                       // The options convert to int64_t only when asked;
                       // streamed as they are they print as characters.
                       << int64_t(stages)
                       << ", chunks=" << int64_t(chunksPerStage) << ")";
    return signalPassFailure();
  }
  SmallVector<func::FuncOp> fns;
  for (auto fn : module.getOps<func::FuncOp>())
    if (!fn.isExternal() && !fn.isPrivate())
      fns.push_back(fn);
  if (fns.size() != 1) {
    module.emitError() << "--loom-pipeline cuts one model function; the "
                          "module has "
                       << fns.size();
    return signalPassFailure();
  }
  OpBuilder b(module.getContext());
  LoomDialect::PipelineStagesAttrHelper(module.getContext())
      .setAttr(module, b.getI64IntegerAttr(int64_t(stages)));
  LoomDialect::PipelineChunksPerStageAttrHelper(module.getContext())
      .setAttr(module, b.getI64IntegerAttr(int64_t(chunksPerStage)));
  if (failed(split(fns.front())))
    return signalPassFailure();
}

} // namespace
} // namespace loom
