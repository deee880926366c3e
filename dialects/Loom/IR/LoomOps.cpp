//===- LoomOps.cpp - loom op verifiers and folders ------------------------===//
//
// Verifier messages say what is wrong and what was expected; every message has
// a case in test/Dialect/Loom/invalid.mlir.
//
//===----------------------------------------------------------------------===//

#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <string>

using namespace mlir;
using namespace loom;

namespace {

using EmitErrorFn = function_ref<InFlightDiagnostic()>;

/// Emits `parts` through `emitError` when it is non-null; always fails.
template <typename... Parts>
LogicalResult fail(EmitErrorFn emitError, Parts &&...parts) {
  if (emitError) {
    InFlightDiagnostic diag = emitError();
    (diag << ... << parts);
  }
  return failure();
}

RankedTensorType tensorTypeOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// Checks that `op`'s result has the type its operands give.
LogicalResult verifyResultType(Operation *op, Type actual, Type expected) {
  if (actual == expected)
    return success();
  return op->emitOpError() << "result type " << actual << " does not match "
                           << expected << ", the type its operands give";
}

LogicalResult verifyAxis(Operation *op, int64_t axis, int64_t rank) {
  if (axis >= 0 && axis < rank)
    return success();
  return op->emitOpError() << "axis " << axis << " is out of range for rank "
                           << rank << "; it must be in [0, " << rank << ")";
}

/// True when `type` has `reference`'s element type and shape, except perhaps
/// for its size along `axis` (the pieces of a split or a concat).
bool matchesExceptAlongAxis(RankedTensorType type, RankedTensorType reference,
                            int64_t axis) {
  if (type.getElementType() != reference.getElementType() ||
      type.getRank() != reference.getRank())
    return false;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (i != axis && type.getDimSize(i) != reference.getDimSize(i))
      return false;
  return true;
}

} // namespace

std::string loom::shapeString(ArrayRef<int64_t> shape) {
  return "[" +
         llvm::join(llvm::map_range(
                        shape, [](int64_t d) { return std::to_string(d); }),
                    ", ") +
         "]";
}

bool loom::isDottedPath(StringRef name) {
  if (name.empty())
    return false;
  SmallVector<StringRef> pieces;
  name.split(pieces, '.');
  return llvm::all_of(pieces, [](StringRef piece) {
    return !piece.empty() && llvm::all_of(piece, [](char c) {
      return llvm::isAlnum(c) || c == '_';
    });
  });
}

FailureOr<RankedTensorType> loom::inferBroadcastType(RankedTensorType lhs,
                                                     RankedTensorType rhs,
                                                     EmitErrorFn emitError) {
  if (lhs.getElementType() != rhs.getElementType())
    return fail(emitError, "operands have different element types (",
                lhs.getElementType(), " and ", rhs.getElementType(),
                "); insert a loom.cast to match them");
  int64_t rank = std::max(lhs.getRank(), rhs.getRank());
  SmallVector<int64_t> shape(rank);
  for (int64_t i = 0; i < rank; ++i) {
    int64_t l = lhs.getRank() - rank + i, r = rhs.getRank() - rank + i;
    int64_t ld = l >= 0 ? lhs.getDimSize(l) : 1;
    int64_t rd = r >= 0 ? rhs.getDimSize(r) : 1;
    if (ld != rd && ld != 1 && rd != 1)
      return fail(emitError, "operands ", lhs, " and ", rhs,
                  " do not broadcast: lhs dimension ", l, " is ", ld,
                  " and rhs dimension ", r, " is ", rd,
                  "; aligned from the right, each pair must be equal or 1");
    shape[i] = ld == 1 ? rd : ld;
  }
  return RankedTensorType::get(shape, lhs.getElementType());
}

//===----------------------------------------------------------------------===//
// ParameterOp
//===----------------------------------------------------------------------===//

