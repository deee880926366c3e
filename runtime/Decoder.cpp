//===- Decoder.cpp - a plan's instructions as checked, typed records ------===//
//
// Every check a kernel relies on and every piece of geometry, once, for
// every backend (include/loom/runtime/Decoder.h). Messages say what is
// wrong with the instruction; the callers name the plan and the
// instruction.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Decoder.h"

#include <algorithm>
#include <optional>
#include <set>

namespace loom {
namespace runtime {

int64_t numElements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

MatmulShape matmulShapeOf(const Shape &a, const Shape &b, bool transposeA,
                          bool transposeB) {
  MatmulShape s;
  s.transposeA = transposeA;
  s.transposeB = transposeB;
  s.m = transposeA ? a.back() : a[a.size() - 2];
  s.k = transposeA ? a[a.size() - 2] : a.back();
  s.n = transposeB ? b[b.size() - 2] : b.back();
  s.broadcastA = a.size() == 2 && b.size() > 2;
  s.broadcastB = b.size() == 2 && a.size() > 2;
  const Shape &batched = a.size() >= b.size() ? a : b;
  for (size_t i = 0; i + 2 < batched.size(); ++i)
    s.batch *= batched[i];
  if (s.broadcastB && !s.transposeA) { // rows of a and c are contiguous
    s.m *= s.batch;
    s.batch = 1;
    s.broadcastB = false;
  }
  return s;
}

std::string instructionWhere(const plan::ProgramT &program, size_t index) {
  const plan::InstructionT &inst = *program.instructions[index];
  return program.name + " instruction " + std::to_string(index) + " (" +
         inst.op + (inst.location.empty() ? "" : ", from " + inst.location) +
         ")";
}

namespace {

bool isFloat16(plan::DType t) {
  return t == plan::DType::BF16 || t == plan::DType::F16;
}
bool isFloat(plan::DType t) { return t == plan::DType::F32 || isFloat16(t); }

int64_t product(const Shape &shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i)
    n *= shape[i];
  return n;
}

std::string shapeText(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "x" : "") + std::to_string(shape[i]);
  return s + "]";
}

bool oneOf(const std::string &s, std::initializer_list<const char *> names) {
  for (const char *n : names)
    if (s == n)
      return true;
  return false;
}

/// One instruction's operands and attributes, read for the rank at
/// `coords`.
class Reader {
public:
  Reader(const plan::PlanT &p, const std::vector<int64_t> &coords,
         const plan::InstructionT &inst)
      : p(p), coords(coords), inst(inst), in(inst.inputs), out(inst.outputs) {}

  const plan::PlanT &p;
  const std::vector<int64_t> &coords;
  const plan::InstructionT &inst;
  const std::vector<int32_t> &in, &out;

  const Shape &shape(BufferId id) const { return p.buffers[size_t(id)]->shape; }
  int64_t elements(BufferId id) const { return numElements(shape(id)); }
  plan::DType dtype(BufferId id) const { return p.buffers[size_t(id)]->dtype; }
  std::string named(BufferId id) const {
    return "'" + p.buffers[size_t(id)]->name + "' " + shapeText(shape(id));
  }
  int64_t meshAxes() const { return int64_t(p.mesh.size()); }
  int64_t axisSize(int64_t axis) const {
    return axis >= 0 && axis < meshAxes() ? p.mesh[size_t(axis)]->size : 1;
  }
  int64_t coord(int64_t axis) const {
    return axis >= 0 && axis < int64_t(coords.size()) ? coords[size_t(axis)]
                                                      : 0;
  }

  const plan::AttributeT *attr(Attr a) const {
    return findAttr(inst, attrName(a));
  }
  int64_t integer(Attr a) const {
    const plan::AttributeT *x = attr(a);
    return x && !x->ints.empty() ? x->ints[0] : 0;
  }
  std::vector<int64_t> ints(Attr a) const {
    const plan::AttributeT *x = attr(a);
    return x ? x->ints : std::vector<int64_t>();
  }
  double real(Attr a) const {
    const plan::AttributeT *x = attr(a);
    return x ? x->f : 0.0;
  }
  std::string text(Attr a) const {
    const plan::AttributeT *x = attr(a);
    return x ? x->s : std::string();
  }
  /// Optional flags: false when absent.
  bool flag(Attr a) const { return integer(a) != 0; }

