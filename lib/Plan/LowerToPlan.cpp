//===- LowerToPlan.cpp - one training function's ops to instructions ------===//
//
// A function of the training step (after --loom-autodiff) becomes a plan:
// each loom or dist op an instruction on buffers (a reshape, a fan_out and a
// stop_gradient a view of their source's storage); parameters, their
// gradients and AdamW's moments persistent buffers; each parameter gradient
// accumulated over microbatches where it is produced, or by an `accumulate`.
// The optimizer program (OptimizerProgram.cpp) and the arenas' layout
// (MemoryPlanner.cpp) complete it.
//
//===----------------------------------------------------------------------===//

#include "Lowering.h"

#include "loom/Codegen/Emit.h"
#include "loom/Codegen/FusedKernel.h"
#include "loom/dialects/Dist/IR/DistOps.h"
#include "loom/dialects/Loom/IR/LoomOps.h"
#include "loom/runtime/InstructionSet.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <map>

using namespace mlir;
using namespace loom::detail;
/// The plan's instruction set (include/loom/runtime/Instructions.def).
namespace instr = loom::runtime;

namespace loom {
namespace {

/// The model layer an op belongs to (a fusion region's: its first op's
/// with one), or -1: what the memory report groups kept buffers by.
int64_t layerOf(Operation &op) {
  int64_t layer = -1;
  op.walk([&](Operation *inner) {
    if (auto a = inner->getAttrOfType<IntegerAttr>(
            LoomDialect::LayerAttrHelper::getNameStr());
        a && layer < 0)
      layer = a.getInt();
  });
  return layer;
}

FailureOr<plan::DType> dtypeOf(Location loc, Type element) {
  if (element.isF32())
    return plan::DType::F32;
  if (element.isBF16())
    return plan::DType::BF16;
  if (element.isF16())
    return plan::DType::F16;
  if (element.isInteger(32))
    return plan::DType::I32;
  if (element.isInteger(64))
    return plan::DType::I64;
  if (element.isInteger(1))
    return plan::DType::I1;
  return emitError(loc) << "the plan has no buffer type for " << element;
}

std::string locationText(Location loc) {
  if (auto file = loc->findInstanceOf<FileLineColLoc>())
    return (file.getFilename().str() + ":" + std::to_string(file.getLine()) +
            ":" + std::to_string(file.getColumn()));
  return "";
}

/// Whether `v` is the model input `tokens` (through fusion regions'
/// arguments, which are bound to the region's operands).
bool fedByTokens(Value v) {
  auto arg = dyn_cast<BlockArgument>(v);
  if (!arg)
    return false;
  Operation *owner = arg.getOwner()->getParentOp();
  if (auto fused = dyn_cast<FusedOp>(owner))
    return arg.getArgNumber() < fused->getNumOperands() &&
           fedByTokens(fused->getOperand(arg.getArgNumber()));
  auto fn = dyn_cast<func::FuncOp>(owner);
  if (!fn)
    return false;
  auto name = LoomDialect::kInputArgAttr.getAttr(fn, arg.getArgNumber());
  return name && name.getValue() == "tokens";
}

/// The micro-batch of loom IR without loom.micro_batch_size: the leading
/// dimension of its tokens input (every pipeline chunk's plan agrees), else 1.
int64_t tokensBatch(ModuleOp module) {
  for (auto fn : module.getOps<func::FuncOp>())
    for (BlockArgument arg : fn.getArguments()) {
      auto name = fn.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), LoomDialect::kInputArgAttr.getNameStr());
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (name && name.getValue() == "tokens" && type && type.getRank() >= 1)
        return type.getDimSize(0);
    }
  return 1;
}

class Lowering {
public:
  Lowering(func::FuncOp fn, const PlanOptions &options)
      : fn(fn), options(options), plan(std::make_unique<plan::PlanT>()) {}

  FailureOr<std::unique_ptr<plan::PlanT>> run();

private:
  FailureOr<int32_t> addBuffer(Location loc, std::string name, Type type,
                               plan::BufferKind kind, plan::Arena arena);
  LogicalResult addParameter(ParameterOp param);
  LogicalResult lowerOp(Operation &op);
  LogicalResult setAttributes(Operation &op, plan::InstructionT &inst);
  void accumulateInto(Value grad, int32_t gradBuffer);
  void finish();
  int32_t root(int32_t id) const {
    while (aliasOf[id] >= 0)
      id = aliasOf[id];
    return id;
  }

  func::FuncOp fn;
  const PlanOptions &options;
  std::unique_ptr<plan::PlanT> plan;
  DenseMap<Value, int32_t> bufferOf;
  std::vector<int32_t> aliasOf;
  llvm::StringMap<int32_t> parameterIndex;
  /// The microbatch program, with the instructions to insert after each.
  std::vector<std::unique_ptr<plan::InstructionT>> program;
  std::vector<std::vector<std::unique_ptr<plan::InstructionT>>> after;
  DenseMap<Operation *, size_t> instructionOf;
  /// The last instruction writing each buffer's storage (by root).
  DenseMap<int32_t, size_t> lastWriter;
  int64_t persistentBytes = 0;
  unsigned counter = 0;
  /// The fusion regions lowered to `kernel` instructions, with the results
  /// written straight into a gradient accumulator; their kernels are
  /// generated once the accumulations are known (generateKernels).
  struct FusedInstruction {
    FusedOp op;
    size_t instruction;
    std::vector<bool> accumulate;
  };
  std::vector<FusedInstruction> fused;
  DenseMap<Operation *, size_t> fusedOf;
  LogicalResult generateKernels();
  /// A kernel's reference form: the region's ops as instructions, on the
  /// kernel's buffers and scratch buffers for the values inside it.
  LogicalResult lowerReference(FusedOp f, plan::InstructionT &inst);
  /// A buffer that is a view of `source` (same storage, another type).
  FailureOr<int32_t> addView(Location loc, Type type, int32_t source);
  /// The microbatch program's first backward instruction (before finish()).
  size_t forwardEnd = SIZE_MAX;
  dist::MeshAttr mesh;
  /// The index in plan->mesh of a mesh axis name, and the axis's size.
  int64_t axisIndex(StringRef axis) const { return meshAxisIndex(*plan, axis); }
  int64_t axisSize(StringRef axis) const { return meshAxisSize(*plan, axis); }
  /// `shard_axis` and `global_shape` of a block of a partitioned tensor.
  LogicalResult setBlock(Operation &op, plan::InstructionT &inst,
                         dist::ShardingAttr sharding, ArrayRef<int64_t> local);
};