LogicalResult ParameterOp::verify() {
  if (!isDottedPath(getName()))
    return emitOpError() << "name '" << getName()
                         << "' is not a dotted path of identifiers and "
                            "indices; write it like "
                            "'layers.3.attention.qkv.weight'";
  RankedTensorType type = getResult().getType();
  if (llvm::is_contained(type.getShape(), 0))
    return emitOpError() << "parameter '" << getName() << "' of type " << type
                         << " has no elements; every dimension must be at "
                            "least 1";
  return success();
}

//===----------------------------------------------------------------------===//
// MatmulOp
//===----------------------------------------------------------------------===//

FailureOr<RankedTensorType> MatmulOp::inferResultType(RankedTensorType lhs,
                                                      RankedTensorType rhs,
                                                      bool transposeLhs,
                                                      bool transposeRhs,
                                                      EmitErrorFn emitError) {
  if (lhs.getRank() < 2 || rhs.getRank() < 2)
    return fail(emitError,
                "operands must have rank 2 or more ([..., m, k] and "
                "[..., k, n]), got ",
                lhs, " and ", rhs);
  if (lhs.getElementType() != rhs.getElementType())
    return fail(emitError, "operands have different element types (",
                lhs.getElementType(), " and ", rhs.getElementType(),
                "); insert a loom.cast to match them");
  ArrayRef<int64_t> ls = lhs.getShape(), rs = rhs.getShape();
  int64_t lr = lhs.getRank(), rr = rhs.getRank();
  int64_t m = transposeLhs ? ls[lr - 1] : ls[lr - 2];
  int64_t lk = transposeLhs ? ls[lr - 2] : ls[lr - 1];
  int64_t rk = transposeRhs ? rs[rr - 1] : rs[rr - 2];
  int64_t n = transposeRhs ? rs[rr - 2] : rs[rr - 1];
  if (lk != rk)
    return fail(emitError, "contraction dimensions differ: lhs ", lhs,
                transposeLhs ? " (transposed)" : "", " has k = ", lk,
                " but rhs ", rhs, transposeRhs ? " (transposed)" : "",
                " has k = ", rk);
  ArrayRef<int64_t> lb = ls.drop_back(2), rb = rs.drop_back(2);
  if (!lb.empty() && !rb.empty() && lb != rb)
    return fail(emitError, "batch dimensions differ: lhs ", shapeString(lb),
                ", rhs ", shapeString(rb),
                "; they must be equal, or one operand must have rank 2 and "
                "be broadcast");
  SmallVector<int64_t> shape(lb.empty() ? rb : lb);
  shape.append({m, n});
  return RankedTensorType::get(shape, lhs.getElementType());
}

LogicalResult MatmulOp::verify() {
  FailureOr<RankedTensorType> expected =
      inferResultType(getLhs().getType(), getRhs().getType(), getTransposeLhs(),
                      getTransposeRhs(), [&] { return emitOpError(); });
  if (failed(expected))
    return failure();
  return verifyResultType(*this, getType(), *expected);
}

//===----------------------------------------------------------------------===//
// Elementwise binary ops
//===----------------------------------------------------------------------===//

static LogicalResult verifyBinaryOp(Operation *op) {
  FailureOr<RankedTensorType> expected = inferBroadcastType(
      tensorTypeOf(op->getOperand(0)), tensorTypeOf(op->getOperand(1)),
      [&] { return op->emitOpError(); });
  if (failed(expected))
    return failure();
  return verifyResultType(op, op->getResult(0).getType(), *expected);
}

LogicalResult AddOp::verify() { return verifyBinaryOp(*this); }
LogicalResult SubOp::verify() { return verifyBinaryOp(*this); }
LogicalResult MulOp::verify() { return verifyBinaryOp(*this); }
LogicalResult DivOp::verify() { return verifyBinaryOp(*this); }

//===----------------------------------------------------------------------===//
// Unary ops
//===----------------------------------------------------------------------===//

OpFoldResult NegOp::fold(FoldAdaptor) {
  if (auto inner = getInput().getDefiningOp<NegOp>())
    return inner.getInput();
  return {};
}