  bool sameSize(std::initializer_list<BufferId> ids) const {
    for (BufferId id : ids)
      if (elements(id) != elements(*ids.begin()))
        return false;
    return true;
  }
  bool broadcastsTo(BufferId from, BufferId to) const {
    const Shape &f = shape(from), &t = shape(to);
    if (f.size() > t.size())
      return false;
    for (size_t i = 0; i < f.size(); ++i) {
      int64_t d = f[f.size() - 1 - i], e = t[t.size() - 1 - i];
      if (d != e && d != 1)
        return false;
    }
    return true;
  }
  /// "" when every buffer is a float tensor (f32, bf16, f16).
  std::string floats(std::initializer_list<BufferId> ids) const {
    for (BufferId id : ids)
      if (id != kNoBuffer && !isFloat(dtype(id)))
        return "buffer '" + p.buffers[size_t(id)]->name +
               "' must be a float tensor";
    return "";
  }
  /// This rank's block of a partitioned tensor of local shape `local`, from
  /// shard_axis and global_shape (absent: the whole tensor).
  std::string blockOf(BufferId id, Block &b) const {
    const Shape &local = shape(id);
    const plan::AttributeT *axes = attr(Attr::ShardAxis),
                           *global = attr(Attr::GlobalShape);
    b.local = local;
    b.global = local;
    b.offset.assign(local.size(), 0);
    b.split = false;
    if (!axes && !global)
      return "";
    std::string bad = "its shard_axis and global_shape do not both give one "
                      "entry per dimension of " +
                      named(id);
    if (!axes || !global || axes->ints.size() != local.size() ||
        global->ints.size() != local.size())
      return bad;
    for (size_t d = 0; d < local.size(); ++d) {
      int64_t a = axes->ints[d], whole = 0;
      if (a < -1 || a >= meshAxes() ||
          !checkedMul(local[d], a < 0 ? 1 : axisSize(a), whole) ||
          global->ints[d] != whole)
        return "its global_shape does not tile " + named(id) +
               " over the mesh axes of shard_axis";
      b.offset[d] = a < 0 ? 0 : coord(a) * local[d];
      b.split |= a >= 0 && axisSize(a) > 1;
    }
    b.global = global->ints;
    return "";
  }
  /// A collective's mesh axis.
  std::string meshAxis(int &axis) const {
    if (!attr(Attr::Axis))
      return "the attribute 'axis' is missing";
    int64_t a = integer(Attr::Axis);
    if (a < 0 || a >= meshAxes())
      return "the mesh axis " + std::to_string(a) + " is not one of the mesh's " +
             std::to_string(meshAxes());
    axis = int(a);
    return "";
  }
  /// The rows of a last dimension: the kernels divide the elements by it.
  std::string lastDim(BufferId id) const {
    if (shape(id).empty() || shape(id).back() <= 0)
      return "its input " + named(id) + " needs a last dimension > 0";
    return "";
  }
};

constexpr const char *kDisagree = "operand shapes do not agree";

std::string activationOf(Op op, const Reader &r, Activation &kind) {
  if (op == Op::Relu || op == Op::ReluGrad) {
    kind = Activation::Relu;
    return "";
  }
  if (op == Op::Silu || op == Op::SiluGrad) {
    kind = Activation::Silu;
    return "";
  }
  std::string approximate = r.text(Attr::Approximate);
  if (!oneOf(approximate, {"none", "tanh"}))
    return "the approximation '" + approximate + "' is not none or tanh";
  kind = approximate == "tanh" ? Activation::GeluTanh : Activation::Gelu;
  return "";
}

// One function per kernel family; each fills `out.record` or says what is
// wrong.

std::string decodeMatmul(const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const Shape &a = r.shape(in[0]), &b = r.shape(in[1]);
  if (a.size() < 2 || b.size() < 2)
    return "its operands " + r.named(in[0]) + " and " + r.named(in[1]) +
           " need rank 2 or more";
  MatmulShape s = matmulShapeOf(a, b, r.integer(Attr::TransposeA),
                                r.integer(Attr::TransposeB));
  int64_t kb = s.transposeB ? b.back() : b[b.size() - 2];
  // Checked: products of dimensions from different operands can wrap.
  auto elements = [](int64_t x, int64_t y, int64_t z) {
    int64_t xy = 0, xyz = -1;
    return checkedMul(x, y, xy) && checkedMul(xy, z, xyz) ? xyz : -1;
  };
  if (kb != s.k || r.elements(r.out[0]) != elements(s.batch, s.m, s.n) ||
      r.elements(in[0]) != elements(s.broadcastA ? 1 : s.batch, s.m, s.k) ||
      r.elements(in[1]) != elements(s.broadcastB ? 1 : s.batch, s.k, s.n))
    return kDisagree;
  if (std::string f = r.floats({in[0], in[1], r.out[0]}); !f.empty())
    return f;
  out.record = MatmulInstr{in[0], in[1], r.out[0], s,
                           r.flag(Attr::Accumulate) ? 1.0f : 0.0f};
  return "";
}

std::string decodeElementwise(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  switch (op) {
  case Op::Add:
  case Op::Sub:
  case Op::Mul:
  case Op::Div: {
    if (!isFloat(r.dtype(o[0])))
      return "integer arithmetic is not supported";
    BinaryKind kind = op == Op::Add   ? BinaryKind::Add
                      : op == Op::Sub ? BinaryKind::Sub
                      : op == Op::Mul ? BinaryKind::Mul
                                      : BinaryKind::Div;
    if (!r.broadcastsTo(in[0], o[0]) || !r.broadcastsTo(in[1], o[0]))
      return "operands do not broadcast to the result";
    if (std::string f = r.floats({in[0], in[1]}); !f.empty())
      return f;
    out.record = BinaryInstr{kind, in[0], in[1], o[0], r.shape(in[0]),
                             r.shape(in[1]), r.shape(o[0])};
    return "";
  }
  case Op::Neg:
  case Op::Scale:
  case Op::Accumulate: {
    if (r.elements(in[0]) != r.elements(o[0]))
      return "input and output sizes differ";
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    float factor = op == Op::Neg     ? -1.0f
                   : op == Op::Scale ? float(r.real(Attr::Factor))
                                     : 1.0f;
    out.record = ScaleInstr{in[0], o[0], r.elements(o[0]), factor,
                            op == Op::Accumulate};
    return "";
  }
  case Op::Cast: {
    plan::DType from = r.dtype(in[0]), to = r.dtype(o[0]);
    if (!r.sameSize({in[0], o[0]}))
      return "input and output sizes differ";
    if (!isFloat(to) || (!isFloat(from) && from != plan::DType::I32))
      return std::string("casting ") + dtypeName(from) + " to " +
             dtypeName(to) + " is not supported";
    out.record = CastInstr{in[0], o[0], r.elements(o[0]), from, to,
                           isFloat(from) && r.flag(Attr::Accumulate)};
    return "";
  }
  case Op::Relu:
  case Op::Silu:
  case Op::Gelu: {
    Activation kind;
    if (std::string why = activationOf(op, r, kind); !why.empty())
      return why;
    if (!r.sameSize({in[0], o[0]}))
      return "input and output sizes differ";
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    out.record = ActivationInstr{kind, in[0], o[0], r.elements(o[0])};
    return "";
  }
  case Op::ReluGrad:
  case Op::SiluGrad:
  case Op::GeluGrad: {
    Activation kind;
    if (std::string why = activationOf(op, r, kind); !why.empty())
      return why;
    if (!r.sameSize({in[0], in[1], o[0]}))
      return "operand sizes differ";
    if (std::string f = r.floats({in[0], in[1], o[0]}); !f.empty())
      return f;
    out.record =
        ActivationGradInstr{kind, in[0], in[1], o[0], r.elements(o[0])};
    return "";
  }
  case Op::Broadcast:
    if (!r.broadcastsTo(in[0], o[0]))
      return "the input does not broadcast to the result";
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    out.record = BroadcastInstr{in[0], o[0], r.shape(in[0]), r.shape(o[0])};
    return "";
  case Op::Fill:
  case Op::LossGradSeed:
    if (std::string f = r.floats({o[0]}); !f.empty())
      return f;
    out.record = FillInstr{o[0], r.elements(o[0]), float(r.real(Attr::Value)),
                           op == Op::LossGradSeed};
    return "";
  case Op::Dropout:
  case Op::DropoutGrad: {
    if (!r.sameSize({in[0], o[0]}))
      return "input and output sizes differ";
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    DropoutInstr d{in[0], o[0], r.elements(o[0]), r.real(Attr::Rate),
                   r.text(Attr::Site), {}};
    if (std::string why = r.blockOf(in[0], d.block); !why.empty())
      return why;
    out.record = std::move(d);
    return "";
  }
  default:
    return "not an elementwise op";
  }
}

std::string decodeSoftmax(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  if (std::string why = r.lastDim(in[0]); !why.empty())
    return why;
  const Shape &xs = r.shape(in[0]);
  if (op == Op::Softmax) {
    if (!r.sameSize({in[0], o[0]}) ||
        (in.size() == 2 && (r.dtype(in[1]) != plan::DType::I1 ||
                            !r.broadcastsTo(in[1], in[0]))))
      return kDisagree;
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    SoftmaxShape s{r.elements(in[0]) / xs.back(), xs.back(),
                   xs.size() >= 2 ? xs[xs.size() - 2] : 1,
                   r.integer(Attr::Causal) != 0, r.real(Attr::Scale)};
    BufferId mask = in.size() == 2 ? in[1] : kNoBuffer;
    out.record = SoftmaxInstr{in[0], o[0], mask, s, xs,
                              mask != kNoBuffer ? r.shape(mask) : Shape()};
    return "";
  }
  if (!r.sameSize({in[0], in[1], o[0]}))
    return kDisagree;
  if (std::string f = r.floats({in[0], in[1], o[0]}); !f.empty())
    return f;
  SoftmaxShape s{r.elements(in[0]) / xs.back(), xs.back(), 1, false,
                 r.real(Attr::Scale)};
  out.record = SoftmaxGradInstr{in[0], in[1], o[0], s};
  return "";
}

std::string decodeNorm(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  if (std::string why = r.lastDim(in[0]); !why.empty())
    return why;
  int64_t cols = r.shape(in[0]).back(), rows = r.elements(in[0]) / cols;
  double eps = r.real(Attr::Eps);
  if (op == Op::LayerNorm || op == Op::RmsNorm) {
    bool layer = op == Op::LayerNorm;
    if (!r.sameSize({in[0], o[0]}) || r.elements(in[1]) != cols ||
        (layer && r.elements(in[2]) != cols))
      return kDisagree;
    BufferId bias = layer ? in[2] : kNoBuffer;
    if (std::string f = r.floats({in[0], in[1], bias, o[0]}); !f.empty())
      return f;
    out.record = NormInstr{layer, in[0], in[1], bias, o[0], rows, cols, eps};
    return "";
  }
  bool layer = op == Op::LayerNormGrad;
  if (!r.sameSize({in[0], in[2], o[0]}) || r.elements(in[1]) != cols ||
      r.elements(o[1]) != cols || (layer && r.elements(o[2]) != cols))
    return kDisagree;
  BufferId dbias = layer ? o[2] : kNoBuffer;
  if (std::string f = r.floats({in[0], in[1], in[2], o[0], o[1], dbias});
      !f.empty())
    return f;
  out.record = NormGradInstr{layer, in[0], in[1], in[2], o[0],
                             o[1],  dbias, rows,  cols,  eps};
  return "";
}

std::string decodeEmbedding(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  bool forward = op == Op::Embedding;
  BufferId table = forward ? in[0] : o[0], ids = in[1],
           rows = forward ? o[0] : in[0];
  if (r.shape(table).size() != 2)
    return "its table " + r.named(table) + " needs rank 2";
  plan::DType idType = r.dtype(ids);
  if (idType != plan::DType::I32 && idType != plan::DType::I64)
    return "its indices " + r.named(ids) + " must be i32 or i64";
  int64_t vocab = r.shape(table)[0], hidden = r.shape(table).back();
  int64_t count = r.elements(ids), rowsElements;
  if (!checkedMul(count, hidden, rowsElements) ||
      r.elements(rows) != rowsElements)
    return kDisagree;
  if (std::string f = r.floats({table, rows}); !f.empty())
    return f;
  Block block;
  if (std::string why = r.blockOf(table, block); !why.empty())
    return why;
  if (block.offset.back() != 0 || block.global.back() != hidden)
    return "shard_axis and global_shape may split only the table's rows";
  out.record = EmbeddingInstr{forward,      table,
                              ids,          rows,
                              vocab,        hidden,
                              count,        idType == plan::DType::I64,
                              r.flag(Attr::Accumulate), block.split,
                              block.offset[0], block.global[0]};
  return "";
}

/// The optional `classes`: how many of the `whole` classes are real (the
/// rest pad the vocabulary); absent or 0 means all of them.
std::string realClasses(const Reader &r, int64_t whole, int64_t &real) {
  real = r.integer(Attr::Classes);
  if (real < 0 || real > whole)
    return "its classes " + std::to_string(real) + " is outside [0, " +
           std::to_string(whole) + "] (0: all of the vocabulary's " +
           std::to_string(whole) + " classes are real)";
  if (real == 0)
    real = whole;
  return "";
}

std::string decodeCrossEntropy(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  int64_t ignore = r.integer(Attr::IgnoreIndex);
  if (op == Op::CrossEntropyMax) {
    if (std::string why = r.lastDim(in[0]); !why.empty())
      return why;
    int64_t classes = r.shape(in[0]).back(),
            tokens = r.elements(in[0]) / classes;
    Block block;
    if (std::string why = r.blockOf(in[0], block); !why.empty())
      return why;
    if (r.elements(o[0]) != tokens)
      return kDisagree;
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    int64_t real = 0;
    if (std::string why = realClasses(r, block.global.back(), real);
        !why.empty())
      return why;
    out.record = CrossEntropyMaxInstr{
        in[0], o[0], tokens, classes, block.offset.back(), real};
    return "";
  }
  if (op == Op::CrossEntropy || op == Op::CrossEntropyGrad) {
    bool forward = op == Op::CrossEntropy;
    if (std::string why = r.lastDim(in[0]); !why.empty())
      return why;
    std::string reduction = r.text(Attr::Reduction);
    if (!oneOf(reduction, {"none", "sum", "mean"}))
      return "the reduction '" + reduction + "' is not none, sum or mean";
    int64_t vocab = r.shape(in[0]).back(), tokens = r.elements(in[0]) / vocab;
    if (r.dtype(in[1]) != plan::DType::I32)
      return "labels must be i32";
    int64_t perToken = reduction == "none" ? tokens : 1;
    if (r.elements(in[1]) != tokens ||
        r.elements(o[0]) != (forward ? perToken : r.elements(in[0])) ||
        (!forward && r.elements(in[2]) != perToken))
      return kDisagree;
    BufferId dloss = forward ? kNoBuffer : in[2];
    if (std::string f = r.floats({in[0], dloss, o[0]}); !f.empty())
      return f;
    LossReduction red = reduction == "none"  ? LossReduction::None
                        : reduction == "sum" ? LossReduction::Sum
                                             : LossReduction::Mean;
    int64_t real = 0;
    if (std::string why = realClasses(r, vocab, real); !why.empty())
      return why;
    out.record = CrossEntropyInstr{forward, in[0], in[1],  dloss, o[0],
                                   tokens,  vocab, ignore, red,   real};
    return "";
  }
  if (op == Op::CrossEntropyPartials || op == Op::CrossEntropyPartialsGrad) {
    bool forward = op == Op::CrossEntropyPartials;
    if (std::string why = r.lastDim(in[0]); !why.empty())
      return why;
    const Shape &ls = r.shape(in[0]);
    int64_t classes = ls.back(), tokens = r.elements(in[0]) / classes;
    Block block;
    if (std::string why = r.blockOf(in[0], block); !why.empty())
      return why;
    if (r.dtype(in[2]) != plan::DType::I32 || r.elements(in[1]) != tokens ||
        r.elements(in[2]) != tokens ||
        (forward ? (r.elements(o[0]) != tokens || r.elements(o[1]) != tokens)
                 : (r.elements(in[3]) != tokens ||
                    r.elements(in[4]) != tokens ||
                    r.elements(o[0]) != r.elements(in[0]))))
      return kDisagree;
    BufferId sumExp = forward ? o[0] : in[3], target = forward ? o[1] : in[4],
             dlogits = forward ? kNoBuffer : o[0];
    if (std::string f = r.floats({in[0], in[1], sumExp, target, dlogits});
        !f.empty())
      return f;
    int64_t real = 0;
    if (std::string why = realClasses(r, block.global.back(), real);
        !why.empty())
      return why;
    out.record = CrossEntropyPartialsInstr{forward,
                                           in[0],
                                           in[1],
                                           in[2],
                                           sumExp,
                                           target,
                                           dlogits,
                                           tokens,
                                           classes,
                                           ignore,
                                           block.offset.back(),
                                           block.global.back(),
                                           real};
    return "";
  }
  bool forward = op == Op::CrossEntropyCombine;
  int64_t tokens = r.elements(in[0]);
  BufferId labels = forward ? in[2] : in[1], other = forward ? in[1] : in[2];
  if (r.dtype(labels) != plan::DType::I32 || r.elements(labels) != tokens ||
      r.elements(other) != tokens || r.elements(o[0]) != tokens ||
      (!forward && r.elements(o[1]) != tokens))
    return kDisagree;
  BufferId y2 = forward ? kNoBuffer : o[1];
  if (std::string f = r.floats({in[0], other, o[0], y2}); !f.empty())
    return f;
  out.record = CrossEntropyCombineInstr{forward, in[0], labels, other,
                                        o[0],    y2,    tokens, ignore};
  return "";
}

std::string decodeDataMovement(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  switch (op) {
  case Op::Reduce: {
    std::string kind = r.text(Attr::Kind);
    if (!oneOf(kind, {"sum", "mean", "max"}))
      return "the reduction '" + kind + "' is not sum, mean or max";
    std::vector<bool> reduced(r.shape(in[0]).size(), false);
    for (int64_t d : r.ints(Attr::Dims)) {
      if (d < 0 || d >= int64_t(reduced.size()))
        return "it reduces dimension " + std::to_string(d) + " of " +
               r.named(in[0]);
      reduced[size_t(d)] = true;
    }
    int64_t kept = 1;
    for (size_t d = 0; d < reduced.size(); ++d)
      if (!reduced[d])
        kept *= r.shape(in[0])[d];
    if (r.elements(o[0]) != kept)
      return "the result's size is not the kept dimensions'";
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    out.record = ReduceInstr{in[0],         o[0],           r.shape(in[0]),
                             reduced,       kind == "max",  kind == "mean",
                             r.elements(o[0])};
    return "";
  }
  case Op::Transpose: {
    std::vector<int64_t> perm = r.ints(Attr::Permutation), sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    bool permutation = perm.size() == r.shape(in[0]).size();
    for (size_t d = 0; permutation && d < sorted.size(); ++d)
      permutation = sorted[d] == int64_t(d);
    if (!permutation)
      return "its permutation does not permute the dimensions of " +
             r.named(in[0]);
    if (!r.sameSize({in[0], o[0]}))
      return "input and output sizes differ";
    if (std::string f = r.floats({in[0], o[0]}); !f.empty())
      return f;
    out.record = TransposeInstr{in[0], o[0], r.shape(in[0]), perm};
    return "";
  }
  case Op::Split:
  case Op::Concat: {
    bool split = op == Op::Split;
    BufferId whole = split ? in[0] : o[0];
    int64_t axis = r.integer(Attr::Axis);
    const Shape &w = r.shape(whole);
    if (axis < 0 || axis >= int64_t(w.size()))
      return "the axis " + std::to_string(axis) + " is not one of " +
             r.named(whole);
    SplitConcatInstr s{split, whole, {}, product(w, 0, size_t(axis)),
                       product(w, size_t(axis) + 1, w.size()),
                       w[size_t(axis)]};
    int64_t total = 0;
    for (BufferId id : split ? o : in) {
      Shape piece = r.shape(id);
      if (piece.size() != w.size())
        return "pieces and whole differ in rank";
      total += piece[size_t(axis)];
      piece[size_t(axis)] = s.wholeAxis;
      if (piece != w)
        return "pieces and whole differ off the axis";
      if (std::string f = r.floats({id}); !f.empty())
        return f;
      s.pieces.push_back({id, r.shape(id)[size_t(axis)]});
    }
    if (total != s.wholeAxis)
      return "the pieces do not add up to the whole";
    if (std::string f = r.floats({whole}); !f.empty())
      return f;
    out.record = std::move(s);
    return "";
  }
  case Op::Zero:
    out.raw = true;
    out.record = ZeroInstr{o};
    return "";
  default:
    return "not a data movement op";
  }
}

/// A bucket: f32 buffers worked on in place, adjacent in one arena (up to
/// their alignment), as one span of `count` elements; `ids` by offset.
std::string bucketSpan(const Reader &r, std::vector<int32_t> &ids,
                       size_t &count) {
  const plan::PlanT &p = r.p;
  ids.assign(r.in.begin(), r.in.end());
  if (ids != r.out)
    return "a bucket works on its buffers in place";
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return p.buffers[size_t(a)]->offset < p.buffers[size_t(b)]->offset;
  });
  for (size_t i = 0; i < ids.size(); ++i) {
    const plan::BufferT &b = *p.buffers[size_t(ids[i])];
    if (b.dtype != plan::DType::F32 || b.bytes % 4 ||
        b.arena != p.buffers[size_t(ids[0])]->arena)
      return "a bucket holds f32 buffers of one arena";
    if (i > 0) {
      const plan::BufferT &prev = *p.buffers[size_t(ids[i - 1])];
      int64_t gap = b.offset - (prev.offset + prev.bytes);
      if (gap < 0 || gap >= 64 || gap % 4)
        return "a bucket's buffers are not adjacent";
    }
  }
  const plan::BufferT &back = *p.buffers[size_t(ids.back())];
  count =
      size_t(back.offset + back.bytes - p.buffers[size_t(ids[0])]->offset) / 4;
  return "";
}

