//===- InstructionSet.h - the plan's opcodes and attribute names -*- C++ -*-===//
//
// The enums and tables generated from Instructions.def: what the plan
// writer names, the decoder checks and the backends bind. Plans store
// opcodes and attribute names as strings (readable dumps, stable files);
// these map them to and from the enums.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_INSTRUCTIONSET_H
#define LOOM_RUNTIME_INSTRUCTIONSET_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace loom {
namespace runtime {

enum class Op : uint8_t {
#define LOOM_OP(Id, name, minIn, maxIn, minOut, maxOut, required) Id,
#include "loom/runtime/Instructions.def"
};

enum class Attr : uint8_t {
#define LOOM_ATTR(Id, name) Id,
#include "loom/runtime/Instructions.def"
};

/// An opcode's operand counts (SIZE_MAX: any number) and the attributes it
/// requires.
struct OpInfo {
  Op op;
  const char *name;
  size_t minInputs, maxInputs, minOutputs, maxOutputs;
  std::vector<Attr> required;
};

/// Every opcode, in Instructions.def's order.
const std::vector<OpInfo> &allOps();
const OpInfo &opInfo(Op op);
const char *opName(Op op);
const char *attrName(Attr attr);
/// The opcode or attribute of a name in a plan, if there is one.
std::optional<Op> lookupOp(std::string_view name);
std::optional<Attr> lookupAttr(std::string_view name);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_INSTRUCTIONSET_H