LogicalResult ScaleOp::verify() {
  double factor = getFactor().convertToDouble();
  if (!std::isfinite(factor))
    return emitOpError() << "factor must be finite, got " << factor;
  return success();
}

OpFoldResult ScaleOp::fold(FoldAdaptor) {
  if (getFactor().isExactlyValue(1.0))
    return getInput();
  return {};
}

LogicalResult CastOp::verify() {
  RankedTensorType in = getInput().getType(), out = getResult().getType();
  if (in.getShape() != out.getShape())
    return emitOpError() << "changes the shape from " << in << " to " << out
                         << "; a cast changes only the element type (use "
                            "loom.reshape for the shape)";
  return success();
}

OpFoldResult CastOp::fold(FoldAdaptor) {
  if (getInput().getType() == getResult().getType())
    return getInput();
  return {};
}

//===----------------------------------------------------------------------===//
// Softmax, normalisation, dropout
//===----------------------------------------------------------------------===//

LogicalResult SoftmaxOp::verify() {
  RankedTensorType input = getInput().getType();
  double scale = getScale().convertToDouble();
  if (!std::isfinite(scale) || scale <= 0.0)
    return emitOpError() << "scale must be a positive finite number, got "
                         << scale;
  if (input.getRank() < 1)
    return emitOpError() << "needs an input of rank 1 or more (softmax runs "
                            "over the last dimension), got "
                         << input;
  int64_t keys = input.getDimSize(input.getRank() - 1);
  if (keys == 0)
    return emitOpError() << "the last dimension of " << input
                         << " is empty; softmax over no elements is undefined";
  if (getCausal()) {
    if (input.getRank() < 2)
      return emitOpError() << "causal softmax needs a [..., query, key] input "
                              "of rank 2 or more, got "
                           << input;
    int64_t queries = input.getDimSize(input.getRank() - 2);
    if (queries > keys)
      return emitOpError() << "causal softmax on " << input << " has "
                           << queries << " queries but only " << keys
                           << " keys, so the first " << queries - keys
                           << " queries would see no key; it needs at least "
                              "as many keys as queries";
  }
  if (Value mask = getMask()) {
    RankedTensorType maskType = tensorTypeOf(mask);
    if (maskType.getRank() > input.getRank())
      return emitOpError() << "mask " << maskType << " has rank "
                           << maskType.getRank() << " but the input " << input
                           << " only " << input.getRank();
    int64_t offset = input.getRank() - maskType.getRank();
    for (int64_t i = 0; i < maskType.getRank(); ++i) {
      int64_t md = maskType.getDimSize(i), id = input.getDimSize(i + offset);
      if (md != 1 && md != id)
        return emitOpError()
               << "mask " << maskType << " does not broadcast to the input "
               << input << ": mask dimension " << i << " is " << md
               << " but input dimension " << i + offset << " is " << id
               << "; each must be 1 or equal";
    }
  }
  return success();
}

/// Norm weights and biases have the shape of the input's last dimension.
static LogicalResult verifyNormOperand(Operation *op, StringRef what,
                                       RankedTensorType operand,
                                       RankedTensorType input) {
  auto expected = RankedTensorType::get({input.getDimSize(input.getRank() - 1)},
                                        input.getElementType());
  if (operand == expected)
    return success();
  return op->emitOpError() << what << " has type " << operand << "; expected "
                           << expected
                           << ", the input's last dimension and element type";
}

static LogicalResult verifyNorm(Operation *op, RankedTensorType input,
                                APFloat epsilon) {
  if (input.getRank() < 1)
    return op->emitOpError() << "needs an input of rank 1 or more (it "
                                "normalises over the last dimension), got "
                             << input;
  double eps = epsilon.convertToDouble();
  if (!std::isfinite(eps) || eps <= 0.0)
    return op->emitOpError()
           << "epsilon must be a positive finite number, got " << eps;
  return success();
}

