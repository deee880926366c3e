//===- Values.h - the model builder's compile-time values -------*- C++ -*-===//
//
// What the model language's expressions evaluate to: scalars, strings, lists
// and element types are known at compile time; tensors are SSA values of the
// function being built. Shared by the model builder and the builtins.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_LIB_FRONTEND_VALUES_H
#define LOOM_LIB_FRONTEND_VALUES_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Value.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom {
namespace frontend {

struct Val {
  enum class Kind { None, Int, Float, Bool, String, List, Tensor, DType };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s; // string, or element type name
  std::vector<Val> list;
  /// For lists: the values they hold, nested lists counted through.
  int64_t elements = 0;
  mlir::Value tensor;

  static Val ofInt(int64_t v) {
    Val x;
    x.kind = Kind::Int;
    x.i = v;
    return x;
  }
  static Val ofFloat(double v) {
    Val x;
    x.kind = Kind::Float;
    x.f = v;
    return x;
  }
  static Val ofBool(bool v) {
    Val x;
    x.kind = Kind::Bool;
    x.b = v;
    return x;
  }
  static Val ofString(std::string v, Kind kind = Kind::String) {
    Val x;
    x.kind = kind;
    x.s = std::move(v);
    return x;
  }
  static Val ofTensor(mlir::Value v) {
    Val x;
    x.kind = Kind::Tensor;
    x.tensor = v;
    return x;
  }
  static Val ofList(std::vector<Val> v) {
    Val x;
    x.kind = Kind::List;
    x.list = std::move(v);
    for (const Val &item : x.list)
      x.elements += item.kind == Kind::List ? item.elements : 1;
    return x;
  }

  bool isNumber() const { return kind == Kind::Int || kind == Kind::Float; }
  double number() const { return kind == Kind::Int ? double(i) : f; }
  mlir::RankedTensorType tensorType() const {
    return mlir::cast<mlir::RankedTensorType>(tensor.getType());
  }
};

/// The name a block parameter's type uses for `kind`: "int", "tensor", ...
const char *kindName(Val::Kind kind);

/// A float as people write it: 0.02, 1.5, 1e-05.
std::string formatFloat(double value);

/// `int 768`, `tensor<4x64xf32>`, `string "gelu"`: for messages.
std::string describe(const Val &v);

/// A float that is a whole number in int64's range, as an int64.
std::optional<int64_t> wholeNumber(double f);

/// The element type the language spells `name` (f32, bf16, f16, i32, i64,
/// i1), or a null type.
mlir::Type elementTypeNamed(mlir::MLIRContext *context, llvm::StringRef name);

} // namespace frontend
} // namespace loom

#endif // LOOM_LIB_FRONTEND_VALUES_H
