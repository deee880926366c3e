//===- Decoder.h - a plan's instructions as checked, typed records -*- C++ -*-===//
//
// The backend-neutral half of running a plan. The decoder reads each
// instruction of a plan (opcode and attribute strings, buffer indices) once,
// checks everything a kernel relies on (operand counts and types, shapes
// that agree, attribute values, blocks of partitioned tensors) and does the
// geometry arithmetic (GEMM shapes, rows and columns, the rank's block of a
// partitioned tensor), for one rank of the plan's mesh. A backend then only
// binds each record to a kernel: it never parses an attribute or checks a
// shape. validatePlan decodes every instruction too, so a plan that loads
// decodes on every backend.
//
//   Result<DecodedPlan> decoded = decodePlan(plan, coords);
//   for (const Instruction &i : decoded->microbatch)
//     if (auto *m = std::get_if<MatmulInstr>(&i.record)) ...
//
// Buffers are named by their index in plan.buffers (BufferId). Records are
// grouped by kernel family, as the backends' files are.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_DECODER_H
#define LOOM_RUNTIME_DECODER_H

#include "loom/runtime/Communicator.h" // ReduceKind
#include "loom/runtime/InstructionSet.h"
#include "loom/runtime/Plan.h"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace loom {
namespace runtime {

using Shape = std::vector<int64_t>;
using BufferId = int32_t;
constexpr BufferId kNoBuffer = -1;

int64_t numElements(const Shape &shape);

//===--- Geometry shared by records and kernels ---------------------------===//

/// c[i] = beta·c[i] + op(a[i]) · op(b[i]) for each of `batch` matrices, with
/// op = transpose when asked: op(a) is m×k, op(b) is k×n, c is m×n. A side
/// with `broadcast` set is one matrix used for every batch element.
struct MatmulShape {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false;
  bool broadcastA = false, broadcastB = false;
};
/// The GEMMs of loom.matmul on row-major operands of shapes `a` and `b`
/// (rank 2 or more; a rank-2 side broadcasts over the other's batch). A
/// batch of x[b, m, k] · w[k, n] folds into one GEMM of b·m rows.
MatmulShape matmulShapeOf(const Shape &a, const Shape &b, bool transposeA,
                          bool transposeB);

enum class BinaryKind { Add, Sub, Mul, Div };
enum class Activation { Relu, Silu, Gelu, GeluTanh };

/// Rows of length `cols` (the keys); `queries` is the size of the dimension
/// before the last, for the causal mask: row r is query r % queries, and key
/// j is masked when j > query + (cols - queries).
struct SoftmaxShape {
  int64_t rows = 0, cols = 0, queries = 1;
  bool causal = false;
  double scale = 1.0;
};

/// A rank's block of a partitioned tensor: its local shape at `offset` in
/// the whole tensor of shape `global` (offset 0 and global = local when the
/// tensor is whole on this rank).
struct Block {
  Shape local, global;
  std::vector<int64_t> offset;
  bool split = false;
};

//===--- Records, by kernel family -----------------------------------------===//

// GEMMs.
struct MatmulInstr {
  BufferId a, b, c;
  MatmulShape shape;
  float beta; // 1: add into c (accumulate)
};

// Elementwise.
/// add, sub, mul, div with numpy broadcasting of a and b to y.
struct BinaryInstr {
  BinaryKind kind;
  BufferId a, b, y;
  Shape aShape, bShape, yShape;
};
/// neg (factor -1), scale (factor), accumulate (y += x).
struct ScaleInstr {
  BufferId x, y;
  int64_t n;
  float factor;
  bool accumulate;
};
/// cast between float types (f32 views: a copy), or i32 to float.
struct CastInstr {
  BufferId x, y;
  int64_t n;
  plan::DType from, to;
  bool accumulate;
};
struct ActivationInstr {
  Activation kind;
  BufferId x, y;
  int64_t n;
};
struct ActivationGradInstr {
  Activation kind;
  BufferId x, dy, dx;
  int64_t n;
};
/// y = x broadcast to y's shape.
struct BroadcastInstr {
  BufferId x, y;
  Shape xShape, yShape;
};
/// fill (value), or loss_grad_seed (the step's loss scale).
struct FillInstr {
  BufferId y;
  int64_t n;
  float value;
  bool lossScale;
};
/// y = x · keep / (1 - rate), keep drawn by (seed, site, step) and each
/// element's index in the whole tensor of its microbatch (`block`).
struct DropoutInstr {
  BufferId x, y;
  int64_t n;
  double rate;
  std::string site;
  Block block;
};

// Softmax (attention's).
struct SoftmaxInstr {
  BufferId x, y;
  BufferId mask; // i1, broadcast to x; kNoBuffer without one
  SoftmaxShape shape;
  Shape xShape, maskShape;
};
struct SoftmaxGradInstr {
  BufferId y, dy, dx;
  SoftmaxShape shape;
};

// Normalisation: layernorm (weight and bias) or rmsnorm (weight).
struct NormInstr {
  bool layer;
  BufferId x, weight, bias, y; // bias: kNoBuffer for rmsnorm
  int64_t rows, cols;
  double eps;
};
/// The statistics are recomputed from x rather than stored.
struct NormGradInstr {
  bool layer;
  BufferId x, weight, dy, dx, dweight, dbias; // dbias: kNoBuffer for rmsnorm
  int64_t rows, cols;
  double eps;
};

// Embeddings and cross-entropy.
/// embedding (rows = table[ids]) or embedding_grad (table (+)= rows by ids).
/// A vocabulary-parallel table holds rows [first, first + vocab) of the
/// `total` rows; other tokens read zeros and add nothing.
struct EmbeddingInstr {
  bool forward;
  BufferId table, ids, rows;
  int64_t vocab, hidden, count;
  bool wideIds; // i64 ids (else i32)
  bool accumulate;
  bool split;
  int64_t first, total;
};
enum class LossReduction { None, Sum, Mean };
/// cross_entropy (logits, labels -> loss) or cross_entropy_grad (logits,
/// labels, dloss -> dlogits).
/// Only the first `classes` of the `vocab` columns are real classes (the
/// rest pad the vocabulary): classes == vocab when none are padded.
struct CrossEntropyInstr {
  bool forward;
  BufferId logits, labels, dloss, result; // dloss: kNoBuffer forward
  int64_t tokens, vocab, ignoreIndex;
  LossReduction reduction;
  int64_t classes;
};
/// The vocabulary-parallel cross-entropy's per-token max over this rank's
/// block [first, first + classes) of the vocabulary, its padded classes
/// (from `real` of the whole on) left out.
struct CrossEntropyMaxInstr {
  BufferId logits, max;
  int64_t tokens, classes, first, real;
};
/// The vocabulary-parallel cross-entropy's per-token partials over this
/// rank's block [first, first + classes) of the `total` classes: forward
/// (logits, max, labels -> sum of exp, target logit), backward (logits,
/// max, labels, coefficient a, coefficient b -> dlogits). Only the first
/// `real` of the `total` classes are real (real == total: none padded).
struct CrossEntropyPartialsInstr {
  bool forward;
  BufferId logits, max, labels;
  BufferId sumExp, target; // forward: outputs; backward: inputs a, b
  BufferId dlogits;        // backward only
  int64_t tokens, classes, ignoreIndex, first, total, real;
};
/// Combines the all-reduced partials: forward (sumExp, target, labels ->
/// loss per token), backward (sumExp, labels, dloss -> a, b).
struct CrossEntropyCombineInstr {
  bool forward;
  BufferId sumExp, labels, other; // other: target (forward) or dloss
  BufferId y, y2;                 // y2: backward only
  int64_t tokens, ignoreIndex;
};

// Reductions and data movement.
struct ReduceInstr {
  BufferId x, y;
  Shape xShape;
  std::vector<bool> reduced; // per dimension of x
  bool max, mean;
  int64_t outElements;
};
struct TransposeInstr {
  BufferId x, y;
  Shape xShape;
  std::vector<int64_t> permutation;
};
/// split (whole -> pieces) or concat (pieces -> whole) along an axis:
/// `outer` rows of `wholeAxis · inner` elements, each piece `size · inner`.
struct SplitConcatInstr {
  bool split;
  BufferId whole;
  std::vector<std::pair<BufferId, int64_t>> pieces; // buffer, axis size
  int64_t outer, inner, wholeAxis;
};
/// Clears buffers' storage (any type).
struct ZeroInstr {
  std::vector<BufferId> buffers;
};

// Collectives over a mesh axis.
/// One buffer into another, or a bucket of adjacent f32 buffers of one
/// arena reduced in place as one span of `count` elements from `x`.
struct AllReduceInstr {
  int axis;
  ReduceKind kind;
  BufferId x, y;
  size_t count;
};
/// all_gather (blocks along `dim` -> whole), reduce_scatter (whole -> this
/// rank's block of the sum) or all_slice (whole -> this rank's block, no
/// communication, any element type): `outer` rows of the block's `inner`
/// elements, `parts` blocks along the axis, this rank's the `coord`th.
struct GatherScatterInstr {
  Op op;
  int axis;
  BufferId x, y;
  size_t outer, inner;
  int64_t parts, coord;
  size_t elementBytes;
};
/// The distributed optimizer's dp bucket: the flat span of `parts` × `shard`
/// f32 elements from buffer `first`'s offset (the bucket's buffers, then
/// padding), in place. ReduceScatter: shard `coord` of the span becomes the
/// sum over the axis of everyone's (group order: the all-reduce's bits).
/// AllGather: every rank's shard `g` of the span is rank g's.
struct BucketShardInstr {
  Op op;
  int axis;
  BufferId first;
  size_t shard;
  int64_t parts, coord;
};

// The optimizer.
/// The global norm of the gradients: the buffers this rank counts (its
/// blocks of split gradients; whole ones on coordinate 0 of the axis; a tied
/// copy once), all-reduced over `axis` (-1: none). `partial` (a pipeline
/// chunk): the squares are added to the step's total instead.
/// With the distributed optimizer (`shardAxis` >= 0) a rank counts only its
/// shard of each gradient: `ranges[i]` = (first element, count) of
/// `counted[i]`, and the squares are summed over `shardAxis` first.
struct GradNormInstr {
  std::vector<BufferId> counted;
  int axis;
  bool partial;
  int shardAxis = -1;
  std::vector<std::pair<int64_t, int64_t>> ranges;
};
/// `n` elements from element `offset` of the parameter and its gradient,
/// and from `momentOffset` of the moments (the distributed optimizer's
/// shard of the parameter; 0, 0 and the whole parameter otherwise).
struct AdamWInstr {
  BufferId param, grad, m, v;
  int64_t n;
  bool decay;
  int64_t offset = 0, momentOffset = 0;
};

// A generated kernel (plan.kernels[kernel]): its buffers are its arguments,
// inputs then outputs; its runtime scalars are computed from the step's
// parameters as `params` say.
/// DropoutRate and DropoutScale are reals: float(rate) and
/// float(1 / (1 - rate)) of the site while training (the constants kernels
/// baked in before), 0 and 1 in evaluation (StepParams::training).
enum class KernelParamKind {
  DropoutKey,
  DropoutOffset,
  Count,
  Real,
  DropoutRate,
  DropoutScale
};
/// Whether a kernel's runtime scalar is read from its reals (else its ints).
inline bool isRealParam(KernelParamKind kind) {
  return kind == KernelParamKind::Real ||
         kind == KernelParamKind::DropoutRate ||
         kind == KernelParamKind::DropoutScale;
}
/// The step values a kernel may read (a `real` scalar's site names one).
enum class StepValue {
  Lr, LossScale, GradScale, WeightDecay, GradCoef, Skipped, AdamBeta1,
  AdamBeta2, AdamOneMinusBeta1, AdamOneMinusBeta2, AdamInvCorrection1,
  AdamInvCorrection2, AdamEps
};
struct KernelParamInstr {
  KernelParamKind kind;
  std::string site;  // the dropout site (DropoutKey, ..., DropoutScale)
  int64_t elements;  // DropoutOffset: per microbatch; Count: the count
  StepValue value;   // Real
  /// DropoutRate, DropoutScale: the site's rate (from the instruction's
  /// reference form, which draws the same mask).
  double rate = 0;
};
/// What a DropoutRate or DropoutScale scalar is this run.
inline double dropoutParamValue(const KernelParamInstr &p, bool training) {
  if (p.kind == KernelParamKind::DropoutRate)
    return training ? double(float(p.rate)) : 0.0;
  return training ? double(float(1.0 / (1.0 - p.rate))) : 1.0;
}
struct Instruction;
struct KernelInstr {
  int64_t kernel;
  std::string name;
  std::vector<BufferId> args;
  std::vector<KernelParamInstr> params;
  std::vector<std::string> checks;
  /// The same work as reference instructions (a backend without the
  /// generated kernel runs these), decoded as every instruction is.
  std::vector<Instruction> reference;
};

using Record = std::variant<
    MatmulInstr, BinaryInstr, ScaleInstr, CastInstr, ActivationInstr,
    ActivationGradInstr, BroadcastInstr, FillInstr, DropoutInstr, SoftmaxInstr,
    SoftmaxGradInstr, NormInstr, NormGradInstr, EmbeddingInstr,
    CrossEntropyInstr, CrossEntropyMaxInstr, CrossEntropyPartialsInstr,
    CrossEntropyCombineInstr, ReduceInstr, TransposeInstr, SplitConcatInstr,
    ZeroInstr, AllReduceInstr, GatherScatterInstr, BucketShardInstr,
    GradNormInstr, AdamWInstr, KernelInstr>;

/// One decoded instruction.
struct Instruction {
  Op op;
  /// "microbatch instruction 3 (matmul, from gpt.loom:12:7)": errors at run
  /// time name it.
  std::string where;
  /// "matmul from gpt.loom:12:7": a collective's name in timeout messages.
  std::string label;
  /// The plan's operands, in order.
  std::vector<BufferId> inputs, outputs;
  /// Works on raw storage of any element type (all_slice, zero): a backend
  /// that computes 16-bit buffers in f32 converts nothing around it.
  bool raw = false;
  Record record;
};

/// A program's instructions, decoded for one rank.
struct DecodedProgram {
  const plan::ProgramT *program = nullptr;
  std::vector<Instruction> instructions;
};

/// A plan decoded for one rank of its mesh (coordinate per mesh axis).
struct DecodedPlan {
  const plan::PlanT *plan = nullptr;
  std::vector<int64_t> coords;
  DecodedProgram microbatch, optimizer;
};

/// What is wrong with one instruction of `plan` for the rank at `coords`
/// (one per mesh axis), or "" with `out` filled. Operand indices must be
/// in range (validatePlan checks them first).
std::string decodeInstruction(const plan::PlanT &plan,
                              const std::vector<int64_t> &coords,
                              const plan::InstructionT &inst,
                              Instruction &out);

/// Decodes both programs of `plan` (a whole plan or one pipeline chunk) for
/// the rank at `coords` (empty: coordinate 0 on every axis). Fails naming
/// the program, the instruction and its model source position.
Result<DecodedPlan> decodePlan(const plan::PlanT &plan,
                               std::vector<int64_t> coords = {});

/// "microbatch instruction 3 (matmul, from gpt.loom:12:7)".
std::string instructionWhere(const plan::ProgramT &program, size_t index);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_DECODER_H