std::string decodeCollective(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  int axis = 0;
  if (std::string why = r.meshAxis(axis); !why.empty())
    return why;
  const plan::PlanT &p = r.p;
  if (op == Op::AllReduce) {
    if (in.size() != o.size())
      return "it has " + std::to_string(in.size()) + " inputs and " +
             std::to_string(o.size()) + " outputs";
    std::string kind = r.text(Attr::Kind);
    if (!oneOf(kind, {"sum", "max"}))
      return "the reduction '" + kind + "' is not sum or max";
    ReduceKind reduce = kind == "sum" ? ReduceKind::Sum : ReduceKind::Max;
    if (in.size() == 1 && in[0] != o[0]) {
      if (!r.sameSize({in[0], o[0]}))
        return "input and output sizes differ";
      if (std::string f = r.floats({in[0], o[0]}); !f.empty())
        return f;
      out.record = AllReduceInstr{axis, reduce, in[0], o[0],
                                  size_t(r.elements(in[0]))};
      return "";
    }
    std::vector<int32_t> ids;
    size_t count = 0;
    if (std::string why = bucketSpan(r, ids, count); !why.empty())
      return why;
    out.record = AllReduceInstr{axis, reduce, ids.front(), ids.front(), count};
    return "";
  }
  if (r.attr(Attr::Shard)) {
    // The distributed optimizer's bucket: `parts` shards of `shard`
    // elements over the bucket's span and the padding after it, which no
    // other buffer may share (the collective writes all of it).
    if (op != Op::ReduceScatter && op != Op::AllGather)
      return "only a bucket's reduce_scatter and all_gather are sharded";
    std::vector<int32_t> ids;
    size_t count = 0;
    if (std::string why = bucketSpan(r, ids, count); !why.empty())
      return why;
    int64_t shard = r.integer(Attr::Shard), parts = r.axisSize(axis), span = 0;
    if (shard <= 0 || !checkedMul(shard, parts, span) || span < int64_t(count))
      return "its shard of " + std::to_string(shard) + " elements x " +
             std::to_string(parts) + " ranks does not cover the bucket's " +
             std::to_string(count) + " elements";
    const plan::BufferT &first = *p.buffers[size_t(ids.front())];
    // Bounded before the sum: a hand-edited shard must not wrap past the
    // arena's end.
    int64_t begin = first.offset, end = 0;
    if (span > kMaxArenaBytes / 4)
      return "its sharded span of " + std::to_string(span) +
             " elements leaves the persistent arena";
    end = begin + span * 4;
    if (first.arena != plan::Arena::Persistent ||
        end > p.arena_bytes[size_t(plan::Arena::Persistent)])
      return "its sharded span leaves the persistent arena";
    // (A view of a member, such as a parameter's reshape, lies inside it.)
    for (size_t b = 0; b < p.buffers.size(); ++b) {
      const plan::BufferT &other = *p.buffers[b];
      auto inside = [&](int32_t id) {
        const plan::BufferT &m = *p.buffers[size_t(id)];
        return m.offset <= other.offset &&
               other.offset + other.bytes <= m.offset + m.bytes;
      };
      if (other.arena == first.arena && other.bytes > 0 && other.offset < end &&
          begin < other.offset + other.bytes &&
          std::none_of(ids.begin(), ids.end(), inside))
        return "its sharded span overlaps " + r.named(int32_t(b));
    }
    out.record = BucketShardInstr{
        op, axis, ids.front(), size_t(shard), parts, r.coord(axis)};
    return "";
  }
  if (in.size() != 1 || o.size() != 1)
    return "it has " + std::to_string(in.size()) + " inputs and " +
           std::to_string(o.size()) + " outputs (several: a sharded bucket)";
  bool gather = op == Op::AllGather;
  BufferId smallId = gather ? in[0] : o[0], bigId = gather ? o[0] : in[0];
  const Shape &small = r.shape(smallId), &big = r.shape(bigId);
  int64_t dim = r.integer(Attr::Dim), n = r.axisSize(axis);
  if (dim < 0 || dim >= int64_t(small.size()))
    return "the dimension " + std::to_string(dim) + " is not one of " +
           r.named(smallId);
  if (small.size() != big.size())
    return "dim is out of range";
  for (size_t d = 0; d < small.size(); ++d) {
    int64_t whole = 0;
    if (!checkedMul(small[d], int64_t(d) == dim ? n : 1, whole) ||
        big[d] != whole)
      return "the shapes do not differ by the axis size along dim";
  }
  GatherScatterInstr g{op,
                       axis,
                       in[0],
                       o[0],
                       size_t(product(small, 0, size_t(dim))),
                       size_t(product(small, size_t(dim), small.size())),
                       n,
                       r.coord(axis),
                       4};
  if (op == Op::AllSlice) {
    // No communication: keep this rank's block, of any element type (a
    // split activation's labels or mask come with it).
    if (r.dtype(in[0]) != r.dtype(o[0]))
      return "input and output types differ";
    g.elementBytes = size_t(dtypeBytes(r.dtype(in[0])));
    out.raw = true;
  } else if (std::string f = r.floats({in[0], o[0]}); !f.empty()) {
    return f;
  }
  out.record = g;
  return "";
}

