//===- Values.cpp - the model builder's compile-time values ---------------===//

#include "Values.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdio>

using namespace mlir;

namespace loom {
namespace frontend {

const char *kindName(Val::Kind kind) {
  switch (kind) {
  case Val::Kind::None:
    return "none";
  case Val::Kind::Int:
    return "int";
  case Val::Kind::Float:
    return "float";
  case Val::Kind::Bool:
    return "bool";
  case Val::Kind::String:
    return "string";
  case Val::Kind::List:
    return "list";
  case Val::Kind::Tensor:
    return "tensor";
  case Val::Kind::DType:
    return "element type";
  }
  return "value";
}

std::string formatFloat(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

std::string describe(const Val &v) {
  std::string out;
  llvm::raw_string_ostream os(out);
  switch (v.kind) {
  case Val::Kind::None:
    os << (v.s.empty() ? "none" : v.s);
    break;
  case Val::Kind::Int:
    os << "int " << v.i;
    break;
  case Val::Kind::Float:
    os << "float " << formatFloat(v.f);
    break;
  case Val::Kind::Bool:
    os << "bool " << (v.b ? "true" : "false");
    break;
  case Val::Kind::String:
    os << "string \"" << v.s << "\"";
    break;
  case Val::Kind::List:
    os << "a list of " << v.list.size();
    break;
  case Val::Kind::Tensor:
    os << v.tensor.getType();
    break;
  case Val::Kind::DType:
    os << "element type " << v.s;
    break;
  }
  return out;
}

std::optional<int64_t> wholeNumber(double f) {
  // 2^63 is exact in double; every double at or past 2^53 is whole.
  if (std::floor(f) != f || !(f >= -0x1p63 && f < 0x1p63))
    return std::nullopt;
  return static_cast<int64_t>(f);
}

Type elementTypeNamed(MLIRContext *context, llvm::StringRef name) {
  Builder b(context);
  return llvm::StringSwitch<Type>(name)
      .Case("f32", b.getF32Type())
      .Case("bf16", b.getBF16Type())
      .Case("f16", b.getF16Type())
      .Case("i32", b.getI32Type())
      .Case("i64", b.getI64Type())
      .Case("i1", b.getI1Type())
      .Default(Type());
}

} // namespace frontend
} // namespace loom