LogicalResult LayerNormOp::verify() {
  RankedTensorType input = getInput().getType();
  if (failed(verifyNorm(*this, input, getEpsilon())) ||
      failed(verifyNormOperand(*this, "weight", getWeight().getType(), input)))
    return failure();
  return verifyNormOperand(*this, "bias", getBias().getType(), input);
}

LogicalResult RmsNormOp::verify() {
  RankedTensorType input = getInput().getType();
  if (failed(verifyNorm(*this, input, getEpsilon())))
    return failure();
  return verifyNormOperand(*this, "weight", getWeight().getType(), input);
}

LogicalResult DropoutOp::verify() {
  double rate = getRate().convertToDouble();
  if (!(rate >= 0.0 && rate < 1.0))
    return emitOpError() << "rate must be in [0, 1), got " << rate;
  if (!isDottedPath(getSite()))
    return emitOpError() << "site '" << getSite()
                         << "' is not a dotted path of identifiers and "
                            "indices; write it like "
                            "'layers.3.attention.dropout'";
  return success();
}

OpFoldResult DropoutOp::fold(FoldAdaptor) {
  if (getRate().isZero())
    return getInput();
  return {};
}

//===----------------------------------------------------------------------===//
// Gathers and shape manipulation
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  RankedTensorType table = getTable().getType();
  if (table.getRank() != 2)
    return emitOpError() << "table must be [vocab, hidden], got " << table;
  if (table.getDimSize(0) == 0)
    return emitOpError() << "table " << table
                         << " has no rows, so every index is out of range";
  SmallVector<int64_t> shape(getIndices().getType().getShape());
  shape.push_back(table.getDimSize(1));
  return verifyResultType(*this, getType(),
                          RankedTensorType::get(shape, table.getElementType()));
}

LogicalResult ReshapeOp::verify() {
  RankedTensorType in = getInput().getType(), out = getResult().getType();
  if (in.getElementType() != out.getElementType())
    return emitOpError() << "changes the element type from "
                         << in.getElementType() << " to "
                         << out.getElementType()
                         << "; use loom.cast to convert elements";
  std::optional<int64_t> inCount = elementCount(in),
                         outCount = elementCount(out);
  for (auto [type, count] : {std::pair(in, inCount), std::pair(out, outCount)})
    if (!count)
      return emitOpError() << type
                           << " has more elements than a 64-bit count holds";
  if (*inCount != *outCount)
    return emitOpError() << "from " << in << " (" << *inCount
                         << " elements) to " << out << " (" << *outCount
                         << " elements) changes the element count";
  return success();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor) {
  // reshape(reshape(x)) is one reshape of x.
  if (auto inner = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(inner.getInput());
    if (getInput().getType() == getType())
      return getInput();
    return getResult();
  }
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

LogicalResult TransposeOp::verify() {
  RankedTensorType in = getInput().getType();
  ArrayRef<int64_t> perm = getPermutation();
  if (static_cast<int64_t>(perm.size()) != in.getRank())
    return emitOpError() << "permutation " << shapeString(perm) << " has "
                         << perm.size() << " entries but the input " << in
                         << " has rank " << in.getRank();
  SmallVector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= in.getRank() || seen[p])
      return emitOpError() << "permutation " << shapeString(perm)
                           << " is not a permutation of 0.." << in.getRank() - 1
                           << "; list each dimension exactly once";
    seen[p] = true;
  }
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(in.getDimSize(p));
  return verifyResultType(*this, getType(),
                          RankedTensorType::get(shape, in.getElementType()));
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  if (llvm::equal(getPermutation(), llvm::seq<int64_t>(0, getType().getRank())))
    return getInput();
  // transpose(transpose(x, inner), outer) is transpose(x, inner ∘ outer).
  if (auto inner = getInput().getDefiningOp<TransposeOp>()) {
    ArrayRef<int64_t> innerPerm = inner.getPermutation();
    SmallVector<int64_t> composed;
    for (int64_t p : getPermutation())
      composed.push_back(innerPerm[p]);
    getInputMutable().assign(inner.getInput());
    setPermutation(composed);
    if (llvm::equal(composed, llvm::seq<int64_t>(0, getType().getRank())))
      return getInput();
    return getResult();
  }
  return {};
}

