//===- Fuse.cpp - --loom-fuse: fusion regions of the training step --------===//
//
// Groups ops into `loom.fused` regions, one generated kernel each. The
// rules (which ops, where a region ends) are the pass's description in
// Passes.td; test/Passes/loom-fuse.mlir checks each. The pass walks the
// function once, in order: an elementwise op joins the region of one of its
// operands' producers when the iteration shapes agree and the region can
// move to it; a row op (a norm, a softmax, a column sum) starts a region
// and takes in the elementwise region that makes its input; the
// cross-entropy's backward takes its forward.
//
//===----------------------------------------------------------------------===//

#include "loom/Codegen/FusedKernel.h"
#include "loom/dialects/Dist/IR/DistOps.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/passes/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

namespace loom {
#define GEN_PASS_DEF_LOOMFUSE
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

RankedTensorType tensorType(Value v) {
  return dyn_cast<RankedTensorType>(v.getType());
}

bool isF32(Value v) {
  auto t = tensorType(v);
  return t && t.getElementType().isF32();
}

std::vector<int64_t> shapeOf(Value v) {
  auto s = tensorType(v).getShape();
  return std::vector<int64_t>(s.begin(), s.end());
}

/// A dropout whose tensor is split over a mesh axis draws by the global
/// index of its block: the reference kernel handles that, fusion does not.
bool splitOverMesh(Operation *op) {
  auto s = op->getAttrOfType<dist::ShardingAttr>(dist::kShardingAttrName);
  if (!s)
    return false;
  for (auto axis : s.getDims())
    if (!axis.empty())
      return true;
  return false;
}

/// The ops an elementwise kernel computes (the code generator's, on f32
/// operands it can index).
bool isElementwise(Operation *op) {
  if (!codegen::hasScalarMath(op))
    return false;
  if (op->getNumResults() != 1 || !isF32(op->getResult(0)))
    return false;
  std::vector<int64_t> result = shapeOf(op->getResult(0));
  for (Value v : op->getOperands())
    if (!isF32(v) || !codegen::broadcastIndex(shapeOf(v), result))
      return false;
  if (isa<DropoutOp, DropoutGradOp>(op) && splitOverMesh(op))
    return false;
  // A sum of gradients the function returns: the plan builder adds each
  // term into the accumulator where it is made (a GEMM with beta = 1, the
  // embedding gradient's scatter), which stores nothing at all.
  if (isa<AddOp>(op) && op->hasOneUse()) {
    OpOperand &use = *op->getUses().begin();
    auto fn = op->getParentOfType<func::FuncOp>();
    if (isa<func::ReturnOp>(use.getOwner()) && fn &&
        fn.getResultAttr(use.getOperandNumber(),
                         LoomDialect::kGradResultAttr.getNameStr()))
      return false;
  }
  return true;
}

/// A sum over the leading dimensions (a bias gradient).
bool isColumnSum(ReduceOp op) {
  if (op.getKind() != ReduceKind::Sum || !isF32(op.getInput()))
    return false;
  ArrayRef<int64_t> dims = op.getDims();
  int64_t rank = tensorType(op.getInput()).getRank();
  if (dims.empty() || int64_t(dims.size()) >= rank)
    return false;
  for (size_t d = 0; d < dims.size(); ++d)
    if (dims[d] != int64_t(d))
      return false;
  return true;
}

/// The ops that anchor a region over rows, and the operand whose producer
/// region they take in (-1: none).
std::optional<int> rowAnchor(Operation *op) {
  for (Value v : op->getOperands())
    if (!isa<IntegerType>(tensorType(v).getElementType()) && !isF32(v))
      return std::nullopt;
  for (Value v : op->getResults())
    if (!isF32(v))
      return std::nullopt;
  if (isa<LayerNormOp, RmsNormOp>(op))
    return 0;
  if (auto s = dyn_cast<SoftmaxOp>(op))
    return s.getMask() ? std::nullopt : std::optional<int>(0);
  if (isa<SoftmaxGradOp>(op))
    return 1;
  if (isa<LayerNormGradOp, RmsNormGradOp>(op))
    return -1;
  if (auto r = dyn_cast<ReduceOp>(op); r && isColumnSum(r))
    return 0;
  return std::nullopt;
}

/// The anchor's result an elementwise op after it may read (-1: none).
int epilogueResult(Operation *anchor) {
  if (isa<LayerNormOp, RmsNormOp, SoftmaxOp, SoftmaxGradOp, LayerNormGradOp,
          RmsNormGradOp>(anchor))
    return 0;
  return -1;
}

StringRef kindOf(Operation *anchor) {
  if (!anchor)
    return "elementwise";
  if (isa<ReduceOp>(anchor))
    return "column_sum";
  if (isa<CrossEntropyGradOp>(anchor))
    return "cross_entropy";
  return anchor->getName().stripDialect();
}

struct Region {
  SmallVector<Operation *> ops; // in block order
  Operation *anchor = nullptr;
  std::vector<int64_t> shape; // the iteration shape
  bool backward = false;
  bool dead = false; // merged into another
};

class Fuser {
public:
  explicit Fuser(func::FuncOp fn) : fn(fn) {}

