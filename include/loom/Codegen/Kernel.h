//===- Kernel.h - one generated kernel, described once ----------*- C++ -*-===//
//
// A fusion region (a `loom.fused` op, or the optimizer's update) becomes one
// kernel description: its iteration space, its arguments, the runtime scalars
// it reads, and its body as scalar expressions in stages. The emitters
// (Emit.h) print the same description as host C++ and as CUDA C++: the
// scalar math is printed once for both, only the mapping of the iteration
// space onto loops or threads differs. docs/codegen.md describes the form.
//
// The description is plain C++ (no MLIR), so the compiler writes it and the
// conformance suite can build kernels from it without the compiler.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_CODEGEN_KERNEL_H
#define LOOM_CODEGEN_KERNEL_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom {
namespace codegen {

/// Where a kernel's iterations go.
///   Elementwise: one iteration per element i in [0, n) (n = `extent`; with
///     `runtimeExtent`, n is ints[0] at run time).
///   Rows: `rows` rows of `cols` elements; each row runs the stages in
///     order, a loop stage once per element j of the row (flat index
///     i = row · cols + j), a scalar stage once per row.
enum class Space { Elementwise, Rows };

/// An argument's element type in memory.
enum class ElemType { F32, I32, I64 };

/// The type of a value of the scalar math.
enum class ValueType { Float, Int, Bool };

/// A buffer argument of the kernel.
struct Arg {
  std::string name; // for people: the plan buffer it was made for
  ElemType type = ElemType::F32;
  bool output = false;
  /// Number of elements; the decoder checks the instruction's buffer has
  /// them. -1: the kernel's runtime count (ParamKind::Count).
  int64_t elements = 0;
};

/// What a runtime scalar is: the backend computes it from the step's
/// parameters each time the kernel runs (include/loom/runtime/Decoder.h has
/// the same list for the decoder).
enum class ParamKind {
  DropoutKey,    // int: the dropout stream's key for `site` at this step
  DropoutOffset, // int: microbatch · `elements` (the mask's global index base)
  Count,         // int: the element count of a runtime-extent kernel
  Real,          // real: a value named by `site` (lr, beta1, ...), see docs
  // real: dropout's rate and 1 / (1 - rate) at `site`, as float, while
  // training; 0 and 1 in evaluation, where every element is kept unscaled.
  // Run-time values (not constants) so the same kernel runs both.
  DropoutRate,
  DropoutScale,
};

/// Whether a runtime scalar is read from the reals array (else the ints).
inline bool isRealParam(ParamKind kind) {
  return kind == ParamKind::Real || kind == ParamKind::DropoutRate ||
         kind == ParamKind::DropoutScale;
}

struct Param {
  ParamKind kind = ParamKind::Real;
  std::string site;     // DropoutKey: the dropout site; Real: the value's name
  int64_t elements = 0; // DropoutOffset: elements of one microbatch's tensor
};

/// Scalar operations. Operands are node ids (earlier nodes of the kernel).
enum class NodeOp {
  // Leaves.
  Load,      // arg[(i / div) % mod] (mod 0: none); Int for integer args
  LoadAt,    // arg[row · cols + operand0] (Rows only): a gather in the row
  LoadRow,   // arg[row]
  Const,     // `value` (Float, Int by `type`, Bool)
  ParamInt,  // ints[param]
  ParamReal, // reals[param], as float
  Index,     // the flat index i (Int)
  Col,       // j (Rows) (Int)
  Row,       // the row (Rows) (Int)
  RowsCount, // rows (Int)
  ColsCount, // cols (Int)
  // Arithmetic (Float or Int by `type`).
  Add,
  Sub,
  Mul,
  Div,
  Rem,
  Neg,
  Max,
  Min,
  // Float math: the same implementations on every target (the emitters'
  // prelude), so host and device agree.
  Exp,
  Log,
  Tanh,
  Erf,
  Sqrt,
  Rsqrt,
  // Comparisons (Bool), logic, choice.
  Lt,
  Le,
  Gt,
  Ge,
  Eq,
  Ne,
  And,
  Or,
  Not,
  Select,  // operand0 ? operand1 : operand2
  ToFloat, // Int -> Float
  // Dropout's keep decision (Bool) for the element at global index
  // ints[param] + i under the key ints[param2], against the rate operand0
  // (a Float, the DropoutRate scalar): the Philox stream of the reference
  // kernel (runtime/cpu/Kernels.cpp dropout), drawn per element.
  DropoutKeep,
  // A row reduction's result (Float): set by `Reduce` in an earlier stage.
  RowValue,
};

struct Node {
  NodeOp op = NodeOp::Const;
  ValueType type = ValueType::Float;
  std::vector<int> operands;
  int arg = -1;     // Load, LoadAt, LoadRow
  int64_t div = 1;  // Load
  int64_t mod = 0;  // Load
  double value = 0; // Const
  int param = -1;   // ParamInt/ParamReal; DropoutKeep: the offset param
  int param2 = -1;  // DropoutKeep: the key param
};

enum class ReduceKind { Sum, Max };

/// A value stored to an output argument.
struct Store {
  int arg = -1;
  int node = -1;
  /// Loop stage: arg[i] (or arg[(i / div) % mod]); scalar stage: arg[row].
  int64_t div = 1, mod = 0;
  bool accumulate = false; // +=
};

/// Sums over the iteration space into an output: across rows (Rows) or all
/// elements (Elementwise). `perCol`: into arg[j] (a column sum); else into
/// arg[0]. The order of the additions is the target's (reassociation).
struct Accum {
  int arg = -1;
  int node = -1;
  bool perCol = false;
  bool accumulate = false; // add to what the output holds; else overwrite
};

/// A row reduction in a loop stage: `result` (a RowValue node) holds the
/// reduction of `node` over the row's elements for the later stages.
struct Reduce {
  ReduceKind kind = ReduceKind::Sum;
  int node = -1;
  int result = -1;
};

/// A condition that must hold (Bool node); when it does not, the kernel
/// returns an error naming `message` instead of a silent wrong answer.
struct Check {
  int node = -1;
  std::string message;
};

struct Stage {
  /// A loop over the row (or over all elements); else once per row.
  bool loop = true;
  std::vector<int> nodes; // evaluated in this order
  std::vector<Store> stores;
  std::vector<Reduce> reduces;
  std::vector<Accum> accums;
  std::vector<Check> checks;
};

struct KernelDesc {
  std::string name;   // the entry point: a C identifier, unique in a plan
  std::string family; // for people: elementwise, layernorm, softmax, ...
  Space space = Space::Elementwise;
  int64_t extent = 0; // Elementwise: n
  bool runtimeExtent = false;
  int64_t rows = 0, cols = 0; // Rows
  std::vector<Arg> args;
  std::vector<Param> params;
  std::vector<Node> nodes;
  std::vector<Stage> stages;

