//===- BuiltinsScalar.cpp - compile-time helper builtins ------------------===//
//
// dim, rank, sqrt, round_up, min, max, int, float and check: evaluated while
// the model is built, on numbers and on tensors' static shapes. They build no
// op, so configs may use them too.
//
//===----------------------------------------------------------------------===//

#include "Builtins.h"

#include <cmath>

using namespace mlir;

namespace loom {
namespace frontend {

FailureOr<Val> evalDim(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  FailureOr<int64_t> index = call.integer("index");
  if (failed(index))
    return failure();
  auto type = cast<RankedTensorType>(x->getType());
  int64_t i = *index < 0 ? *index + type.getRank() : *index;
  if (i < 0 || i >= type.getRank())
    return call.error() << "dim: " << *index << " is not a dimension of "
                        << type << " (rank " << type.getRank() << ")";
  return Val::ofInt(type.getDimSize(i));
}

FailureOr<Val> evalRank(BuiltinCall &call) {
  FailureOr<Value> x = call.tensor("x");
  if (failed(x))
    return failure();
  return Val::ofInt(cast<RankedTensorType>(x->getType()).getRank());
}

FailureOr<Val> evalSqrt(BuiltinCall &call) {
  FailureOr<double> x = call.number("x");
  if (failed(x))
    return failure();
  if (*x < 0)
    return call.error() << "sqrt of a negative number (" << formatFloat(*x)
                        << ")";
  return Val::ofFloat(std::sqrt(*x));
}

FailureOr<Val> evalRoundUp(BuiltinCall &call) {
  FailureOr<int64_t> x = call.integer("x");
  if (failed(x))
    return failure();
  FailureOr<int64_t> multiple = call.integer("multiple");
  if (failed(multiple))
    return failure();
  if (*multiple < 1)
    return call.error() << "round_up: the multiple must be at least 1, got "
                        << *multiple;
  int64_t up;
  if (*x < 0 || __builtin_add_overflow(*x, *multiple - 1, &up))
    return call.error() << "round_up(" << *x << ", " << *multiple
                        << ") needs a non-negative x that fits in 64 bits";
  return Val::ofInt(up / *multiple * *multiple);
}

/// min and max give one of their arguments as it was (an int stays an int);
/// a tie gives the first.
static FailureOr<Val> evalMinOrMax(BuiltinCall &call, bool isMin) {
  FailureOr<double> a = call.number("a");
  if (failed(a))
    return failure();
  FailureOr<double> b = call.number("b");
  if (failed(b))
    return failure();
  bool first = isMin ? *a <= *b : *a >= *b;
  return *call.arg(first ? "a" : "b");
}

FailureOr<Val> evalMin(BuiltinCall &call) {
  return evalMinOrMax(call, /*isMin=*/true);
}

FailureOr<Val> evalMax(BuiltinCall &call) {
  return evalMinOrMax(call, /*isMin=*/false);
}

FailureOr<Val> evalInt(BuiltinCall &call) {
  FailureOr<double> x = call.number("x");
  if (failed(x))
    return failure();
  if (std::floor(*x) != *x)
    return call.error() << "int(" << formatFloat(*x)
                        << ") is not a whole number";
  std::optional<int64_t> whole = wholeNumber(*x);
  if (!whole)
    return call.error() << "int(" << formatFloat(*x)
                        << ") does not fit in 64 bits";
  return Val::ofInt(*whole);
}

FailureOr<Val> evalFloat(BuiltinCall &call) {
  FailureOr<double> x = call.number("x");
  if (failed(x))
    return failure();
  return Val::ofFloat(*x);
}

FailureOr<Val> evalCheck(BuiltinCall &call) {
  FailureOr<bool> condition = call.boolean("condition");
  if (failed(condition))
    return failure();
  FailureOr<std::string> message = call.string("message");
  if (failed(message))
    return failure();
  if (!*condition)
    return call.error() << *message;
  return Val();
}

} // namespace frontend
} // namespace loom