LogicalResult SplitOp::verify() {
  RankedTensorType in = getInput().getType();
  int64_t axis = getAxisAttr().getInt();
  if (failed(verifyAxis(*this, axis, in.getRank())))
    return failure();
  if (getResults().empty())
    return emitOpError() << "needs at least one result";
  int64_t total = 0;
  for (auto [i, result] : llvm::enumerate(getResults())) {
    RankedTensorType piece = tensorTypeOf(result);
    if (!matchesExceptAlongAxis(piece, in, axis))
      return emitOpError() << "result #" << i << " has type " << piece
                           << "; only dimension " << axis
                           << " may differ from the input " << in;
    if (__builtin_add_overflow(total, piece.getDimSize(axis), &total))
      return emitOpError() << "the pieces' sizes along axis " << axis
                           << " add up to more than a 64-bit count holds";
  }
  if (total != in.getDimSize(axis))
    return emitOpError() << "the pieces' sizes along axis " << axis
                         << " add up to " << total << " but the input has "
                         << in.getDimSize(axis);
  return success();
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError() << "needs at least one input";
  RankedTensorType first = tensorTypeOf(getInputs().front());
  int64_t axis = getAxisAttr().getInt();
  if (failed(verifyAxis(*this, axis, first.getRank())))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  for (auto [i, input] : llvm::enumerate(getInputs().drop_front())) {
    RankedTensorType type = tensorTypeOf(input);
    if (!matchesExceptAlongAxis(type, first, axis))
      return emitOpError() << "input #" << i + 1 << " has type " << type
                           << "; every input must match input #0 (" << first
                           << ") except along axis " << axis;
    if (__builtin_add_overflow(shape[axis], type.getDimSize(axis),
                               &shape[axis]))
      return emitOpError() << "the inputs' sizes along axis " << axis
                           << " add up to more than a 64-bit count holds";
  }
  return verifyResultType(*this, getType(),
                          RankedTensorType::get(shape, first.getElementType()));
}

LogicalResult ReduceOp::verify() {
  RankedTensorType in = getInput().getType();
  ArrayRef<int64_t> dims = getDims();
  if (dims.empty())
    return emitOpError() << "dims is empty; list at least one dimension";
  for (auto [i, d] : llvm::enumerate(dims)) {
    if (d < 0 || d >= in.getRank())
      return emitOpError() << "dimension " << d
                           << " is out of range for the input " << in
                           << "; each must be in [0, " << in.getRank() << ")";
    if (i > 0 && dims[i - 1] >= d)
      return emitOpError() << "dims " << shapeString(dims)
                           << " must be strictly increasing";
  }
  if (getKind() == ReduceKind::Mean && !isa<FloatType>(in.getElementType()))
    return emitOpError() << "mean of an integer tensor (" << in
                         << ") is not defined; loom.cast it to a float type";
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < in.getRank(); ++i) {
    if (!llvm::is_contained(dims, i))
      shape.push_back(in.getDimSize(i));
    else if (getKeepDims())
      shape.push_back(1);
  }
  return verifyResultType(*this, getType(),
                          RankedTensorType::get(shape, in.getElementType()));
}

//===----------------------------------------------------------------------===//
// CrossEntropyOp
//===----------------------------------------------------------------------===//