FailureOr<int32_t> Lowering::addBuffer(Location loc, std::string name,
                                       Type type, plan::BufferKind kind,
                                       plan::Arena arena) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return emitError(loc) << "the plan has no buffer for " << type
                          << "; a plan holds tensors of static shape";
  FailureOr<plan::DType> dtype = dtypeOf(loc, tensor.getElementType());
  if (failed(dtype))
    return failure();
  auto b = std::make_unique<plan::BufferT>();
  b->name = std::move(name);
  b->dtype = *dtype;
  b->shape.assign(tensor.getShape().begin(), tensor.getShape().end());
  b->kind = kind;
  b->arena = arena;
  // Shapes from loom IR are as the user wrote them: multiply with checks.
  std::optional<int64_t> bytes = runtime::dtypeBytes(*dtype);
  for (int64_t d : tensor.getShape())
    if (bytes)
      bytes = boundedProduct(*bytes, d, kMaxArenaBytes);
  if (!bytes)
    return emitError(loc) << "the tensor " << type << " takes more than 2^50 "
                          << "bytes (1 PiB) on one rank; use smaller sizes "
                             "or split it over more ranks (--mesh)";
  b->bytes = *bytes;
  if (arena == plan::Arena::Persistent) {
    b->offset = persistentBytes;
    persistentBytes += alignBuffer(b->bytes);
    if (persistentBytes > kMaxArenaBytes)
      return emitError(loc) << "the parameters, gradients and optimizer state "
                               "take more than 2^50 bytes (1 PiB) on one "
                               "rank; use a smaller model or split it over "
                               "more ranks (--mesh tp=..., pp=...)";
  }
  plan->buffers.push_back(std::move(b));
  aliasOf.push_back(-1);
  return int32_t(plan->buffers.size() - 1);
}

LogicalResult Lowering::addParameter(ParameterOp param) {
  StringRef name = param.getName();
  auto it = parameterIndex.find(name);
  if (it != parameterIndex.end()) { // a tied declaration: the same storage
    bufferOf[param] = plan->parameters[it->second]->value;
    return success();
  }
  Location loc = param.getLoc();
  if (!param.getType().getElementType().isF32())
    return param.emitError()
           << "parameter '" << name << "' is "
           << param.getType().getElementType()
           << "; parameters are f32 master weights (declare it f32 and "
              "compile with --precision bf16 or f16 for 16-bit compute)";
  auto p = std::make_unique<plan::ParameterT>();
  p->name = name.str();
  Type type = param.getType();
  Type f32 =
      cast<RankedTensorType>(type).clone(Float32Type::get(param.getContext()));
  using K = plan::BufferKind;
  FailureOr<int32_t> value =
      addBuffer(loc, name.str(), type, K::Parameter, plan::Arena::Persistent);
  FailureOr<int32_t> grad = addBuffer(loc, "grad." + name.str(), f32,
                                      K::Gradient, plan::Arena::Persistent);
  FailureOr<int32_t> m = addBuffer(loc, "adam_m." + name.str(), f32,
                                   K::OptimizerState, plan::Arena::Persistent);
  FailureOr<int32_t> v = addBuffer(loc, "adam_v." + name.str(), f32,
                                   K::OptimizerState, plan::Arena::Persistent);
  if (failed(value) || failed(grad) || failed(m) || failed(v))
    return failure();
  p->value = *value;
  p->grad = *grad;
  p->moment1 = *m;
  p->moment2 = *v;
  auto init = param.getInit();
  if (std::optional<double> c = init.getConstantValue()) {
    p->init = *c == 0 ? "zeros" : *c == 1 ? "ones" : "constant";
    p->constant = *c;
  } else {
    p->init = "normal";
    p->std = init.getEffectiveStd();
  }
  // Megatron's rule: no weight decay on biases and 1-D weights (norms).
  auto shape = cast<RankedTensorType>(type).getShape();
  p->weight_decay = shape.size() > 1 && !name.ends_with(".bias");
  p->global_shape.assign(shape.begin(), shape.end());
  p->shard_axis.assign(shape.size(), -1);
  auto s = param->getAttrOfType<dist::ShardingAttr>(dist::kShardingAttrName);
  if (s && s.getDims().size() != shape.size())
    return param.emitError() << "parameter '" << name << "' has the sharding "
                             << s << " for a tensor of rank " << shape.size();
  if (s)
    for (auto [d, axis] : llvm::enumerate(s.getDims()))
      if (!axis.empty()) {
        p->shard_axis[d] = int32_t(axisIndex(axis));
        std::optional<int64_t> global =
            boundedProduct(p->global_shape[d], axisSize(axis), kMaxArenaBytes);
        if (!global)
          return param.emitError() << "parameter '" << name
                                   << "' is too large over the mesh: its "
                                      "dimension "
                                   << d << " times " << axis.getValue() << "="
                                   << axisSize(axis) << " exceeds 2^50";
        p->global_shape[d] = *global;
      }
  parameterIndex[name] = int32_t(plan->parameters.size());
  plan->parameters.push_back(std::move(p));
  bufferOf[param] = *value;
  return success();
}