  void run() {
    Block &body = fn.front();
    // Only a pipeline chunk runs its forward alone (the boundary matters).
    int64_t forwardOps = -1;
    if (auto n = fn->getAttrOfType<IntegerAttr>(
            LoomDialect::ForwardOpsAttrHelper::getNameStr());
        n && fn->hasAttr(LoomDialect::PipelineChunkAttrHelper::getNameStr()))
      forwardOps = n.getInt();
    int64_t index = 0;
    for (Operation &op : body.without_terminator())
      backward[&op] = forwardOps >= 0 && index++ >= forwardOps;
    for (Operation &op : llvm::make_early_inc_range(body.without_terminator()))
      visit(&op);
    for (Region &r : regions)
      if (!r.dead)
        outline(r);
    if (forwardOps >= 0) {
      int64_t forward = 0;
      for (Operation &op : body.without_terminator())
        forward += !backward.lookup(&op);
      LoomDialect::ForwardOpsAttrHelper(fn.getContext())
          .setAttr(fn, IntegerAttr::get(IntegerType::get(fn.getContext(), 64),
                                        forward));
    }
  }

private:
  int regionOfValue(Value v) {
    Operation *def = v.getDefiningOp();
    if (!def)
      return -1;
    auto it = regionOf.find(def);
    return it == regionOf.end() ? -1 : it->second;
  }

  bool inRegion(const Region &r, Operation *op) const {
    auto it = regionOf.find(op);
    return it != regionOf.end() && &regions[it->second] == &r;
  }

  /// Whether region `r` can be placed at `last` (which joins it): every
  /// value it makes that an op outside it reads is read after `last`.
  bool canMoveTo(const Region &r, Operation *last) {
    for (Operation *op : r.ops)
      for (Value v : op->getResults())
        for (Operation *user : v.getUsers()) {
          if (user == last || inRegion(r, user))
            continue;
          Operation *top = fn.front().findAncestorOpInBlock(*user);
          if (!top || !last->isBeforeInBlock(top))
            return false;
        }
    return true;
  }

  /// Whether elementwise `op` may join region `r`.
  bool canJoin(Region &r, Operation *op) {
    if (r.backward != backward.lookup(op) ||
        r.shape != shapeOf(op->getResult(0)))
      return false;
    if (r.anchor) {
      int main = epilogueResult(r.anchor);
      if (main < 0)
        return false;
      // Only the anchor's main result and full-shape values of the region
      // are read per element.
      for (Value v : op->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (!def || !inRegion(r, def))
          continue;
        if (def == r.anchor && v != r.anchor->getResult(main))
          return false;
        if (shapeOf(v) != r.shape)
          return false;
      }
    }
    return canMoveTo(r, op);
  }

  void add(int id, Operation *op) {
    regions[id].ops.push_back(op);
    regionOf[op] = id;
  }

  int newRegion(Operation *op, Operation *anchor, std::vector<int64_t> shape) {
    Region r;
    r.anchor = anchor;
    r.shape = std::move(shape);
    r.backward = backward.lookup(op);
    regions.push_back(std::move(r));
    add(int(regions.size()) - 1, op);
    return int(regions.size()) - 1;
  }

  void visit(Operation *op) {
    if (isElementwise(op)) {
      for (Value v : op->getOperands()) {
        int id = regionOfValue(v);
        if (id >= 0 && canJoin(regions[id], op)) {
          add(id, op);
          return;
        }
      }
      newRegion(op, nullptr, shapeOf(op->getResult(0)));
      return;
    }
    if (auto grad = dyn_cast<CrossEntropyGradOp>(op)) {
      visitCrossEntropy(grad);
      return;
    }
    std::optional<int> prologue = rowAnchor(op);
    if (!prologue)
      return;
    Value main = op->getOperand(*prologue < 0 ? 0 : *prologue);
    int id = newRegion(op, op, shapeOf(main));
    if (*prologue < 0)
      return;
    int from = regionOfValue(main);
    if (from < 0 || regions[from].anchor ||
        regions[from].backward != regions[id].backward ||
        regions[from].shape != regions[id].shape ||
        !canMoveTo(regions[from], op))
      return;
    // The prologue's ops come first.
    Region &src = regions[from];
    SmallVector<Operation *> ops = src.ops;
    ops.push_back(op);
    src.dead = true;
    regions[id].ops = ops;
    for (Operation *o : ops)
      regionOf[o] = id;
  }