/// `classes` counts the real classes among the logits' last dimension (0: all
/// of them); the rest pad the vocabulary and are masked out of the softmax.
/// `vocab` is that dimension, or 0 where the op holds a block of it and the
/// whole is not known here.
static LogicalResult verifyClasses(Operation *op, int64_t classes,
                                   int64_t vocab) {
  if (classes < 0 || (vocab && classes > vocab)) {
    InFlightDiagnostic d = op->emitOpError()
                           << "classes " << classes
                           << " must be between 0 (all of the logits' last "
                              "dimension) and ";
    if (vocab)
      d << "that dimension, " << vocab;
    else
      d << "the vocabulary's size";
    return d;
  }
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  RankedTensorType logits = getLogits().getType();
  RankedTensorType labels = getLabels().getType();
  if (logits.getRank() < 1)
    return emitOpError() << "logits must be [..., vocab], got " << logits;
  if (logits.getDimSize(logits.getRank() - 1) == 0)
    return emitOpError() << "logits " << logits
                         << " have an empty vocabulary dimension";
  ArrayRef<int64_t> tokens = logits.getShape().drop_back();
  if (labels.getShape() != tokens)
    return emitOpError() << "labels have type " << labels
                         << "; expected the logits' shape without its last "
                            "(vocabulary) dimension, "
                         << shapeString(tokens);
  RankedTensorType result = getType();
  Type resultElement = result.getElementType();
  if (resultElement != logits.getElementType() && !resultElement.isF32())
    return emitOpError() << "result element type " << resultElement
                         << " must be the logits' (" << logits.getElementType()
                         << ") or f32";
  bool perToken = getReduction() == LossReduction::None;
  ArrayRef<int64_t> expected = perToken ? tokens : ArrayRef<int64_t>();
  if (result.getShape() != expected)
    return emitOpError() << "with reduction "
                         << stringifyLossReduction(getReduction())
                         << " the result has shape " << shapeString(expected)
                         << ", got " << result;
  return verifyClasses(*this, getClasses(), logits.getShape().back());
}

LogicalResult CrossEntropyMaxOp::verify() {
  RankedTensorType logits = getLogits().getType();
  if (logits.getRank() < 1 || logits.getShape().back() == 0)
    return emitOpError() << "logits must be [..., classes], got " << logits;
  RankedTensorType result = getType();
  ArrayRef<int64_t> tokens = logits.getShape().drop_back();
  if (result.getShape() != tokens ||
      result.getElementType() != logits.getElementType())
    return emitOpError() << "result has type " << result << "; expected "
                         << RankedTensorType::get(tokens,
                                                  logits.getElementType())
                         << ", the logits' without the class dimension";
  return verifyClasses(*this, getClasses(), 0);
}

LogicalResult CrossEntropyPartialsGradOp::verify() {
  return verifyClasses(*this, getClasses(), 0);
}

LogicalResult CrossEntropyPartialsOp::verify() {
  RankedTensorType logits = getLogits().getType();
  if (logits.getRank() < 1 || logits.getShape().back() == 0)
    return emitOpError() << "logits must be [..., classes], got " << logits;
  ArrayRef<int64_t> tokens = logits.getShape().drop_back();
  for (Value v : {getMax(), getLabels(), getSumexp(), getTarget()})
    if (cast<RankedTensorType>(v.getType()).getShape() != tokens)
      return emitOpError() << "max, labels, sumexp and target must have the "
                              "logits' shape without the class dimension, "
                           << shapeString(tokens) << "; got " << v.getType();
  if (!getSumexp().getType().getElementType().isF32() ||
      !getTarget().getType().getElementType().isF32())
    return emitOpError() << "sumexp and target are f32";
  return verifyClasses(*this, getClasses(), 0);
}