  /// Helpers for the builders: a node (not yet in a stage), or a node
  /// appended to the last stage.
  int add(Node node) {
    nodes.push_back(std::move(node));
    return int(nodes.size()) - 1;
  }
  int append(Node node) {
    int id = add(std::move(node));
    stages.back().nodes.push_back(id);
    return id;
  }
  int append(NodeOp op, std::vector<int> operands,
             ValueType type = ValueType::Float) {
    Node n;
    n.op = op;
    n.type = type;
    n.operands = std::move(operands);
    return append(std::move(n));
  }
  int intParams() const;
  int realParams() const;
};

/// How a kernel over `result`'s elements reads an operand broadcast to it
/// (numpy's rule, aligned at the last dimension): element i reads operand
/// element (i / div) % mod (mod 0: no modulo). Only an operand whose kept
/// dimensions are one contiguous run of the result's has such a form (a
/// bias [C] of [B, T, C]: div 1, mod C; a per-row [B, T, 1]: div C; a
/// scalar: mod 1); nullopt otherwise.
struct BroadcastIndex {
  int64_t div = 1, mod = 0;
};
std::optional<BroadcastIndex>
broadcastIndex(const std::vector<int64_t> &operand,
               const std::vector<int64_t> &result);

/// Checks a description (operand ids refer to earlier nodes, types agree,
/// stages fit the space); returns an empty string or what is wrong.
std::string verifyKernel(const KernelDesc &kernel);

} // namespace codegen
} // namespace loom

#endif // LOOM_CODEGEN_KERNEL_H
