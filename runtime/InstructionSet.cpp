//===- InstructionSet.cpp - tables of the plan's instruction set ----------===//

#include "loom/runtime/InstructionSet.h"

namespace loom {
namespace runtime {

namespace {
// An operand count of -1 in Instructions.def is any number.
constexpr size_t count(int n) { return n < 0 ? SIZE_MAX : size_t(n); }
#define LOOM_REQUIRED(...) {__VA_ARGS__}
} // namespace

const std::vector<OpInfo> &allOps() {
  static const std::vector<OpInfo> ops = [] {
    std::vector<OpInfo> v;
    {
      // The required attributes are listed by their bare ids.
#define LOOM_ATTR(Id, name) [[maybe_unused]] constexpr Attr Id = Attr::Id;
#include "loom/runtime/Instructions.def"
#define LOOM_OP(Id, name, minIn, maxIn, minOut, maxOut, required)            \
  v.push_back({Op::Id, name, count(minIn), count(maxIn), count(minOut),        \
               count(maxOut), std::vector<Attr> LOOM_REQUIRED required});
#include "loom/runtime/Instructions.def"
    }
    return v;
  }();
  return ops;
}

const OpInfo &opInfo(Op op) { return allOps()[size_t(op)]; }
const char *opName(Op op) { return opInfo(op).name; }

const char *attrName(Attr attr) {
  static const char *const names[] = {
#define LOOM_ATTR(Id, name) name,
#include "loom/runtime/Instructions.def"
  };
  return names[size_t(attr)];
}

std::optional<Op> lookupOp(std::string_view name) {
  for (const OpInfo &info : allOps())
    if (name == info.name)
      return info.op;
  return std::nullopt;
}

std::optional<Attr> lookupAttr(std::string_view name) {
  constexpr size_t n = 0
#define LOOM_ATTR(Id, name) +1
#include "loom/runtime/Instructions.def"
      ;
  for (size_t i = 0; i < n; ++i)
    if (name == attrName(Attr(i)))
      return Attr(i);
  return std::nullopt;
}

} // namespace runtime
} // namespace loom
