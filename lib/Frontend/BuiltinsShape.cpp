//===- BuiltinsShape.cpp - shape, reduction and cast builtins -------------===//
//
// reshape, transpose, split, concat, reduce_sum/mean/max and cast. The
// language gives their arguments as compile-time lists and axes, so the
// result types are computed here; negative axes count from the end.
//
//===----------------------------------------------------------------------===//

#include "Builtins.h"

#include "loom/dialects/Loom/IR/LoomOps.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;

namespace loom {
namespace frontend {

/// So that no `split` can make the compiler build an absurd number of
/// results (docs/language.md lists this limit with the others).
constexpr int64_t kMaxSplitPieces = 4096;

FailureOr<Val> buildReshape(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<SmallVector<int64_t>> shape = call.intList("shape");
  if (failed(shape))
    return failure();
  for (int64_t d : *shape)
    if (d < 1)
      return call.error() << "reshape: every dimension must be at least 1, "
                             "got "
                          << d;
  auto type = RankedTensorType::get(
      *shape, cast<RankedTensorType>(x->getType()).getElementType());
  return call.tensorResult(
      call.builder().create<ReshapeOp>(call.loc(), type, *x));
}

FailureOr<Val> buildTranspose(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<SmallVector<int64_t>> permutation = call.intList("permutation");
  if (failed(permutation))
    return failure();
  auto in = cast<RankedTensorType>(x->getType());
  SmallVector<int64_t> shape;
  for (int64_t p : *permutation) {
    if (p < 0 || p >= in.getRank())
      return call.error() << "transpose: " << p << " is not a dimension of "
                          << in;
    shape.push_back(in.getDimSize(p));
  }
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<TransposeOp>(
      call.loc(), RankedTensorType::get(shape, in.getElementType()), *x,
      b.getDenseI64ArrayAttr(*permutation)));
}

FailureOr<Val> buildSplit(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<int64_t> axisArg = call.integer("axis");
  if (failed(axisArg))
    return failure();
  auto in = cast<RankedTensorType>(x->getType());
  int64_t axis = *axisArg < 0 ? *axisArg + in.getRank() : *axisArg;
  if (axis < 0 || axis >= in.getRank())
    return call.error() << "split: axis " << *axisArg
                        << " is not a dimension of " << in;
  SmallVector<int64_t> sizes;
  bool hasParts = call.given("parts");
  if (hasParts == call.given("sizes"))
    return call.error() << "split needs exactly one of parts = N (equal "
                           "pieces) or sizes = [..]";
  if (hasParts) {
    FailureOr<int64_t> parts = call.integer("parts");
    if (failed(parts))
      return failure();
    if (*parts < 1 || *parts > kMaxSplitPieces ||
        in.getDimSize(axis) % *parts != 0)
      return call.error() << "split: " << *parts
                          << " equal parts do not divide dimension " << axis
                          << " of " << in << " (size " << in.getDimSize(axis)
                          << ")";
    sizes.assign(*parts, in.getDimSize(axis) / *parts);
  } else {
    FailureOr<SmallVector<int64_t>> list = call.intList("sizes");
    if (failed(list))
      return failure();
    sizes = *list;
    if (static_cast<int64_t>(sizes.size()) > kMaxSplitPieces)
      return call.error() << "split into more than " << kMaxSplitPieces
                          << " pieces";
  }
  SmallVector<Type> types;
  for (int64_t size : sizes) {
    if (size < 1)
      return call.error() << "split: a piece of size " << size
                          << "; every piece needs at least 1";
    SmallVector<int64_t> shape(in.getShape());
    shape[axis] = size;
    types.push_back(RankedTensorType::get(shape, in.getElementType()));
  }
  OpBuilder &b = call.builder();
  auto op = b.create<SplitOp>(call.loc(), types, *x, b.getI64IntegerAttr(axis));
  if (failed(call.checked(op)))
    return failure();
  // One piece is a tensor, not a list of one.
  if (sizes.size() == 1)
    return Val::ofTensor(op.getResult(0));
  std::vector<Val> pieces;
  for (Value v : op.getResults())
    pieces.push_back(Val::ofTensor(v));
  return Val::ofList(std::move(pieces));
}

FailureOr<Val> buildConcat(BuiltinCall &call) {
  FailureOr<int64_t> axisArg = call.integer("axis");
  if (failed(axisArg))
    return failure();
  const std::optional<Val> &tensors = call.arg("tensors");
  if (!tensors || tensors->kind != Val::Kind::List || tensors->list.empty() ||
      llvm::any_of(tensors->list,
                   [](const Val &v) { return v.kind != Val::Kind::Tensor; }))
    return call.error() << "concat's first argument must be a non-empty list "
                           "of tensors";
  SmallVector<Value> inputs;
  for (const Val &v : tensors->list)
    inputs.push_back(v.tensor);
  auto first = cast<RankedTensorType>(inputs.front().getType());
  int64_t axis = *axisArg < 0 ? *axisArg + first.getRank() : *axisArg;
  if (axis < 0 || axis >= first.getRank())
    return call.error() << "concat: axis " << *axisArg
                        << " is not a dimension of " << first;
  SmallVector<int64_t> shape(first.getShape());
  shape[axis] = 0;
  for (Value v : inputs) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != first.getRank())
      return call.error() << "concat: " << t << " and " << first
                          << " have different ranks";
    if (__builtin_add_overflow(shape[axis], t.getDimSize(axis), &shape[axis]))
      return call.error() << "concat: the sizes along axis " << axis
                          << " add up to more than 64 bits hold";
  }
  OpBuilder &b = call.builder();
  return call.tensorResult(b.create<ConcatOp>(
      call.loc(), RankedTensorType::get(shape, first.getElementType()), inputs,
      b.getI64IntegerAttr(axis)));
}

/// reduce_sum, reduce_mean and reduce_max differ only in their kind.
static FailureOr<Val> buildReduce(BuiltinCall &call, ReduceKind kind) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<SmallVector<int64_t>> dims = call.intList("dims");
  if (failed(dims))
    return failure();
  FailureOr<bool> keep = call.boolean("keep_dims", false);
  if (failed(keep))
    return failure();
  auto in = cast<RankedTensorType>(x->getType());
  for (int64_t &d : *dims)
    if (d < 0)
      d += in.getRank();
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < in.getRank(); ++i) {
    if (!llvm::is_contained(*dims, i))
      shape.push_back(in.getDimSize(i));
    else if (*keep)
      shape.push_back(1);
  }
  return call.tensorResult(call.builder().create<ReduceOp>(
      call.loc(), RankedTensorType::get(shape, in.getElementType()), kind, *x,
      *dims, *keep));
}

FailureOr<Val> buildReduceSum(BuiltinCall &call) {
  return buildReduce(call, ReduceKind::Sum);
}

FailureOr<Val> buildReduceMean(BuiltinCall &call) {
  return buildReduce(call, ReduceKind::Mean);
}

FailureOr<Val> buildReduceMax(BuiltinCall &call) {
  return buildReduce(call, ReduceKind::Max);
}

FailureOr<Val> buildCast(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  const std::optional<Val> &to = call.arg("to");
  if (!to || to->kind != Val::Kind::DType)
    return call.error() << "cast's second argument must be an element type "
                           "(f32, bf16, f16, i32, i64, i1)";
  auto in = cast<RankedTensorType>(x->getType());
  return call.tensorResult(call.builder().create<CastOp>(
      call.loc(),
      RankedTensorType::get(in.getShape(),
                            elementTypeNamed(call.context(), to->s)),
      *x));
}

} // namespace frontend
} // namespace loom