/// The distributed optimizer's mesh axis (`shard_over`).
std::string shardAxisOf(const Reader &r, int &axis) {
  int64_t a = r.integer(Attr::ShardOver);
  if (a < 0 || a >= r.meshAxes())
    return "the mesh axis " + std::to_string(a) +
           " of shard_over is not one "
           "of the mesh's " +
           std::to_string(r.meshAxes());
  axis = int(a);
  return "";
}

/// The elements of `id` (at element `offset` of a bucket whose rank shards
/// are `shard` elements) in this rank's shard: (first, count).
std::string shardRange(const Reader &r, int axis, int64_t offset, int64_t shard,
                       BufferId id, std::pair<int64_t, int64_t> &range) {
  int64_t n = r.elements(id), parts = r.axisSize(axis), span = 0, end = 0;
  if (offset < 0 || shard <= 0 || !checkedMul(shard, parts, span) ||
      !checkedAdd(offset, n, end) || end > span)
    return "its shard_offset " + std::to_string(offset) + " and shard " +
           std::to_string(shard) + " do not place " + r.named(id) +
           " in a bucket of " + std::to_string(parts) + " shards";
  int64_t lo = r.coord(axis) * shard, hi = lo + shard;
  int64_t first = std::clamp(lo - offset, int64_t(0), n),
          last = std::clamp(hi - offset, int64_t(0), n);
  range = {first, last - first};
  return "";
}