LogicalResult Lowering::setAttributes(Operation &op, plan::InstructionT &inst) {
  llvm::TypeSwitch<Operation *>(&op)
      .Case([&](MatmulOp o) {
        setInts(inst, instr::Attr::TransposeA, {o.getTransposeLhs()});
        setInts(inst, instr::Attr::TransposeB, {o.getTransposeRhs()});
      })
      .Case([&](ScaleOp o) {
        setFloat(inst, instr::Attr::Factor, o.getFactor().convertToDouble());
      })
      .Case<GeluOp, GeluGradOp>([&](auto o) {
        setString(inst, instr::Attr::Approximate,
                  stringifyGeluApproximation(o.getApproximate()));
      })
      .Case([&](SoftmaxOp o) {
        setInts(inst, instr::Attr::Causal, {o.getCausal()});
        setFloat(inst, instr::Attr::Scale, o.getScale().convertToDouble());
      })
      .Case([&](SoftmaxGradOp o) {
        setFloat(inst, instr::Attr::Scale, o.getScale().convertToDouble());
      })
      .Case<LayerNormOp, LayerNormGradOp, RmsNormOp, RmsNormGradOp>(
          [&](auto o) {
            setFloat(inst, instr::Attr::Eps, o.getEpsilon().convertToDouble());
          })
      .Case<DropoutOp, DropoutGradOp>([&](auto o) {
        setFloat(inst, instr::Attr::Rate, o.getRate().convertToDouble());
        setString(inst, instr::Attr::Site, o.getSite());
      })
      .Case<CrossEntropyOp, CrossEntropyGradOp>([&](auto o) {
        setString(inst, instr::Attr::Reduction,
                  stringifyLossReduction(o.getReduction()));
        setInts(inst, instr::Attr::IgnoreIndex, {int64_t(o.getIgnoreIndex())});
        if (o.getClasses())
          setInts(inst, instr::Attr::Classes, {int64_t(o.getClasses())});
      })
      .Case([&](TransposeOp o) {
        ArrayRef<int64_t> perm = o.getPermutation();
        setInts(inst, instr::Attr::Permutation, {perm.begin(), perm.end()});
      })
      .Case<SplitOp, ConcatOp>([&](auto o) {
        setInts(inst, instr::Attr::Axis, {int64_t(o.getAxis())});
      })
      .Case([&](ReduceOp o) {
        setString(inst, instr::Attr::Kind, stringifyReduceKind(o.getKind()));
        ArrayRef<int64_t> dims = o.getDims();
        setInts(inst, instr::Attr::Dims, {dims.begin(), dims.end()});
      })
      .Case([&](FillOp o) {
        setFloat(inst, instr::Attr::Value, o.getValue().convertToDouble());
      })
      .Case<CrossEntropyPartialsOp, CrossEntropyPartialsGradOp>([&](auto o) {
        setInts(inst, instr::Attr::IgnoreIndex, {int64_t(o.getIgnoreIndex())});
        if (o.getClasses())
          setInts(inst, instr::Attr::Classes, {int64_t(o.getClasses())});
      })
      .Case([&](CrossEntropyMaxOp o) {
        if (o.getClasses())
          setInts(inst, instr::Attr::Classes, {int64_t(o.getClasses())});
      })
      .Case<CrossEntropyCombineOp, CrossEntropyCombineGradOp>([&](auto o) {
        setInts(inst, instr::Attr::IgnoreIndex, {int64_t(o.getIgnoreIndex())});
      })
      .Case([&](dist::AllReduceOp o) {
        setString(inst, instr::Attr::Kind, stringifyReduceKind(o.getKind()));
        setInts(inst, instr::Attr::Axis, {axisIndex(o.getAxis())});
      })
      .Case<dist::AllGatherOp, dist::ReduceScatterOp, dist::AllSliceOp>(
          [&](auto o) {
            setInts(inst, instr::Attr::Axis, {axisIndex(o.getAxis())});
            setInts(inst, instr::Attr::Dim, {int64_t(o.getDim())});
          });
  // The block of a partitioned tensor the op works on.
  if (auto s = op.getAttrOfType<dist::ShardingAttr>(dist::kShardingAttrName)) {
    Value block = isa<EmbeddingGradOp>(op) ? op.getResult(0) : op.getOperand(0);
    return setBlock(op, inst, s,
                    cast<RankedTensorType>(block.getType()).getShape());
  }
  return success();
}

LogicalResult Lowering::setBlock(Operation &op, plan::InstructionT &inst,
                                 dist::ShardingAttr sharding,
                                 ArrayRef<int64_t> local) {
  std::vector<int64_t> axes, global(local.begin(), local.end());
  for (auto [d, axis] : llvm::enumerate(sharding.getDims())) {
    axes.push_back(axis.empty() ? -1 : axisIndex(axis));
    if (axis.empty())
      continue;
    std::optional<int64_t> whole =
        d < global.size()
            ? boundedProduct(global[d], axisSize(axis), kMaxArenaBytes)
            : std::nullopt;
    if (!whole)
      return op.emitError() << "the sharding " << sharding
                            << " does not fit the operand's shape over the "
                               "mesh (a dimension it names is missing or "
                               "exceeds 2^50 times "
                            << axis.getValue() << ")";
    global[d] = *whole;
  }
  setInts(inst, instr::Attr::ShardAxis, axes);
  setInts(inst, instr::Attr::GlobalShape, global);
  return success();
}

