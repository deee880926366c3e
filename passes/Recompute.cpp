//===- Recompute.cpp - --loom-recompute -----------------------------------===//
//
// Activation recomputation as a rewrite of the differentiated step: the
// backward reads copies of chosen forward values, made just before their
// first backward use, instead of the values the forward made. What a layer
// keeps for its backward is then what the backward still reads.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"

#include <functional>
#include <map>
#include <set>

#define DEBUG_TYPE "loom-recompute"

namespace loom {
#define GEN_PASS_DEF_LOOMRECOMPUTE
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

enum class Choice { None, Selective, Full };

std::optional<Choice> parseChoice(StringRef text) {
  if (text == "none")
    return Choice::None;
  if (text == "selective")
    return Choice::Selective;
  if (text == "full")
    return Choice::Full;
  return std::nullopt;
}

StringRef choiceName(Choice c) {
  return c == Choice::Full        ? "full"
         : c == Choice::Selective ? "selective"
                                  : "none";
}

std::optional<int64_t> layerOf(Operation *op) {
  if (auto a = op->getAttrOfType<IntegerAttr>(
          LoomDialect::LayerAttrHelper::getNameStr()))
    return a.getInt();
  return std::nullopt;
}

bool isParameter(Value v) {
  return v.getDefiningOp() && isa<ParameterOp>(v.getDefiningOp());
}

/// The forward ops of layer `layer` that its backward recomputes.
void chooseLayer(ArrayRef<Operation *> forward, int64_t layer, Choice choice,
                 DenseSet<Operation *> &recompute) {
  SmallVector<Operation *> mine;
  for (Operation *op : forward)
    if (layerOf(op) == layer)
      mine.push_back(op);
  DenseSet<Operation *> inLayer(mine.begin(), mine.end());
  if (choice == Choice::Full) {
    // Everything computed from the layer's inputs, except what a forward
    // op outside the layer reads (the layer's output: the next layer's
    // input, kept for its backward).
    for (Operation *op : mine) {
      if (op->getNumOperands() == 0)
        continue; // parameters and constants: nothing to recompute
      bool output = llvm::any_of(op->getUsers(), [&](Operation *user) {
        return !inLayer.count(user) &&
               llvm::is_contained(forward, user); // a forward reader elsewhere
      });
      if (!output)
        recompute.insert(op);
    }
    return;
  }
  if (choice != Choice::Selective)
    return;
  // The attention core: q·kᵀ, the softmax and its dropout. q, k, v and the
  // context stay stored (the matmuls' backward reads them).
  for (Operation *op : mine) {
    auto softmax = dyn_cast<SoftmaxOp>(op);
    if (!softmax)
      continue;
    recompute.insert(op);
    if (Operation *scores = softmax->getOperand(0).getDefiningOp())
      if (isa<MatmulOp>(scores) && inLayer.count(scores) &&
          llvm::none_of(scores->getOperands(), isParameter))
        recompute.insert(scores);
    for (Operation *user : softmax->getUsers())
      if (isa<DropoutOp>(user) && inLayer.count(user))
        recompute.insert(user);
  }
}

/// Rewrites the backward of `fn`, adding the layers it holds to
/// `seenLayers` (a per-layer choice must name a layer some function holds).
LogicalResult recomputeFunction(func::FuncOp fn, Choice defaultChoice,
                                const std::map<int64_t, Choice> &perLayer,
                                std::set<int64_t> &seenLayers) {
  MLIRContext *ctx = fn.getContext();
  auto count = fn->getAttrOfType<IntegerAttr>(
      LoomDialect::ForwardOpsAttrHelper::getNameStr());
  if (!count || fn.isExternal())
    return success(); // not a differentiated function
  Block &body = fn.front();
  SmallVector<Operation *> forward, backward;
  for (Operation &op : body.without_terminator())
    (int64_t(forward.size()) < count.getInt() ? forward : backward)
        .push_back(&op);

  std::set<int64_t> layers;
  for (Operation *op : forward)
    if (auto l = layerOf(op))
      layers.insert(*l);
  seenLayers.insert(layers.begin(), layers.end());

  DenseSet<Operation *> recompute;
  SmallVector<Attribute> recorded;
  for (int64_t layer : layers) {
    auto it = perLayer.find(layer);
    Choice choice = it != perLayer.end() ? it->second : defaultChoice;
    chooseLayer(forward, layer, choice, recompute);
    recorded.push_back(StringAttr::get(ctx, choiceName(choice)));
  }
  // In every mode: a 16-bit copy of a master weight is cast again where
  // the backward reads it (one cast, no FLOPs) rather than kept per
  // microbatch; under sequence parallelism a layer's input is all-gathered
  // again for its weight gradient (Megatron's choice), not kept gathered.
  // Forward ops are in program order, so a view of a view follows.
  for (Operation *op : forward) {
    if (isa<CastOp>(op) && isParameter(op->getOperand(0)))
      recompute.insert(op);
    if (isa<dist::AllGatherOp>(op) && layerOf(op))
      recompute.insert(op);
  }

  // A view of something made again (a fan_out, a reshape) is made again
  // with it, or the backward's read of the view would keep its source.
  for (Operation *op : forward)
    if (isa<dist::FanOutOp, ReshapeOp>(op) && !recompute.count(op))
      if (Operation *source = op->getOperand(0).getDefiningOp();
          source && recompute.count(source))
        recompute.insert(op);

  auto marker = UnitAttr::get(ctx);
  DenseMap<Value, Value> copies;
  // The copy of forward value `v` for a backward op at `before`: made there
  // on first use, after the copies it reads.
  std::function<Value(Value, Operation *)> copyOf = [&](Value v,
                                                        Operation *before) {
    Operation *def = v.getDefiningOp();
    if (!def || !recompute.count(def))
      return v;
    if (auto it = copies.find(v); it != copies.end())
      return it->second;
    IRMapping map;
    for (Value operand : def->getOperands())
      map.map(operand, copyOf(operand, before));
    OpBuilder b(before);
    Operation *copy = b.clone(*def, map);
    copy->setAttr(LoomDialect::RecomputedAttrHelper::getNameStr(), marker);
    for (auto [original, made] :
         llvm::zip(def->getResults(), copy->getResults()))
      copies[original] = made;
    return copies.lookup(v);
  };
  // Only backward ops read copies: the function's results are the loss,
  // the activation out and gradients, none of them a recomputed value.
  for (Operation *op : backward)
    for (OpOperand &use : op->getOpOperands())
      if (Value copy = copyOf(use.get(), op); copy != use.get())
        use.set(copy);
  fn->setAttr(LoomDialect::LayerRecomputeAttrHelper::getNameStr(),
              ArrayAttr::get(ctx, recorded));
  return success();
}

struct LoomRecomputePass : impl::LoomRecomputeBase<LoomRecomputePass> {
  using LoomRecomputeBase::LoomRecomputeBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::optional<Choice> choice = parseChoice(mode);
    if (!choice) {
      module.emitError() << "--loom-recompute: mode '" << mode
                         << "' is not none, selective or full";
      return signalPassFailure();
    }
    std::map<int64_t, Choice> perLayerChoices;
    SmallVector<StringRef> entries;
    StringRef(perLayer).split(entries, ',', -1, /*KeepEmpty=*/false);
    for (StringRef entry : entries) {
      auto [layerText, modeText] = entry.trim().split(':');
      int64_t layer = -1;
      std::optional<Choice> c = parseChoice(modeText.trim());
      if (layerText.trim().getAsInteger(10, layer) || layer < 0 || !c) {
        module.emitError() << "--loom-recompute: per-layer entry '" << entry
                           << "' is not LAYER:none|selective|full";
        return signalPassFailure();
      }
      perLayerChoices[layer] = *c;
    }
    std::set<int64_t> seen;
    for (auto fn : module.getOps<func::FuncOp>())
      if (failed(recomputeFunction(fn, *choice, perLayerChoices, seen)))
        return signalPassFailure();
    for (auto [layer, c] : perLayerChoices)
      if (!seen.count(layer)) {
        module.emitError() << "--loom-recompute: the model has no layer "
                           << layer << " (its layers are 0 to "
                           << (seen.empty() ? -1 : *seen.rbegin()) << ")";
        return signalPassFailure();
      }
  }
};

} // namespace
} // namespace loom