std::string decodeOptimizer(Op op, const Reader &r, Instruction &out) {
  const auto &in = r.in;
  const auto &o = r.out;
  if (op == Op::GradNorm) {
    // Over a tensor-parallel axis: each rank adds its blocks of split
    // gradients, rank 0 of the axis the whole ones, and the sums of squares
    // are all-reduced. In a pipeline chunk (`partial`), the squares are
    // added to the step's total, which the runtime sums over the chunks and
    // stages; `exclude` marks a tied parameter's second copy (counted once).
    const plan::AttributeT *split = r.attr(Attr::Split),
                           *exclude = r.attr(Attr::Exclude);
    for (const plan::AttributeT *list : {split, exclude})
      if (list && list->ints.size() != in.size())
        return "its '" + list->name + "' does not have one entry per input";
    GradNormInstr g{{}, -1, r.flag(Attr::Partial)};
    if (split)
      if (std::string why = r.meshAxis(g.axis); !why.empty())
        return why;
    // The distributed optimizer: each rank's shard of every gradient.
    const plan::AttributeT *offsets = r.attr(Attr::ShardOffset),
                           *shards = r.attr(Attr::Shard);
    if (r.attr(Attr::ShardOver)) {
      if (std::string why = shardAxisOf(r, g.shardAxis); !why.empty())
        return why;
      if (!offsets || !shards || offsets->ints.size() != in.size() ||
          shards->ints.size() != in.size())
        return "its shard_offset and shard do not have one entry per input";
    }
    for (size_t i = 0; i < in.size(); ++i) {
      if (r.dtype(in[i]) != plan::DType::F32)
        return "gradients must be f32";
      bool counted = (!split || split->ints[i] || r.coord(g.axis) == 0) &&
                     !(exclude && exclude->ints[i]);
      std::pair<int64_t, int64_t> range{0, r.elements(in[i])};
      if (g.shardAxis >= 0)
        if (std::string why = shardRange(r, g.shardAxis, offsets->ints[i],
                                         shards->ints[i], in[i], range);
            !why.empty())
          return why;
      if (counted) {
        g.counted.push_back(in[i]);
        if (g.shardAxis >= 0)
          g.ranges.push_back(range);
      }
    }
    out.record = std::move(g);
    return "";
  }
  for (int32_t id : {in[0], in[1], in[2], in[3], o[0], o[1], o[2]})
    if (r.dtype(id) != plan::DType::F32)
      return "adamw works on f32 buffers";
  bool decay = r.integer(Attr::WeightDecay) != 0;
  if (r.attr(Attr::ShardOver)) {
    // The rank's shard of the parameter; the moments are the bucket's
    // shard buffers.
    int axis = -1;
    if (std::string why = shardAxisOf(r, axis); !why.empty())
      return why;
    int64_t offset = r.integer(Attr::ShardOffset),
            shard = r.integer(Attr::Shard);
    if (!r.sameSize({in[0], in[1]}) || o[0] != in[0] || o[1] != in[2] ||
        o[2] != in[3] || r.elements(in[2]) != shard ||
        r.elements(in[3]) != shard)
      return "adamw's moments are not the bucket's shard of " +
             std::to_string(shard) +
             " elements, or its parameter and "
             "gradient do not agree";
    std::pair<int64_t, int64_t> range;
    if (std::string why = shardRange(r, axis, offset, shard, in[0], range);
        !why.empty())
      return why;
    AdamWInstr a{in[0], in[1], in[2], in[3], range.second, decay};
    a.offset = range.first;
    a.momentOffset = offset + range.first - r.coord(axis) * shard;
    out.record = a;
    return "";
  }
  if (!r.sameSize({in[0], in[1], in[2], in[3]}) || o[0] != in[0] ||
      o[1] != in[2] || o[2] != in[3])
    return "adamw's parameter, gradient and moments do not agree";
  out.record = AdamWInstr{in[0], in[1], in[2], in[3], r.elements(in[0]), decay};
  return "";
}