LogicalResult Lowering::lowerOp(Operation &op) {
  if (auto param = dyn_cast<ParameterOp>(op))
    return addParameter(param);
  if (isa<func::CallOp>(op))
    return op.emitError() << "inline calls before building a plan (--inline)";
  if (op.getDialect() != op.getContext()->getLoadedDialect<LoomDialect>() &&
      op.getDialect() != op.getContext()->getLoadedDialect<dist::DistDialect>())
    return op.emitError() << "the plan has no instruction for '" << op.getName()
                          << "'";
  if (isa<dist::AllToAllOp, dist::BroadcastOp, dist::SendOp, dist::RecvOp>(op))
    return op.emitError() << "the plan has no instruction for '" << op.getName()
                          << "' yet";
  if (isa<ReshapeOp, StopGradientOp, dist::FanOutOp>(op)) {
    // A view: the same storage with another shape (or the same; a fan_out
    // is the identity forward, a stop_gradient only stops the backward).
    Value reshape = op.getResult(0);
    FailureOr<int32_t> id = addView(op.getLoc(), reshape.getType(),
                                    bufferOf.lookup(op.getOperand(0)));
    if (failed(id))
      return failure();
    bufferOf[reshape] = *id;
    return success();
  }

  auto inst = std::make_unique<plan::InstructionT>();
  inst->op = op.getName().stripDialect().str();
  if (auto f = dyn_cast<FusedOp>(op)) {
    inst->op = instr::opName(instr::Op::Kernel);
    fusedOf[&op] = fused.size();
    fused.push_back({f, program.size(),
                     std::vector<bool>(op.getNumResults(), false)});
  }
  if (!instr::lookupOp(inst->op))
    return op.emitError() << "the plan has no instruction for '" << op.getName()
                          << "' (include/loom/runtime/Instructions.def)";
  if (op.hasAttr(LoomDialect::LossSeedAttrHelper::getNameStr()))
    inst->op = instr::opName(instr::Op::LossGradSeed);
  inst->location = locationText(op.getLoc());
  for (Value operand : op.getOperands())
    inst->inputs.push_back(bufferOf.lookup(operand));
  for (Value result : op.getResults()) {
    // The cross-entropy kernel writes the logits' gradient in place of the
    // logits when nothing else reads them.
    // Only a temporary of its own (no view of a parameter, an input or
    // another value: their storage outlives the logits).
    auto ownTemporary = [&](Value v) {
      auto it = bufferOf.find(v);
      if (it == bufferOf.end() || aliasOf[it->second] >= 0)
        return false;
      const plan::BufferT &b = *plan->buffers[it->second];
      return b.kind == plan::BufferKind::Temporary &&
             b.arena == plan::Arena::Workspace;
    };
    if (auto f = dyn_cast<FusedOp>(op);
        f && f.getKind() == "cross_entropy" &&
        cast<OpResult>(result).getResultNumber() == 1 &&
        f.getInputs()[0].hasOneUse() && ownTemporary(f.getInputs()[0]) &&
        f.getInputs()[0].getType() == result.getType()) {
      FailureOr<int32_t> id = addView(op.getLoc(), result.getType(),
                                      bufferOf.lookup(f.getInputs()[0]));
      if (failed(id))
        return failure();
      bufferOf[result] = *id;
      inst->outputs.push_back(*id);
      lastWriter[root(*id)] = program.size();
      continue;
    }
    FailureOr<int32_t> id = addBuffer(
        op.getLoc(), inst->op + "." + std::to_string(counter++),
        result.getType(), plan::BufferKind::Temporary, plan::Arena::Workspace);
    if (failed(id))
      return failure();
    bufferOf[result] = *id;
    plan->buffers[*id]->layer = layerOf(op);
    inst->outputs.push_back(*id);
    lastWriter[*id] = program.size();
  }
  if (failed(setAttributes(op, *inst)))
    return failure();
  if (auto f = dyn_cast<FusedOp>(op); f && failed(lowerReference(f, *inst)))
    return failure();
  instructionOf[&op] = program.size();
  program.push_back(std::move(inst));
  after.emplace_back();
  return success();
}

FailureOr<int32_t> Lowering::addView(Location loc, Type type, int32_t source) {
  FailureOr<int32_t> id =
      addBuffer(loc, "view." + std::to_string(counter++), type,
                plan::BufferKind::Temporary, plan::Arena::Workspace);
  if (failed(id))
    return failure();
  plan->buffers[*id]->arena = plan->buffers[source]->arena;
  plan->buffers[*id]->offset = plan->buffers[source]->offset;
  plan->buffers[*id]->layer = plan->buffers[source]->layer;
  aliasOf[*id] = source;
  return *id;
}

LogicalResult Lowering::lowerReference(FusedOp f, plan::InstructionT &inst) {
  Block &body = f.getBody().front();
  for (auto [arg, input] : llvm::zip(body.getArguments(), f.getInputs()))
    bufferOf[arg] = bufferOf.lookup(input);
  auto yield = cast<YieldOp>(body.getTerminator());
  for (auto [v, id] : llvm::zip(yield.getValues(), inst.outputs))
    bufferOf[v] = id;
  for (Operation &op : body.without_terminator()) {
    auto ref = std::make_unique<plan::InstructionT>();
    ref->op = op.getName().stripDialect().str();
    if (!instr::lookupOp(ref->op))
      return op.emitError() << "the plan has no instruction for '"
                            << op.getName() << "'";
    ref->location = locationText(op.getLoc());
    for (Value operand : op.getOperands())
      ref->inputs.push_back(bufferOf.lookup(operand));
    for (Value result : op.getResults()) {
      if (auto it = bufferOf.find(result); it != bufferOf.end()) {
        ref->outputs.push_back(it->second);
        continue;
      }
      FailureOr<int32_t> id = addBuffer(
          op.getLoc(), "ref." + ref->op + "." + std::to_string(counter++),
          result.getType(), plan::BufferKind::Temporary,
          plan::Arena::Workspace);
      if (failed(id))
        return failure();
      bufferOf[result] = *id;
      ref->outputs.push_back(*id);
      inst.scratch.push_back(*id);
    }
    if (failed(setAttributes(op, *ref)))
      return failure();
    inst.reference.push_back(std::move(ref));
  }
  return success();
}

