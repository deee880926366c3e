//===- Builtins.h - the model language's builtins as a table ---*- C++ -*-===//
//
// The builtins (docs/language.md) as one table: each entry names a builtin,
// its parameters and which of them are required, and the handler that
// lowers a call. callBuiltin binds a call's arguments against its entry, the
// same way for every builtin, so a handler only reads arguments that are
// already checked; the model builder's "did you mean" draws on the same
// table. The handlers live by family in BuiltinsNN.cpp (layers and the loss),
// BuiltinsShape.cpp (shapes, reductions, casts) and BuiltinsScalar.cpp
// (compile-time helpers).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_LIB_FRONTEND_BUILTINS_H
#define LOOM_LIB_FRONTEND_BUILTINS_H

#include "Values.h"

#include "loom/Frontend/AST.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace loom {
namespace frontend {

/// What a builtin may ask of the model builder that calls it.
class BuiltinHost {
public:
  virtual ~BuiltinHost() = default;
  /// An error at `loc`, with a note at each enclosing block call.
  virtual mlir::InFlightDiagnostic error(mlir::Location loc) = 0;
  /// Verifies a just-built op; on failure erases it and reports the
  /// verifier's message at `loc`. Gives the op's first result.
  virtual mlir::FailureOr<mlir::Value> checked(mlir::Operation *op,
                                               mlir::Location loc) = 0;
  /// The dotted name of `leaf` in the current scope; fails when it exists.
  virtual mlir::FailureOr<std::string>
  claimName(llvm::StringRef leaf, mlir::Location loc, llvm::StringRef what) = 0;
  /// Where the builtins' ops go.
  virtual mlir::OpBuilder &getBuilder() = 0;
};

/// Arguments of a call bound to a signature's names, in signature order.
using BoundArgs = std::vector<std::optional<Val>>;

/// Binds the values `args` of `call`'s arguments to `names`, by position or
/// by keyword; the first `required` names must be given. `what` names the
/// callee in errors ("'matmul'", "block 'mlp'"): too many positional
/// arguments, an unknown keyword, an argument given twice, a missing one.
mlir::FailureOr<BoundArgs> bindArguments(BuiltinHost &host,
                                         const ast::Expr &call,
                                         llvm::ArrayRef<Val> args,
                                         llvm::ArrayRef<llvm::StringRef> names,
                                         size_t required, llvm::StringRef what);

/// A call whose arguments are bound: what a handler reads them through. The
/// typed readers report a wrong kind of value as "argument 'eps' of
/// 'layernorm' must be a number, got ..."; the readers with a fallback give
/// it when the argument is absent or `none`.
class BuiltinCall {
public:
  BuiltinCall(BuiltinHost &host, const ast::Expr &call,
              llvm::ArrayRef<llvm::StringRef> parameters, BoundArgs args)
      : host(&host), call(&call), parameters(parameters),
        args(std::move(args)) {}

  const ast::Expr &expr() const { return *call; }
  mlir::Location loc() const { return call->loc; }
  mlir::OpBuilder &builder() { return host->getBuilder(); }
  mlir::MLIRContext *context() { return builder().getContext(); }

  /// The argument bound to `parameter`, if it was given.
  const std::optional<Val> &arg(llvm::StringRef parameter) const;
  /// Whether `parameter` was given a value other than `none`.
  bool given(llvm::StringRef parameter) const;

  mlir::FailureOr<mlir::Value> tensor(llvm::StringRef parameter);
  mlir::FailureOr<int64_t> integer(llvm::StringRef parameter);
  mlir::FailureOr<int64_t> integer(llvm::StringRef parameter, int64_t fallback);
  mlir::FailureOr<double> number(llvm::StringRef parameter);
  mlir::FailureOr<double> number(llvm::StringRef parameter, double fallback);
  mlir::FailureOr<bool> boolean(llvm::StringRef parameter);
  mlir::FailureOr<bool> boolean(llvm::StringRef parameter, bool fallback);
  mlir::FailureOr<std::string> string(llvm::StringRef parameter);
  mlir::FailureOr<std::string> string(llvm::StringRef parameter,
                                      llvm::StringRef fallback);
  /// A list of whole numbers (a float that is whole counts as one).
  mlir::FailureOr<llvm::SmallVector<int64_t>>
  intList(llvm::StringRef parameter);