std::string decodeRecord(Op op, const Reader &r, Instruction &out);

} // namespace

std::string decodeInstruction(const plan::PlanT &plan,
                              const std::vector<int64_t> &coords,
                              const plan::InstructionT &inst,
                              Instruction &out) {
  std::optional<Op> known = lookupOp(inst.op);
  if (!known)
    return "no executor knows the instruction '" + inst.op + "'";
  Op op = *known;
  const OpInfo &info = opInfo(op);
  const auto &in = inst.inputs;
  const auto &o = inst.outputs;
  if (in.size() < info.minInputs || in.size() > info.maxInputs ||
      o.size() < info.minOutputs || o.size() > info.maxOutputs)
    return "it has " + std::to_string(in.size()) + " inputs and " +
           std::to_string(o.size()) + " outputs";
  for (Attr a : info.required)
    if (!findAttr(inst, attrName(a)))
      return "the attribute '" + std::string(attrName(a)) + "' is missing";
  out.op = op;
  out.inputs = in;
  out.outputs = o;
  out.raw = false;
  out.label = inst.op + (inst.location.empty() ? "" : " from " + inst.location);
  Reader r(plan, coords, inst);
  if (std::string why = decodeRecord(op, r, out); !why.empty())
    return why;
  // Any instruction may say which block of a partitioned tensor it works
  // on (the compiler writes it wherever the op has a sharding); it must
  // tile the whole tensor over the mesh even where no kernel reads it.
  if (r.attr(Attr::ShardAxis) || r.attr(Attr::GlobalShape)) {
    BufferId blocked = op == Op::EmbeddingGrad ? o[0]
                       : !in.empty()           ? in[0]
                       : !o.empty()            ? o[0]
                                               : kNoBuffer;
    Block block;
    if (blocked == kNoBuffer)
      return "it has shard_axis or global_shape but no operand";
    if (std::string why = r.blockOf(blocked, block); !why.empty())
      return why;
  }
  return "";
}