void Lowering::accumulateInto(Value grad, int32_t gradBuffer) {
  Operation *def = grad.getDefiningOp();
  auto it = def ? instructionOf.find(def) : instructionOf.end();
  if (it != instructionOf.end() && grad.hasOneUse()) {
    plan::InstructionT &inst = *program[it->second];
    // A sum of gradients: accumulate each term where it is produced.
    if (auto add = dyn_cast<AddOp>(def);
        add && add.getLhs().getType() == add.getType() &&
        add.getRhs().getType() == add.getType()) {
      inst.op.clear(); // removed in finish()
      accumulateInto(add.getLhs(), gradBuffer);
      accumulateInto(add.getRhs(), gradBuffer);
      return;
    }
    // A zero gradient (a parameter the loss does not reach) adds nothing.
    if (auto fill = dyn_cast<FillOp>(def); fill && fill.getValue().isZero()) {
      inst.op.clear();
      return;
    }
    // A generated kernel adds the gradient into its accumulator itself.
    if (auto f = dyn_cast<FusedOp>(def);
        f && plan->buffers[gradBuffer]->dtype == plan::DType::F32 &&
        cast<RankedTensorType>(grad.getType()).getElementType().isF32()) {
      unsigned r = cast<OpResult>(grad).getResultNumber();
      int32_t old = inst.outputs[r];
      if (plan->buffers[old]->shape == plan->buffers[gradBuffer]->shape &&
          aliasOf[old] < 0) {
        inst.outputs[r] = gradBuffer;
        fused[fusedOf.lookup(def)].accumulate[r] = true;
        // The reference form writes the old buffer and adds it in.
        auto acc = std::make_unique<plan::InstructionT>();
        acc->op = instr::opName(instr::Op::Accumulate);
        acc->location = inst.location;
        acc->inputs = {old};
        acc->outputs = {gradBuffer};
        inst.scratch.push_back(old);
        inst.reference.push_back(std::move(acc));
        return;
      }
    }
    // Producers that can add into their output: write the gradient there.
    if (isa<MatmulOp, EmbeddingGradOp, CastOp>(def) &&
        plan->buffers[inst.outputs[0]]->dtype == plan::DType::F32 &&
        plan->buffers[inst.outputs[0]]->shape ==
            plan->buffers[gradBuffer]->shape) {
      inst.outputs[0] = gradBuffer;
      setInts(inst, instr::Attr::Accumulate, {1});
      return;
    }
  }
  auto acc = std::make_unique<plan::InstructionT>();
  acc->op = instr::opName(instr::Op::Accumulate);
  acc->inputs = {bufferOf.lookup(grad)};
  acc->outputs = {gradBuffer};
  auto writer = lastWriter.find(root(bufferOf.lookup(grad)));
  size_t position = writer == lastWriter.end() ? 0 : writer->second;
  // A gradient nothing here writes (an argument: a pipeline chunk's
  // output_grad) is added in the backward, never in a forward-only run.
  if (writer == lastWriter.end() && forwardEnd != SIZE_MAX && !program.empty())
    position = std::min(forwardEnd, program.size() - 1);
  after[position].push_back(std::move(acc));
}

LogicalResult Lowering::generateKernels() {
  // Regions that compute the same (every layer's layernorm) share a kernel.
  std::map<std::string, int64_t> known;
  for (FusedInstruction &f : fused) {
    FailureOr<codegen::KernelDesc> desc =
        codegen::buildFusedKernel(f.op, "loom_kernel", f.accumulate);
    if (failed(desc))
      return failure();
    codegen::EmittedKernel emitted = codegen::emitKernel(*desc);
    // The dropout sites are the instruction's; the rest of each scalar is
    // the kernel's signature.
    std::string signature;
    plan::InstructionT &inst = *program[f.instruction];
    for (codegen::Param &p : desc->params) {
      bool dropout = p.kind == codegen::ParamKind::DropoutKey ||
                     p.kind == codegen::ParamKind::DropoutOffset ||
                     p.kind == codegen::ParamKind::DropoutRate ||
                     p.kind == codegen::ParamKind::DropoutScale;
      inst.kernel_sites.push_back(dropout ? p.site : "");
      if (dropout)
        p.site.clear();
      signature += std::to_string(int(p.kind)) + ":" + p.site + ":" +
                   std::to_string(p.elements) + ";";
    }
    auto [it, fresh] = known.try_emplace(
        emitted.hostSource + emitted.cudaSource + signature,
        int64_t(plan->kernels.size()));
    setInts(inst, instr::Attr::Kernel, {it->second});
    if (!fresh)
      continue;
    desc->name = "loom_k" + std::to_string(plan->kernels.size()) + "_" +
                 f.op.getKind().str();
    plan->kernels.push_back(detail::kernelEntry(*desc));
  }
  if (!plan->kernels.empty()) {
    plan->kernel_host_prelude = codegen::hostPrelude();
    plan->kernel_cuda_prelude = codegen::cudaPrelude();
  }
  return success();
}