  /// An error at the call.
  mlir::InFlightDiagnostic error() { return host->error(loc()); }
  /// Verifies `op` (BuiltinHost::checked) and gives its result as a tensor.
  mlir::FailureOr<Val> tensorResult(mlir::Operation *op);
  mlir::FailureOr<mlir::Value> checked(mlir::Operation *op) {
    return host->checked(op, loc());
  }
  mlir::FailureOr<std::string> claimName(llvm::StringRef leaf,
                                         llvm::StringRef what) {
    return host->claimName(leaf, loc(), what);
  }

private:
  size_t indexOf(llvm::StringRef parameter) const;
  template <typename T>
  mlir::FailureOr<T> scalar(llvm::StringRef parameter, llvm::StringRef expected,
                            std::optional<T> (*get)(const Val &));

  BuiltinHost *host;
  const ast::Expr *call;
  llvm::ArrayRef<llvm::StringRef> parameters;
  BoundArgs args;
};

using BuiltinHandler = mlir::FailureOr<Val> (*)(BuiltinCall &call);

/// One builtin: a row of the table.
struct Builtin {
  Builtin(llvm::StringRef name, std::initializer_list<llvm::StringRef> required,
          std::initializer_list<llvm::StringRef> optional,
          BuiltinHandler handler, bool namesASite = false)
      : name(name), parameters(required), required(required.size()),
        handler(handler), namesASite(namesASite) {
    parameters.append(optional.begin(), optional.end());
  }

  llvm::StringRef name;
  /// In positional order, the required ones first; each may also be given
  /// by keyword.
  llvm::SmallVector<llvm::StringRef, 4> parameters;
  size_t required;
  BuiltinHandler handler;
  /// Whether `as NAME` may follow the call: a dropout names its site.
  bool namesASite;
};

/// Every builtin, in the order of docs/language.md (which is also the order
/// "did you mean" prefers among equally close names).
llvm::ArrayRef<Builtin> builtins();

/// The builtin called `name`, or null.
const Builtin *findBuiltin(llvm::StringRef name);

/// Calls `builtin` with `args`, the values of `call`'s arguments: checks
/// `as NAME` and binds the arguments against the table, then runs its
/// handler.
mlir::FailureOr<Val> callBuiltin(BuiltinHost &host, const Builtin &builtin,
                                 const ast::Expr &call,
                                 llvm::ArrayRef<Val> args);

//===----------------------------------------------------------------------===//
// Handlers, by family
//===----------------------------------------------------------------------===//

// BuiltinsNN.cpp: matmul, activations, softmax, norms, dropout, embedding,
// the loss.
mlir::FailureOr<Val> buildMatmul(BuiltinCall &call);
mlir::FailureOr<Val> buildGelu(BuiltinCall &call);
mlir::FailureOr<Val> buildRelu(BuiltinCall &call);
mlir::FailureOr<Val> buildSilu(BuiltinCall &call);
mlir::FailureOr<Val> buildSoftmax(BuiltinCall &call);
mlir::FailureOr<Val> buildLayerNorm(BuiltinCall &call);
mlir::FailureOr<Val> buildRmsNorm(BuiltinCall &call);
mlir::FailureOr<Val> buildDropout(BuiltinCall &call);
mlir::FailureOr<Val> buildEmbedding(BuiltinCall &call);
mlir::FailureOr<Val> buildCrossEntropy(BuiltinCall &call);

// BuiltinsShape.cpp: reshape, transpose, split, concat, reductions, cast.
mlir::FailureOr<Val> buildReshape(BuiltinCall &call);
mlir::FailureOr<Val> buildTranspose(BuiltinCall &call);
mlir::FailureOr<Val> buildSplit(BuiltinCall &call);
mlir::FailureOr<Val> buildConcat(BuiltinCall &call);
mlir::FailureOr<Val> buildReduceSum(BuiltinCall &call);
mlir::FailureOr<Val> buildReduceMean(BuiltinCall &call);
mlir::FailureOr<Val> buildReduceMax(BuiltinCall &call);
mlir::FailureOr<Val> buildCast(BuiltinCall &call);

// BuiltinsScalar.cpp: compile-time helpers, which build no op.
mlir::FailureOr<Val> evalDim(BuiltinCall &call);
mlir::FailureOr<Val> evalRank(BuiltinCall &call);
mlir::FailureOr<Val> evalSqrt(BuiltinCall &call);
mlir::FailureOr<Val> evalRoundUp(BuiltinCall &call);
mlir::FailureOr<Val> evalMin(BuiltinCall &call);
mlir::FailureOr<Val> evalMax(BuiltinCall &call);
mlir::FailureOr<Val> evalInt(BuiltinCall &call);
mlir::FailureOr<Val> evalFloat(BuiltinCall &call);
mlir::FailureOr<Val> evalCheck(BuiltinCall &call);

} // namespace frontend
} // namespace loom

#endif // LOOM_LIB_FRONTEND_BUILTINS_H