namespace {
/// The step value a `real` kernel scalar names (runtime/cpu/BindKernel.cpp
/// computes them), or nullopt.
std::optional<StepValue> stepValueNamed(const std::string &site) {
  static const std::pair<const char *, StepValue> kNames[] = {
      {"lr", StepValue::Lr},
      {"loss_scale", StepValue::LossScale},
      {"grad_scale", StepValue::GradScale},
      {"weight_decay", StepValue::WeightDecay},
      {"grad_coef", StepValue::GradCoef},
      {"skipped", StepValue::Skipped},
      {"adam_beta1", StepValue::AdamBeta1},
      {"adam_beta2", StepValue::AdamBeta2},
      {"adam_one_minus_beta1", StepValue::AdamOneMinusBeta1},
      {"adam_one_minus_beta2", StepValue::AdamOneMinusBeta2},
      {"adam_inv_correction1", StepValue::AdamInvCorrection1},
      {"adam_inv_correction2", StepValue::AdamInvCorrection2},
      {"adam_eps", StepValue::AdamEps}};
  for (const auto &[name, value] : kNames)
    if (site == name)
      return value;
  return std::nullopt;
}

/// A generated kernel: its arguments must be the instruction's buffers, in
/// type, size and direction.
std::string decodeKernel(const Reader &r, Instruction &out) {
  int64_t index = r.integer(Attr::Kernel);
  if (index < 0 || index >= int64_t(r.p.kernels.size()))
    return "it names kernel " + std::to_string(index) + "; the plan has " +
           std::to_string(r.p.kernels.size());
  const plan::KernelT &k = *r.p.kernels[size_t(index)];
  KernelInstr ki{index, k.name, {}, {}, k.checks, {}};
  for (BufferId id : r.in)
    ki.args.push_back(id);
  for (BufferId id : r.out)
    ki.args.push_back(id);
  if (k.name.empty() || k.host_source.empty())
    return "kernel " + std::to_string(index) + " has no name or host source";
  if (ki.args.size() != k.args.size())
    return "kernel '" + k.name + "' takes " + std::to_string(k.args.size()) +
           " arguments; the instruction passes " +
           std::to_string(ki.args.size());
  for (size_t a = 0; a < k.args.size(); ++a) {
    const plan::KernelArgT &arg = *k.args[a];
    BufferId id = ki.args[a];
    if (arg.output != (a >= r.in.size()))
      return "argument " + std::to_string(a) + " of kernel '" + k.name +
             "' is passed as an " + (arg.output ? "input" : "output");
    // -1: the kernel's count, which the first argument gives.
    int64_t want = arg.elements < 0 ? r.elements(ki.args[0]) : arg.elements;
    if (arg.dtype != r.dtype(id) || want != r.elements(id))
      return "argument " + std::to_string(a) + " of kernel '" + k.name +
             "' is " + std::to_string(want) + " elements of " +
             dtypeName(arg.dtype) + "; the buffer is " + r.named(id) + " " +
             dtypeName(r.dtype(id));
  }
  if (r.inst.kernel_sites.size() != k.params.size())
    return "kernel '" + k.name + "' has " + std::to_string(k.params.size()) +
           " runtime scalars; the instruction names sites for " +
           std::to_string(r.inst.kernel_sites.size());
  for (size_t q = 0; q < k.params.size(); ++q) {
    const auto &p = k.params[q];
    KernelParamInstr param{KernelParamKind::Real, p->site, p->elements,
                           StepValue::Lr};
    if (p->kind == "dropout_key")
      param.kind = KernelParamKind::DropoutKey;
    else if (p->kind == "dropout_offset")
      param.kind = KernelParamKind::DropoutOffset;
    else if (p->kind == "dropout_rate")
      param.kind = KernelParamKind::DropoutRate;
    else if (p->kind == "dropout_scale")
      param.kind = KernelParamKind::DropoutScale;
    else if (p->kind == "count")
      param.kind = KernelParamKind::Count;
    else if (p->kind != "real")
      return "kernel '" + k.name + "' has a runtime scalar of unknown kind '" +
             p->kind + "'";
    if (param.kind == KernelParamKind::DropoutKey ||
        param.kind == KernelParamKind::DropoutOffset ||
        param.kind == KernelParamKind::DropoutRate ||
        param.kind == KernelParamKind::DropoutScale) {
      if (r.inst.kernel_sites[q].empty())
        return "kernel '" + k.name + "' draws dropout, and the instruction "
               "names no site for it";
      param.site = r.inst.kernel_sites[q];
    }
    if (param.kind == KernelParamKind::DropoutRate ||
        param.kind == KernelParamKind::DropoutScale) {
      // The rate is the site's, as its reference form (the same mask) has
      // it: a kernel is shared by regions of different rates.
      bool found = false;
      for (const auto &ref : r.inst.reference) {
        const plan::AttributeT *site = findAttr(*ref, attrName(Attr::Site));
        const plan::AttributeT *rate = findAttr(*ref, attrName(Attr::Rate));
        if ((ref->op == opName(Op::Dropout) ||
             ref->op == opName(Op::DropoutGrad)) &&
            site && site->s == param.site && rate) {
          param.rate = rate->f;
          found = true;
          break;
        }
      }
      if (r.inst.reference.empty())
        return "kernel '" + k.name + "' has no reference form";
      if (!found)
        return "kernel '" + k.name + "' reads the dropout rate of site '" +
               param.site + "', and its reference form has no dropout there";
      if (!(param.rate >= 0 && param.rate < 1))
        return "kernel '" + k.name + "' has dropout rate " +
               std::to_string(param.rate) + " at site '" + param.site +
               "'; it must be in [0, 1)";
    }
    if (param.kind == KernelParamKind::Count)
      param.elements = r.elements(ki.args[0]);
    if (param.kind == KernelParamKind::Real) {
      std::optional<StepValue> value = stepValueNamed(p->site);
      if (!value)
        return "kernel '" + k.name + "' reads the unknown step value '" +
               p->site + "'";
      param.value = *value;
    }
    ki.params.push_back(std::move(param));
  }
  // The reference form does the same work: it writes every output, and
  // touches nothing but the instruction's buffers and its scratch (workspace
  // temporaries that live only while the instruction runs).
  if (r.inst.reference.empty())
    return "kernel '" + k.name + "' has no reference form";
  std::set<BufferId> mine(r.in.begin(), r.in.end()),
      writable(r.out.begin(), r.out.end()), written;
  mine.insert(r.out.begin(), r.out.end());
  for (BufferId id : r.inst.scratch) {
    const plan::BufferT &b = *r.p.buffers[size_t(id)];
    if (b.kind != plan::BufferKind::Temporary ||
        b.arena != plan::Arena::Workspace)
      return "kernel '" + k.name + "' has scratch " + r.named(id) +
             ", which is not a workspace temporary";
    mine.insert(id);
    writable.insert(id);
  }
  for (const auto &ref : r.inst.reference) {
    for (BufferId id : ref->inputs)
      if (!mine.count(id))
        return "the reference form of kernel '" + k.name + "' reads " +
               r.named(id) + ", which is not the instruction's";
    for (BufferId id : ref->outputs) {
      if (!writable.count(id))
        return "the reference form of kernel '" + k.name + "' writes " +
               r.named(id) + ", which is not an output or scratch";
      written.insert(id);
    }
  }
  for (BufferId id : r.out)
    if (!written.count(id))
      return "the reference form of kernel '" + k.name +
             "' does not write the output " + r.named(id);
  bool counted = false;
  for (const auto &p : k.params)
    counted |= p->kind == "count";
  for (const auto &arg : k.args)
    if (arg->elements < 0 && !counted)
      return "kernel '" + k.name +
             "' has an argument of runtime size but no count";
  for (size_t i = 0; i < r.inst.reference.size(); ++i) {
    Instruction ref;
    if (r.inst.reference[i]->op == opName(Op::Kernel))
      return "its reference form holds a kernel";
    if (std::string why =
            decodeInstruction(r.p, r.coords, *r.inst.reference[i], ref);
        !why.empty())
      return "reference instruction " + std::to_string(i) + " (" +
             r.inst.reference[i]->op + "): " + why;
    ref.where = "reference instruction " + std::to_string(i) + " (" +
                r.inst.reference[i]->op + ") of kernel " + k.name;
    ki.reference.push_back(std::move(ref));
  }
  out.record = std::move(ki);
  return "";
}

std::string decodeRecord(Op op, const Reader &r, Instruction &out) {
  switch (op) {
  case Op::Matmul:
    return decodeMatmul(r, out);
  case Op::Softmax:
  case Op::SoftmaxGrad:
    return decodeSoftmax(op, r, out);
  case Op::LayerNorm:
  case Op::RmsNorm:
  case Op::LayerNormGrad:
  case Op::RmsNormGrad:
    return decodeNorm(op, r, out);
  case Op::Embedding:
  case Op::EmbeddingGrad:
    return decodeEmbedding(op, r, out);
  case Op::CrossEntropy:
  case Op::CrossEntropyGrad:
  case Op::CrossEntropyMax:
  case Op::CrossEntropyPartials:
  case Op::CrossEntropyPartialsGrad:
  case Op::CrossEntropyCombine:
  case Op::CrossEntropyCombineGrad:
    return decodeCrossEntropy(op, r, out);
  case Op::Reduce:
  case Op::Transpose:
  case Op::Split:
  case Op::Concat:
  case Op::Zero:
    return decodeDataMovement(op, r, out);
  case Op::AllReduce:
  case Op::AllGather:
  case Op::ReduceScatter:
  case Op::AllSlice:
    return decodeCollective(op, r, out);
  case Op::GradNorm:
  case Op::AdamW:
    return decodeOptimizer(op, r, out);
  case Op::Kernel:
    return decodeKernel(r, out);
  default:
    return decodeElementwise(op, r, out);
  }
}
} // namespace

