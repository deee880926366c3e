//===- AST.h - the model language's syntax tree -----------------*- C++ -*-===//
//
// What the parser produces and the model builder walks. Every node carries
// the MLIR location of its first token, so errors point at the source.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_FRONTEND_AST_H
#define LOOM_FRONTEND_AST_H

#include "mlir/IR/Location.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace ast {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;

enum class ExprKind {
  Int,    // 768
  Float,  // 0.02, 1e-5
  String, // "tanh"
  Bool,   // true, false
  None,   // none
  Name,   // hidden
  List,   // [b, s, h]
  Unary,  // -x, not x
  Binary, // a + b, a == b, a and b
  Call,   // f(x, n = 2) [as name]
};

struct Expr {
  Expr(ExprKind kind, mlir::Location loc) : kind(kind), loc(loc) {}

  ExprKind kind;
  mlir::Location loc;
  int64_t intValue = 0;
  double floatValue = 0;
  bool boolValue = false;
  /// A string literal's value, a name, an operator (`+`, `==`, `not`), or a
  /// callee's name.
  std::string text;
  /// List elements, unary/binary operands, or call arguments.
  std::vector<ExprPtr> operands;
  /// For calls: the keyword of each argument, "" for positional ones.
  std::vector<std::string> keywords;
  /// For calls: the instance name after `as` ("" when absent, "_" for none).
  std::string instanceName;
};

enum class StmtKind {
  Config, // config name = expr
  Input,  // input name: dtype[dims]
  Param,  // param name: [dtype][dims] init expr
  Assign, // a, b = expr; with no names, a call made for its effect
  Repeat, // repeat count [as prefix] { body }
  If,     // if cond { body } else { elseBody }
  Return, // return a, b
};

struct Stmt {
  Stmt(StmtKind kind, mlir::Location loc) : kind(kind), loc(loc) {}

  StmtKind kind;
  mlir::Location loc;
  /// Assigned names (Assign), or the one declared name (Config, Input, Param).
  std::vector<std::string> names;
  /// The config default, assigned value, repeat count or `if` condition.
  ExprPtr value;
  /// Returned values.
  std::vector<ExprPtr> values;
  /// Input and parameter types: element type ("" = f32 for parameters) and
  /// dimensions.
  std::string elementType;
  std::vector<ExprPtr> dims;
  /// A parameter's initializer: a name (`zeros`) or a call (`normal(std = s)`).
  ExprPtr init;
  /// A parameter's pinned sharding (`shard(none, tp)`): per dimension a mesh
  /// axis name or "none"; empty when not pinned.
  std::vector<std::string> shard;
  /// Repeat: the name prefix of the layers (default "layers").
  std::string prefix;
  std::vector<StmtPtr> body;
  std::vector<StmtPtr> elseBody;
};

struct BlockParameter {
  std::string name;
  /// "" (any), "tensor", "int", "float", "bool" or "string".
  std::string type;
  ExprPtr defaultValue;
  mlir::Location loc;
};

struct BlockDef {
  std::string name;
  mlir::Location loc;
  std::vector<BlockParameter> parameters;
  std::vector<StmtPtr> body;
};

struct ModelDef {
  std::string name;
  mlir::Location loc;
  std::vector<StmtPtr> body;
};

/// One source file: blocks and models, in order.
struct File {
  std::vector<BlockDef> blocks;
  std::vector<ModelDef> models;
};

} // namespace ast
} // namespace loom

#endif // LOOM_FRONTEND_AST_H