/// Splices the accumulations in, drops removed instructions and buffers
/// nothing refers to any more, and renumbers.
void Lowering::finish() {
  auto mb = std::make_unique<plan::ProgramT>();
  mb->name = "microbatch";
  for (size_t i = 0; i < program.size(); ++i) {
    if (i == forwardEnd)
      plan->forward_end = int64_t(mb->instructions.size());
    if (!program[i]->op.empty())
      mb->instructions.push_back(std::move(program[i]));
    for (auto &acc : after[i])
      mb->instructions.push_back(std::move(acc));
  }
  if (forwardEnd >= program.size())
    plan->forward_end = int64_t(mb->instructions.size());
  plan->microbatch = std::move(mb);
  plan->optimizer = buildOptimizerProgram(*plan, options);
  // The distributed optimizer's shard moments are new buffers (and the
  // parameters' own moments are no longer used: dropped below).
  aliasOf.resize(plan->buffers.size(), -1);

  std::vector<bool> used(plan->buffers.size(), false);
  auto mark = [&](int32_t id) {
    for (; id >= 0; id = aliasOf[id])
      used[id] = true;
  };
  for (const auto *prog : {plan->microbatch.get(), plan->optimizer.get()})
    for (const auto &inst : prog->instructions)
      runtime::forEachBufferOf(*inst, mark);
  for (const auto &p : plan->parameters)
    for (int32_t id : {p->value, p->grad, p->moment1, p->moment2})
      mark(id);
  for (const auto &in : plan->inputs)
    mark(in->buffer);
  for (int32_t id : {plan->loss, plan->activation_out, plan->input_grad})
    if (id >= 0)
      mark(id);

  std::vector<int32_t> newId(plan->buffers.size(), -1);
  std::vector<std::unique_ptr<plan::BufferT>> kept;
  std::vector<int32_t> keptAlias;
  for (size_t i = 0; i < plan->buffers.size(); ++i)
    if (used[i]) {
      newId[i] = int32_t(kept.size());
      kept.push_back(std::move(plan->buffers[i]));
      keptAlias.push_back(aliasOf[i] >= 0 ? newId[aliasOf[i]] : -1);
    }
  plan->buffers = std::move(kept);
  aliasOf = std::move(keptAlias);
  auto remap = [&](int32_t &id) { id = newId[id]; };
  for (const auto *prog : {plan->microbatch.get(), plan->optimizer.get()})
    for (const auto &inst : prog->instructions)
      runtime::forEachBufferOf(*inst, remap);
  for (const auto &p : plan->parameters)
    for (int32_t *id : {&p->value, &p->grad, &p->moment1, &p->moment2})
      remap(*id);
  for (const auto &in : plan->inputs)
    remap(in->buffer);
  for (int32_t *id : {&plan->loss, &plan->activation_out, &plan->input_grad})
    if (*id >= 0)
      remap(*id);
}