Result<DecodedPlan> decodePlan(const plan::PlanT &plan,
                               std::vector<int64_t> coords) {
  if (coords.empty())
    coords.assign(plan.mesh.size(), 0);
  if (coords.size() != plan.mesh.size())
    return Status::error("the rank has " + std::to_string(coords.size()) +
                         " coordinates; the plan's mesh has " +
                         std::to_string(plan.mesh.size()) + " axes");
  for (size_t a = 0; a < plan.mesh.size(); ++a)
    if (coords[a] < 0 || coords[a] >= plan.mesh[a]->size)
      return Status::error("the rank's coordinate on mesh axis '" +
                           plan.mesh[a]->name + "' is out of range");
  DecodedPlan decoded;
  decoded.plan = &plan;
  decoded.coords = coords;
  for (auto [program, into] :
       {std::pair{plan.microbatch.get(), &decoded.microbatch},
        std::pair{plan.optimizer.get(), &decoded.optimizer}}) {
    into->program = program;
    for (size_t k = 0; k < program->instructions.size(); ++k) {
      const plan::InstructionT &inst = *program->instructions[k];
      for (const auto *ids : {&inst.inputs, &inst.outputs})
        for (int32_t id : *ids)
          if (id < 0 || size_t(id) >= plan.buffers.size())
            return Status::error("the plan's " + instructionWhere(*program, k) +
                                 ": operand " + std::to_string(id) +
                                 " is not a buffer");
      Instruction decodedInst;
      decodedInst.where = instructionWhere(*program, k);
      if (std::string why = decodeInstruction(plan, coords, inst, decodedInst);
          !why.empty())
        return Status::error("the plan's " + decodedInst.where + ": " + why);
      into->instructions.push_back(std::move(decodedInst));
    }
  }
  return decoded;
}

} // namespace runtime
} // namespace loom