  /// A `sum` cross-entropy and its gradient on the same logits: one kernel
  /// that never stores the probabilities.
  void visitCrossEntropy(CrossEntropyGradOp grad) {
    if (grad.getReduction() != LossReduction::Sum || !isF32(grad.getLogits()))
      return;
    CrossEntropyOp forward;
    for (Operation *user : grad.getLogits().getUsers()) {
      if (user == grad.getOperation())
        continue;
      auto ce = dyn_cast<CrossEntropyOp>(user);
      if (!ce || forward)
        return; // the logits are read elsewhere: no gradient in place
      forward = ce;
    }
    if (!forward || forward.getLabels() != grad.getLabels() ||
        forward.getReduction() != LossReduction::Sum ||
        forward.getIgnoreIndex() != grad.getIgnoreIndex() ||
        forward.getClasses() != grad.getClasses() || regionOf.count(forward) ||
        backward.lookup(forward) != backward.lookup(grad) ||
        forward->getBlock() != grad->getBlock() ||
        !forward->isBeforeInBlock(grad))
      return;
    for (Operation *user : forward.getResult().getUsers()) {
      Operation *top = fn.front().findAncestorOpInBlock(*user);
      if (!top || !grad->isBeforeInBlock(top))
        return;
    }
    int id = newRegion(forward, grad, shapeOf(grad.getLogits()));
    add(id, grad);
  }

  /// Replaces the region's ops with one loom.fused op at its last op.
  void outline(Region &r) {
    llvm::SmallPtrSet<Operation *, 16> inside(r.ops.begin(), r.ops.end());
    llvm::SetVector<Value> inputs;
    SmallVector<Value> outputs;
    for (Operation *op : r.ops) {
      for (Value v : op->getOperands()) {
        Operation *def = v.getDefiningOp();
        if (!def || !inside.count(def))
          inputs.insert(v);
      }
      for (Value v : op->getResults())
        if (llvm::any_of(v.getUsers(),
                         [&](Operation *u) { return !inside.count(u); }))
          outputs.push_back(v);
    }
    if (outputs.empty())
      return; // nothing reads it (the verifier of the step forbids this)
    Operation *last = r.ops.back();
    OpBuilder b(last->getContext());
    b.setInsertionPointAfter(last);
    SmallVector<Type> types;
    for (Value v : outputs)
      types.push_back(v.getType());
    auto fused = b.create<FusedOp>(last->getLoc(), kindOf(r.anchor), types,
                                   inputs.getArrayRef());
    if (auto layer = last->getAttr(LoomDialect::LayerAttrHelper::getNameStr()))
      fused->setAttr(LoomDialect::LayerAttrHelper::getNameStr(), layer);
    Block &block = fused.getBody().front();
    IRMapping map;
    for (auto [input, arg] : llvm::zip(inputs, block.getArguments()))
      map.map(input, arg);
    OpBuilder inner = OpBuilder::atBlockEnd(&block);
    for (Operation *op : r.ops)
      inner.clone(*op, map);
    SmallVector<Value> yielded;
    for (Value v : outputs)
      yielded.push_back(map.lookup(v));
    inner.create<YieldOp>(last->getLoc(), yielded);
    for (auto [v, result] : llvm::zip(outputs, fused.getResults()))
      v.replaceUsesWithIf(result, [&](OpOperand &use) {
        return !inside.count(use.getOwner());
      });
    backward[fused] = r.backward;
    for (Operation *op : llvm::reverse(r.ops)) {
      backward.erase(op);
      op->erase();
    }
  }

  func::FuncOp fn;
  std::vector<Region> regions;
  DenseMap<Operation *, int> regionOf;
  DenseMap<Operation *, bool> backward;
};

struct LoomFusePass : impl::LoomFuseBase<LoomFusePass> {
  void runOnOperation() override { Fuser(getOperation()).run(); }
};

} // namespace
} // namespace loom