FailureOr<std::unique_ptr<plan::PlanT>> Lowering::run() {
  Block &body = fn.front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  auto chunkAttr = fn->getAttrOfType<IntegerAttr>(
      LoomDialect::PipelineChunkAttrHelper::getNameStr());
  auto result = ret.getNumOperands()
                    ? dyn_cast<RankedTensorType>(ret.getOperand(0).getType())
                    : RankedTensorType();
  bool activationOut = chunkAttr && result && result.getRank() != 0;
  if (!result || (!activationOut && result.getRank() != 0))
    return fn.emitError() << "@" << fn.getSymName()
                          << " must return the scalar loss first";
  if (chunkAttr)
    plan->chunk_index = chunkAttr.getInt();
  ModuleOp module = fn->getParentOfType<ModuleOp>();
  auto intAttr = [](Operation *op, StringRef name, int64_t fallback) {
    auto a = op->getAttrOfType<IntegerAttr>(name);
    return a ? a.getInt() : fallback;
  };
  // An attribute the plan divides by or sizes with: present means an integer.
  for (StringRef name : {LoomDialect::MicroBatchSizeAttrHelper::getNameStr(),
                         LoomDialect::GlobalBatchSizeAttrHelper::getNameStr()})
    if (Attribute a = module->getAttr(name); a && !isa<IntegerAttr>(a))
      return module.emitError() << name << " must be an integer, got " << a;

  plan->model = fn.getSymName().str();
  plan->compiler = options.compiler;
  mesh = dist::getMesh(fn);
  for (const char *axis : {"dp", "pp", "tp"}) {
    auto a = std::make_unique<plan::MeshAxisT>();
    a->name = axis;
    a->size = mesh ? mesh.getAxisSize(axis).value_or(1) : 1;
    plan->mesh.push_back(std::move(a));
  }
  if (mesh)
    for (StringAttr axis : mesh.getNames())
      if (axisIndex(axis) < 0)
        return fn.emitError() << "the plan's mesh has the axes dp, pp and tp; "
                              << mesh << " has '" << axis.getValue() << "'";
  std::optional<int64_t> ranks = 1;
  for (const auto &axis : plan->mesh)
    if (ranks)
      ranks = boundedProduct(*ranks, axis->size, kMaxMeshRanks);
  if (!ranks)
    return fn.emitError() << "the mesh " << mesh << " has more than "
                          << kMaxMeshRanks << " ranks; use a smaller --mesh";
  plan->sequence_parallel = module->hasAttr(
      dist::DistDialect::SequenceParallelAttrHelper::getNameStr());
  // The front end records the batch sizes; loom IR may hold anything here,
  // so check them before dividing by them.
  plan->micro_batch_size =
      intAttr(module, LoomDialect::MicroBatchSizeAttrHelper::getNameStr(),
              tokensBatch(module));
  plan->global_batch_size =
      intAttr(module, LoomDialect::GlobalBatchSizeAttrHelper::getNameStr(),
              plan->micro_batch_size);
  int64_t dp = axisSize("dp");
  for (auto [value, attr, option] :
       {std::tuple(plan->micro_batch_size,
                   LoomDialect::MicroBatchSizeAttrHelper::getNameStr(),
                   "--micro-batch-size"),
        std::tuple(plan->global_batch_size,
                   LoomDialect::GlobalBatchSizeAttrHelper::getNameStr(),
                   "--global-batch-size")})
    if (value < 1 || value > kMaxBatchSize)
      return module.emitError()
             << attr << " is " << value << "; the batch sizes are 1 to "
             << kMaxBatchSize << " sequences (loomc " << option << ")";
  // Both are at most 2^30 and dp at most 2^20: no overflow.
  int64_t perStep = plan->micro_batch_size * dp;
  if (plan->global_batch_size % perStep != 0)
    return fn.emitError() << "the global batch size " << plan->global_batch_size
                          << " is not a multiple of the micro-batch size "
                          << plan->micro_batch_size << " x dp " << dp
                          << " (each data-parallel rank runs microbatches of "
                             "--micro-batch-size sequences); choose "
                             "--global-batch-size as a multiple of "
                          << perStep;
  plan->num_microbatches = plan->global_batch_size / perStep;
  if (plan->num_microbatches > kMaxMicrobatches)
    return fn.emitError() << "the global batch size " << plan->global_batch_size
                          << " makes " << plan->num_microbatches
                          << " microbatches per step, more than "
                          << kMaxMicrobatches
                          << "; choose a larger --micro-batch-size or a "
                             "smaller --global-batch-size";

  for (BlockArgument arg : body.getArguments()) {
    auto input = std::make_unique<plan::InputT>();
    auto name = fn.getArgAttrOfType<StringAttr>(
        arg.getArgNumber(), LoomDialect::kInputArgAttr.getNameStr());
    input->name =
        name ? name.str() : "arg" + std::to_string(arg.getArgNumber());
    if (fn.getArgAttr(arg.getArgNumber(),
                      LoomDialect::kBoundaryInputArgAttr.getNameStr())) {
      input->name = "activation";
      plan->activation_in = int32_t(plan->inputs.size());
    }
    if (fn.getArgAttr(arg.getArgNumber(),
                      LoomDialect::kOutputGradArgAttr.getNameStr())) {
      input->name = "output_grad";
      plan->output_grad = int32_t(plan->inputs.size());
    }
    FailureOr<int32_t> id =
        addBuffer(fn.getLoc(), "input." + input->name, arg.getType(),
                  plan::BufferKind::Input, plan::Arena::Workspace);
    if (failed(id))
      return failure();
    input->buffer = *id;
    bufferOf[arg] = *id;
    if (input->name == "tokens") {
      auto shape = cast<RankedTensorType>(arg.getType()).getShape();
      if (shape.size() != 2 || shape[0] != plan->micro_batch_size)
        return fn.emitError()
               << "the tokens input is " << arg.getType()
               << "; a plan reads tokens as i32[micro-batch, seq] with the "
                  "micro-batch size "
               << plan->micro_batch_size << " (loom.micro_batch_size)";
      plan->seq_length = shape.back();
      // The runtime holds a step's tokens at once; 2^40 keeps every count
      // of them (and of their bytes) inside int64.
      if (!boundedProduct(plan->global_batch_size, plan->seq_length,
                          runtime::kMaxBatchTokens))
        return fn.emitError()
               << "a step of " << plan->global_batch_size << " sequences of "
               << plan->seq_length
               << " tokens is more than 2^40 tokens; choose a smaller "
                  "--global-batch-size";
    }
    plan->inputs.push_back(std::move(input));
  }

  double flops = 0, recomputedFlops = 0;
  int64_t forwardOps = -1, index = 0;
  if (auto n = fn->getAttrOfType<IntegerAttr>(
          LoomDialect::ForwardOpsAttrHelper::getNameStr()))
    forwardOps = n.getInt();
  for (Operation &op : body.without_terminator()) {
    if (index++ == forwardOps)
      forwardEnd = program.size();
    if (failed(lowerOp(op)))
      return failure();
    if (auto cost = dyn_cast<CostOpInterface>(op))
      flops += cost.getFlops();
    // What the backward recomputes (loom.recomputed, a fusion region's ops
    // included) is hardware work, not the model's.
    op.walk([&](Operation *inner) {
      if (auto cost = dyn_cast<CostOpInterface>(inner))
        if (inner->hasAttr(LoomDialect::RecomputedAttrHelper::getNameStr()))
          recomputedFlops += cost.getFlops();
    });
    // Token ids index embedding tables and label ids the logits: both bound
    // the ids a dataset may hold (a fusion region's ops included).
    // A vocabulary-parallel table or logits hold a block of the vocabulary.
    op.walk([&](Operation *inner) {
      int64_t vocab = 0, blocks = 1;
      if (auto s = inner->getAttrOfType<dist::ShardingAttr>(
              dist::kShardingAttrName))
        blocks = axisSize(s.getDimAxis(
            isa<EmbeddingOp>(inner) ? 0 : s.getDims().size() - 1));
      // Only the table the tokens index bounds the token ids: BERT's
      // token-type table (2 rows) indexes another input.
      if (auto e = dyn_cast<EmbeddingOp>(inner);
          e && fedByTokens(e.getIndices()))
        vocab = e.getTable().getType().getShape()[0] * blocks;
      // Only the real classes: a label among the padded ones is an error.
      if (auto ce = dyn_cast<CrossEntropyOp>(inner))
        vocab = ce.getClasses() ? int64_t(ce.getClasses())
                                : ce.getLogits().getType().getShape().back();
      if (auto ce = dyn_cast<CrossEntropyPartialsOp>(inner))
        vocab = ce.getClasses()
                    ? int64_t(ce.getClasses())
                    : ce.getLogits().getType().getShape().back() * blocks;
      if (vocab && (!plan->vocab_size || vocab < plan->vocab_size))
        plan->vocab_size = vocab;
    });
  }
  // Every rank's work: the global batch's microbatches on every rank.
  double work =
      double(plan->num_microbatches) * double(axisSize("dp") * axisSize("tp"));
  plan->step_flops = flops * work;
  plan->model_flops = (flops - recomputedFlops) * work;
  plan->recompute = options.recompute;
  if (auto layers = fn->getAttrOfType<ArrayAttr>(
          LoomDialect::LayerRecomputeAttrHelper::getNameStr()))
    for (Attribute a : layers)
      plan->layer_recompute.push_back(cast<StringAttr>(a).str());

  if (forwardEnd == SIZE_MAX)
    forwardEnd = program.size();
  int32_t first = bufferOf.lookup(ret.getOperand(0));
  if (activationOut) {
    plan->loss = -1;
    plan->activation_out = first;
  } else {
    plan->loss = first;
  }
  plan->buffers[first]->kind = plan::BufferKind::Output;
  plan->buffers[first]->name = activationOut ? "activation_out" : "loss";
  for (unsigned i = 1; i < ret.getNumOperands(); ++i) {
    if (fn.getResultAttr(i, LoomDialect::kInputGradResultAttr.getNameStr())) {
      // Written by the backward, read after the program: its own buffer.
      plan->input_grad = bufferOf.lookup(ret.getOperand(i));
      plan->buffers[plan->input_grad]->kind = plan::BufferKind::Output;
      plan->buffers[plan->input_grad]->name = "input_grad";
      continue;
    }
    auto name = fn.getResultAttrOfType<StringAttr>(
        i, LoomDialect::kGradResultAttr.getNameStr());
    if (!name)
      continue; // another result: not part of the training step
    auto it = parameterIndex.find(name.getValue());
    if (it == parameterIndex.end())
      return fn.emitError()
             << "result #" << i << " is the gradient of '" << name.getValue()
             << "', which the function does not declare";
    accumulateInto(ret.getOperand(i), plan->parameters[it->second]->grad);
  }

  auto normalizer = fn->getAttrOfType<StringAttr>(
      LoomDialect::LossNormalizerAttrHelper::getNameStr());
  plan->loss_normalizer = normalizer ? normalizer.str() : "microbatches";
  plan->labels_input = -1;
  if (plan->loss_normalizer == "tokens") {
    int64_t labels =
        intAttr(fn, LoomDialect::LabelsInputAttrHelper::getNameStr(), -1);
    if (labels < 0 || labels >= int64_t(plan->inputs.size()))
      return fn.emitError()
             << "loom.labels_input = " << labels << " names no argument of @"
             << fn.getSymName() << ", which has " << plan->inputs.size();
    plan->labels_input = int32_t(labels);
    plan->ignore_index =
        intAttr(fn, LoomDialect::IgnoreIndexAttrHelper::getNameStr(), -100);
  }
  plan->optimizer_defaults =
      std::make_unique<plan::OptimizerDefaultsT>(options.optimizer);
  plan->precision = std::make_unique<plan::PrecisionPolicyT>(options.precision);

  if (failed(generateKernels()))
    return failure();
  finish();
  persistentBytes = detail::layoutPersistent(*plan);
  plan->arena_bytes = {persistentBytes, 0, 0};
  if (failed(planWorkspace(*plan, aliasOf)))
    return fn.emitError() << "the activations of one microbatch take more "
                             "than 2^50 bytes (1 PiB) on one rank; choose a "
                             "smaller --micro-batch-size or split the model "
                             "over more ranks (--mesh)";
  // (A pipeline chunk is checked with the pipeline's plan.)
  if (runtime::Status s = runtime::validatePlan(*plan, "the plan just built");
      !chunkAttr && !s.ok())
    return fn.emitError() << s.message();
  return std::move(plan);
}

} // namespace

