//===- Builtins.cpp - the builtin table and argument binding --------------===//
//
// The one place a builtin is declared: its row below. Binding a call against
// its row (and reading the bound arguments by parameter name) is shared by
// every builtin, so their argument errors read alike; block calls and
// parameter initializers bind through the same function.
//
//===----------------------------------------------------------------------===//

#include "Builtins.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ErrorHandling.h"

using namespace mlir;

namespace loom {
namespace frontend {

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

llvm::ArrayRef<Builtin> builtins() {
  // {name, required parameters, optional parameters, handler}.
  static const Builtin table[] = {
      {"matmul", {"a", "b"}, {"transpose_a", "transpose_b"}, buildMatmul},
      {"gelu", {"x"}, {"approximate"}, buildGelu},
      {"relu", {"x"}, {}, buildRelu},
      {"silu", {"x"}, {}, buildSilu},
      {"softmax", {"x"}, {"causal", "scale", "mask"}, buildSoftmax},
      {"layernorm", {"x", "weight", "bias"}, {"eps"}, buildLayerNorm},
      {"rmsnorm", {"x", "weight"}, {"eps"}, buildRmsNorm},
      {"dropout", {"x", "rate"}, {}, buildDropout, /*namesASite=*/true},
      {"embedding", {"table", "indices"}, {}, buildEmbedding},
      {"reshape", {"x", "shape"}, {}, buildReshape},
      {"transpose", {"x", "permutation"}, {}, buildTranspose},
      {"split", {"x", "axis"}, {"parts", "sizes"}, buildSplit},
      {"concat", {"tensors", "axis"}, {}, buildConcat},
      {"reduce_sum", {"x", "dims"}, {"keep_dims"}, buildReduceSum},
      {"reduce_mean", {"x", "dims"}, {"keep_dims"}, buildReduceMean},
      {"reduce_max", {"x", "dims"}, {"keep_dims"}, buildReduceMax},
      {"cross_entropy",
       {"logits", "labels"},
       {"ignore_index", "reduction", "classes"},
       buildCrossEntropy},
      {"cast", {"x", "to"}, {}, buildCast},
      // Compile-time helpers.
      {"dim", {"x", "index"}, {}, evalDim},
      {"rank", {"x"}, {}, evalRank},
      {"sqrt", {"x"}, {}, evalSqrt},
      {"round_up", {"x", "multiple"}, {}, evalRoundUp},
      {"min", {"a", "b"}, {}, evalMin},
      {"max", {"a", "b"}, {}, evalMax},
      {"int", {"x"}, {}, evalInt},
      {"float", {"x"}, {}, evalFloat},
      {"check", {"condition", "message"}, {}, evalCheck},
  };
  return table;
}

const Builtin *findBuiltin(llvm::StringRef name) {
  for (const Builtin &builtin : builtins())
    if (builtin.name == name)
      return &builtin;
  return nullptr;
}

FailureOr<Val> callBuiltin(BuiltinHost &host, const Builtin &builtin,
                           const ast::Expr &call, llvm::ArrayRef<Val> args) {
  if (!call.instanceName.empty() && !builtin.namesASite)
    return host.error(call.loc) << "`as " << call.instanceName
                                << "` names block calls and dropout sites; '"
                                << call.text << "' creates nothing to name";
  FailureOr<BoundArgs> bound =
      bindArguments(host, call, args, builtin.parameters, builtin.required,
                    "'" + call.text + "'");
  if (failed(bound))
    return failure();
  BuiltinCall boundCall(host, call, builtin.parameters, std::move(*bound));
  return builtin.handler(boundCall);
}

//===----------------------------------------------------------------------===//
// Binding
//===----------------------------------------------------------------------===//

FailureOr<BoundArgs> bindArguments(BuiltinHost &host, const ast::Expr &call,
                                   llvm::ArrayRef<Val> args,
                                   llvm::ArrayRef<llvm::StringRef> names,
                                   size_t required, llvm::StringRef what) {
  BoundArgs bound(names.size());
  std::string all = llvm::join(names, ", ");
  size_t positional = 0;
  for (auto [i, keyword] : llvm::enumerate(call.keywords)) {
    size_t index;
    if (keyword.empty()) {
      index = positional++;
      if (index >= names.size())
        return host.error(call.operands[i]->loc)
               << what << " takes " << names.size() << " argument"
               << (names.size() == 1 ? "" : "s") << " (" << all
               << "), but more were given";
    } else {
      const auto *found = llvm::find(names, keyword);
      if (found == names.end())
        return host.error(call.operands[i]->loc)
               << what << " has no argument '" << keyword
               << "'; its arguments are: " << all;
      index = found - names.begin();
      if (bound[index])
        return host.error(call.operands[i]->loc)
               << "argument '" << keyword << "' of " << what
               << " is given twice";
    }
    bound[index] = args[i];
  }
  for (size_t i = 0; i < required; ++i)
    if (!bound[i])
      return host.error(call.loc) << what << " needs argument '" << names[i]
                                  << "' (its arguments are: " << all << ")";
  return bound;
}

//===----------------------------------------------------------------------===//
// Reading bound arguments
//===----------------------------------------------------------------------===//

size_t BuiltinCall::indexOf(llvm::StringRef parameter) const {
  const auto *found = llvm::find(parameters, parameter);
  if (found == parameters.end())
    // A handler that asks for a name its row lacks: a bug here, not in the
    // model.
    llvm::report_fatal_error(llvm::Twine("builtin '") + call->text +
                             "' has no parameter '" + parameter + "'");
  return found - parameters.begin();
}

const std::optional<Val> &BuiltinCall::arg(llvm::StringRef parameter) const {
  return args[indexOf(parameter)];
}

bool BuiltinCall::given(llvm::StringRef parameter) const {
  const std::optional<Val> &v = arg(parameter);
  return v && v->kind != Val::Kind::None;
}

FailureOr<Value> BuiltinCall::tensor(llvm::StringRef parameter) {
  const std::optional<Val> &v = arg(parameter);
  if (v && v->kind == Val::Kind::Tensor)
    return v->tensor;
  return error() << "argument '" << parameter << "' of '" << call->text
                 << "' must be a tensor, got "
                 << (v ? describe(*v) : std::string("nothing"));
}

template <typename T>
FailureOr<T> BuiltinCall::scalar(llvm::StringRef parameter,
                                 llvm::StringRef expected,
                                 std::optional<T> (*get)(const Val &)) {
  const std::optional<Val> &v = arg(parameter);
  if (v)
    if (std::optional<T> value = get(*v))
      return *value;
  return error() << "argument '" << parameter << "' of '" << call->text
                 << "' must be " << expected << ", got "
                 << (v ? describe(*v) : std::string("nothing"));
}

FailureOr<int64_t> BuiltinCall::integer(llvm::StringRef parameter) {
  return scalar<int64_t>(parameter, "an int",
                         [](const Val &x) -> std::optional<int64_t> {
                           if (x.kind == Val::Kind::Int)
                             return x.i;
                           return std::nullopt;
                         });
}

FailureOr<double> BuiltinCall::number(llvm::StringRef parameter) {
  return scalar<double>(parameter, "a number",
                        [](const Val &x) -> std::optional<double> {
                          if (x.isNumber())
                            return x.number();
                          return std::nullopt;
                        });
}

FailureOr<bool> BuiltinCall::boolean(llvm::StringRef parameter) {
  return scalar<bool>(parameter, "true or false",
                      [](const Val &x) -> std::optional<bool> {
                        if (x.kind == Val::Kind::Bool)
                          return x.b;
                        return std::nullopt;
                      });
}

FailureOr<std::string> BuiltinCall::string(llvm::StringRef parameter) {
  return scalar<std::string>(parameter, "a string",
                             [](const Val &x) -> std::optional<std::string> {
                               if (x.kind == Val::Kind::String)
                                 return x.s;
                               return std::nullopt;
                             });
}

FailureOr<int64_t> BuiltinCall::integer(llvm::StringRef parameter,
                                        int64_t fallback) {
  return given(parameter) ? integer(parameter) : FailureOr<int64_t>(fallback);
}

FailureOr<double> BuiltinCall::number(llvm::StringRef parameter,
                                      double fallback) {
  return given(parameter) ? number(parameter) : FailureOr<double>(fallback);
}

FailureOr<bool> BuiltinCall::boolean(llvm::StringRef parameter, bool fallback) {
  return given(parameter) ? boolean(parameter) : FailureOr<bool>(fallback);
}

FailureOr<std::string> BuiltinCall::string(llvm::StringRef parameter,
                                           llvm::StringRef fallback) {
  return given(parameter) ? string(parameter)
                          : FailureOr<std::string>(fallback.str());
}

FailureOr<llvm::SmallVector<int64_t>>
BuiltinCall::intList(llvm::StringRef parameter) {
  const std::optional<Val> &v = arg(parameter);
  auto isWhole = [](const Val &x) {
    return x.kind == Val::Kind::Int ||
           (x.kind == Val::Kind::Float && wholeNumber(x.f));
  };
  if (v && v->kind == Val::Kind::List && llvm::all_of(v->list, isWhole)) {
    llvm::SmallVector<int64_t> out;
    for (const Val &x : v->list)
      out.push_back(x.kind == Val::Kind::Int ? x.i : *wholeNumber(x.f));
    return out;
  }
  // Name the first element that is not a whole number, not the whole list.
  std::string got = "nothing";
  if (v && v->kind != Val::Kind::List)
    got = describe(*v);
  else if (v)
    got = std::string("a list holding ") +
          (v->list.empty() ? std::string("nothing")
                           : describe(*llvm::find_if_not(v->list, isWhole)));
  return error() << "argument '" << parameter << "' of '" << call->text
                 << "' must be a list of whole numbers, got " << got;
}

FailureOr<Val> BuiltinCall::tensorResult(Operation *op) {
  FailureOr<Value> v = checked(op);
  if (failed(v))
    return failure();
  return Val::ofTensor(*v);
}

} // namespace frontend
} // namespace loom