LogicalResult CrossEntropyCombineOp::verify() {
  auto shape = getSumexp().getType().getShape();
  for (Value v : {getTarget(), getLabels(), getResult()})
    if (cast<RankedTensorType>(v.getType()).getShape() != shape)
      return emitOpError() << "sumexp, target, labels and the result have one "
                              "shape; got "
                           << v.getType() << " beside " << getSumexp().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Broadcast and the backward ops
//===----------------------------------------------------------------------===//

LogicalResult BroadcastOp::verify() {
  RankedTensorType in = getInput().getType(), out = getType();
  if (in.getElementType() != out.getElementType())
    return emitOpError() << "changes the element type from "
                         << in.getElementType() << " to "
                         << out.getElementType()
                         << "; use loom.cast to convert elements";
  if (in.getRank() > out.getRank())
    return emitOpError() << "cannot broadcast " << in << " to the lower rank "
                         << out;
  int64_t offset = out.getRank() - in.getRank();
  for (int64_t i = 0; i < in.getRank(); ++i) {
    int64_t d = in.getDimSize(i), o = out.getDimSize(i + offset);
    if (d != 1 && d != o)
      return emitOpError() << "cannot broadcast " << in << " to " << out
                           << ": dimension " << i << " is " << d
                           << " but the result's is " << o
                           << "; each must be 1 or equal";
  }
  return success();
}

LogicalResult EmbeddingGradOp::verify() {
  RankedTensorType table = getType(), grad = getGrad().getType();
  if (table.getRank() != 2)
    return emitOpError() << "result must be the table [vocab, hidden], got "
                         << table;
  SmallVector<int64_t> expected(getIndices().getType().getShape());
  expected.push_back(table.getDimSize(1));
  if (grad.getShape() != ArrayRef<int64_t>(expected) ||
      grad.getElementType() != table.getElementType())
    return emitOpError() << "grad has type " << grad << "; expected "
                         << RankedTensorType::get(expected,
                                                  table.getElementType())
                         << ", the indices' shape and the table's hidden size";
  return success();
}

LogicalResult CrossEntropyGradOp::verify() {
  RankedTensorType logits = getLogits().getType();
  if (logits.getRank() < 1)
    return emitOpError() << "logits must be [..., vocab], got " << logits;
  ArrayRef<int64_t> tokens = logits.getShape().drop_back();
  if (getLabels().getType().getShape() != tokens)
    return emitOpError() << "labels have type " << getLabels().getType()
                         << "; expected the logits' shape without its last "
                            "(vocabulary) dimension, "
                         << shapeString(tokens);
  bool perToken = getReduction() == LossReduction::None;
  ArrayRef<int64_t> expected = perToken ? tokens : ArrayRef<int64_t>();
  if (getGrad().getType().getShape() != expected)
    return emitOpError() << "with reduction "
                         << stringifyLossReduction(getReduction())
                         << " the loss's gradient has shape "
                         << shapeString(expected) << ", got "
                         << getGrad().getType();
  return verifyClasses(*this, getClasses(), logits.getShape().back());
}

//===----------------------------------------------------------------------===//
// Fusion regions
//===----------------------------------------------------------------------===//

void FusedOp::build(OpBuilder &builder, OperationState &state, StringRef kind,
                    TypeRange results, ValueRange inputs) {
  state.addAttribute(getKindAttrName(state.name), builder.getStringAttr(kind));
  state.addOperands(inputs);
  state.addTypes(results);
  Region *body = state.addRegion();
  Block *block = new Block();
  body->push_back(block);
  for (Value input : inputs)
    block->addArgument(input.getType(), input.getLoc());
}

LogicalResult FusedOp::verify() {
  Block &block = getBody().front();
  if (block.getNumArguments() != getInputs().size())
    return emitOpError() << "has " << getInputs().size()
                         << " inputs but its body takes "
                         << block.getNumArguments() << " arguments";
  for (auto [input, arg] : llvm::zip(getInputs(), block.getArguments()))
    if (input.getType() != arg.getType())
      return emitOpError() << "binds an input of type " << input.getType()
                           << " to a body argument of type " << arg.getType();
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield)
    return emitOpError() << "body must end in loom.yield";
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError() << "yields " << yield.getValues().size()
                         << " values whose types differ from its results";
  for (Operation &op : block.without_terminator())
    if (op.getDialect() != getOperation()->getDialect() || isa<FusedOp>(op))
      return op.emitOpError() << "cannot be inside a loom.fused region";
  return success();
}

#define GET_OP_CLASSES
#include "dialects/Loom/LoomOps.cpp.inc"