std::unique_ptr<plan::KernelT>
detail::kernelEntry(const codegen::KernelDesc &desc) {
  codegen::EmittedKernel emitted = codegen::emitKernel(desc);
  auto k = std::make_unique<plan::KernelT>();
  k->name = emitted.entry;
  k->family = desc.family;
  k->host_source = emitted.hostSource;
  k->cuda_source = emitted.cudaSource;
  for (const codegen::Arg &a : desc.args) {
    auto arg = std::make_unique<plan::KernelArgT>();
    arg->name = a.name;
    arg->dtype = a.type == codegen::ElemType::F32   ? plan::DType::F32
                 : a.type == codegen::ElemType::I32 ? plan::DType::I32
                                                    : plan::DType::I64;
    arg->output = a.output;
    arg->elements = a.elements;
    k->args.push_back(std::move(arg));
  }
  for (const codegen::Param &p : desc.params) {
    auto param = std::make_unique<plan::KernelParamT>();
    param->kind = p.kind == codegen::ParamKind::DropoutKey ? "dropout_key"
                  : p.kind == codegen::ParamKind::DropoutOffset
                      ? "dropout_offset"
                  : p.kind == codegen::ParamKind::DropoutRate  ? "dropout_rate"
                  : p.kind == codegen::ParamKind::DropoutScale ? "dropout_scale"
                  : p.kind == codegen::ParamKind::Count        ? "count"
                                                               : "real";
    param->site = p.site;
    param->elements = p.elements;
    k->params.push_back(std::move(param));
  }
  for (const codegen::Stage &s : desc.stages)
    for (const codegen::Check &c : s.checks)
      k->checks.push_back(c.message);
  k->launch_rule = emitted.launch.rule;
  k->grid = emitted.launch.grid;
  k->block = emitted.launch.block;
  k->zero_args = emitted.launch.zeroArgs;
  return k;
}

FailureOr<std::unique_ptr<plan::PlanT>>
detail::lowerFunction(func::FuncOp fn, const PlanOptions &options) {
  return Lowering(fn, options).run();
}

} // namespace loom
