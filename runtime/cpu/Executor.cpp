//===- Executor.cpp - the CPU backend: runs a plan's programs -------------===//

#include "loom/runtime/cpu/Executor.h"
#include "loom/runtime/cpu/Float16.h"
#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>

namespace loom {
namespace runtime {
namespace cpu {

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

/// Reads an instruction's attributes, remembering the first one missing.
struct Attrs {
  const plan::InstructionT &inst;
  std::string missing;

  const plan::AttributeT *find(const char *name) {
    const plan::AttributeT *a = findAttr(inst, name);
    if (!a && missing.empty())
      missing = name;
    return a;
  }
  int64_t integer(const char *name) {
    const plan::AttributeT *a = find(name);
    return a && !a->ints.empty() ? a->ints[0] : 0;
  }
  std::vector<int64_t> ints(const char *name) {
    const plan::AttributeT *a = find(name);
    return a ? a->ints : std::vector<int64_t>();
  }
  double real(const char *name) {
    const plan::AttributeT *a = find(name);
    return a ? a->f : 0.0;
  }
  std::string text(const char *name) {
    const plan::AttributeT *a = find(name);
    return a ? a->s : std::string();
  }
  bool flag(const char *name) { // optional, false when absent
    const plan::AttributeT *a = findAttr(inst, name);
    return a && !a->ints.empty() && a->ints[0] != 0;
  }
};

/// The activation of relu/silu/gelu and their _grad instructions into
/// `kind`, or why there is none.
std::string activationOf(const std::string &op, Attrs &attrs,
                         Activation &kind) {
  if (op.rfind("relu", 0) == 0) {
    kind = Activation::Relu;
    return "";
  }
  if (op.rfind("silu", 0) == 0) {
    kind = Activation::Silu;
    return "";
  }
  std::string approximate = attrs.text("approximate");
  if (!attrs.missing.empty())
    return "attribute 'approximate' is missing";
  if (approximate != "none" && approximate != "tanh")
    return "unknown gelu approximation '" + approximate + "'";
  kind = approximate == "tanh" ? Activation::GeluTanh : Activation::Gelu;
  return "";
}

/// The reduction of `x` over `reduced` dimensions into `y` (shape with
/// those dimensions 1 or dropped, as the op's result).
void reduce(const float *x, const Shape &shape, const std::vector<bool> &reduced,
            bool max, bool mean, float *y, int64_t outElements) {
  // The common case, bias gradients: a sum over the leading dimensions.
  size_t prefix = 0;
  while (prefix < reduced.size() && reduced[prefix])
    ++prefix;
  bool leading = !max && std::none_of(reduced.begin() + prefix, reduced.end(),
                                      [](bool r) { return r; });
  if (leading) {
    int64_t rows = product(shape, 0, prefix), cols = outElements;
    std::vector<double> acc(size_t(cols), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        acc[size_t(c)] += x[r * cols + c];
    for (int64_t c = 0; c < cols; ++c)
      y[c] = float(mean ? acc[size_t(c)] / double(rows) : acc[size_t(c)]);
    return;
  }
  std::vector<double> acc(size_t(outElements),
                          max ? -INFINITY : 0.0);
  size_t rank = shape.size();
  std::vector<int64_t> index(rank, 0);
  int64_t n = numElements(shape);
  for (int64_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < rank; ++d)
      if (!reduced[d])
        o = o * shape[d] + index[d];
    acc[o] = max ? std::max(acc[o], double(x[i])) : acc[o] + double(x[i]);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  double count = double(n) / double(std::max<int64_t>(1, outElements));
  for (int64_t o = 0; o < outElements; ++o)
    y[o] = float(mean ? acc[o] / count : acc[o]);
}

} // namespace

Result<std::unique_ptr<CpuExecutor>>
CpuExecutor::create(const plan::PlanT &plan, RankContext rank) {
  std::unique_ptr<CpuExecutor> ex(new CpuExecutor(plan));
  if (rank.coords.empty())
    rank.coords.assign(plan.mesh.size(), 0);
  if (rank.coords.size() != plan.mesh.size())
    return Status::error("the rank has " + std::to_string(rank.coords.size()) +
                         " coordinates; the plan's mesh has " +
                         std::to_string(plan.mesh.size()) + " axes");
  for (size_t a = 0; a < plan.mesh.size(); ++a)
    if (rank.coords[a] < 0 || rank.coords[a] >= plan.mesh[a]->size)
      return Status::error("the rank's coordinate on mesh axis '" +
                           plan.mesh[a]->name + "' is out of range");
  ex->rank = std::move(rank);
  const char *profile = std::getenv("LOOM_PROFILE");
  ex->profiling = profile && std::string(profile) == "1";
  for (int64_t bytes : plan.arena_bytes) {
    if (bytes < 0 || bytes > kMaxArenaBytes)
      return Status::error("the plan's arena of " + std::to_string(bytes) +
                           " bytes is not in [0, " +
                           std::to_string(kMaxArenaBytes) + "]");
    // 64 spare bytes: a zero-byte arena still has an address.
    ex->arenas.emplace_back(new (std::nothrow) uint8_t[size_t(bytes) + 64]());
    if (!ex->arenas.back())
      return Status::error("cannot allocate an arena of " +
                           std::to_string(bytes) + " bytes");
    ex->arenaBase.push_back(ex->arenas.back().get());
  }
  ex->shadows.resize(plan.buffers.size());
  for (size_t i = 0; i < plan.buffers.size(); ++i)
    if (isFloat16(plan.buffers[i]->dtype))
      ex->shadows[i].resize(size_t(numElements(plan.buffers[i]->shape)));
  for (const auto *program : {plan.microbatch.get(), plan.optimizer.get()})
    if (Status s = ex->prepare(*program); !s.ok())
      return s;
  return ex;
}

int64_t CpuExecutor::axisSize(int64_t axis) const {
  return axis >= 0 && axis < int64_t(plan.mesh.size()) ? plan.mesh[axis]->size
                                                       : 1;
}
int64_t CpuExecutor::coord(int64_t axis) const {
  return axis >= 0 && axis < int64_t(rank.coords.size()) ? rank.coords[axis]
                                                         : 0;
}

void *CpuExecutor::data(int32_t buffer) {
  const plan::BufferT &b = *plan.buffers[buffer];
  return arenaBase[size_t(b.arena)] + b.offset;
}

CpuExecutor::~CpuExecutor() {
  if (!profiling)
    return;
  std::map<std::string, double> byOp;
  double total = 0;
  for (auto &[op, seconds] : profile) {
    byOp[op] += seconds;
    total += seconds;
  }
  std::vector<std::pair<double, std::string>> sorted;
  for (auto &[op, seconds] : byOp)
    sorted.push_back({seconds, op});
  std::sort(sorted.rbegin(), sorted.rend());
  std::fprintf(stderr, "LOOM_PROFILE: %.3f s in instructions\n", total);
  for (auto &[seconds, op] : sorted)
    std::fprintf(stderr, "  %-20s %9.3f s %5.1f%%\n", op.c_str(), seconds,
                 100 * seconds / total);
}

Status CpuExecutor::run(const plan::ProgramT &program, StepState &state,
                        size_t end, size_t begin) {
  for (auto &[p, steps] : prepared)
    if (p == &program) {
      for (size_t k = begin; k < std::min(end, steps.size()); ++k) {
        auto start = std::chrono::steady_clock::now();
        if (Status s = steps[k](state); !s.ok())
          return s;
        if (profiling) // totals per op, so memory stays bounded
          profile[program.instructions[k]->op] +=
              std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            start)
                  .count();
      }
      return Status::success();
    }
  return Status::error("program '" + program.name + "' is not prepared");
}

Status CpuExecutor::prepare(const plan::ProgramT &program) {
  std::vector<Prepared> steps;
  for (size_t k = 0; k < program.instructions.size(); ++k) {
    const plan::InstructionT &inst = *program.instructions[k];
    const std::string where =
        program.name + " instruction " + std::to_string(k) + " (" + inst.op +
        (inst.location.empty() ? "" : ", from " + inst.location) + ")";
    auto fail = [&](const std::string &why) {
      return Status::error("the plan's " + where + ": " + why);
    };
    const auto &in = inst.inputs;
    const auto &out = inst.outputs;
    auto S = [&](int32_t id) -> const Shape & { return plan.buffers[id]->shape; };
    auto N = [&](int32_t id) { return numElements(S(id)); };
    auto dtype = [&](int32_t id) { return plan.buffers[id]->dtype; };
    // f32 views of float buffers: in place, or the 16-bit buffer's shadow.
    // Asking for one of another type is a broken plan, reported below.
    int32_t notFloat = -1;
    auto F = [this, &dtype, &notFloat](int32_t id) -> float * {
      if (!isFloat(dtype(id)))
        notFloat = id;
      return isFloat16(dtype(id)) ? shadows[id].data() : as<float>(id);
    };
    // Shape checks: a plan that passes its checksum can still be wrong.
    auto sameSize = [&](std::initializer_list<int32_t> ids) {
      for (int32_t id : ids)
        if (N(id) != N(*ids.begin()))
          return false;
      return true;
    };
    auto broadcastsTo = [&](int32_t from, int32_t to) {
      const Shape &f = S(from), &t = S(to);
      if (f.size() > t.size())
        return false;
      for (size_t i = 0; i < f.size(); ++i) {
        int64_t d = f[f.size() - 1 - i], e = t[t.size() - 1 - i];
        if (d != e && d != 1)
          return false;
      }
      return true;
    };

    auto arity = [&](size_t ins, size_t outs) {
      return in.size() == ins && out.size() == outs;
    };
    Attrs attrs{inst, {}};
    const std::string &op = inst.op;
    Prepared body;
    // Errors found while running name the instruction too.
    auto runError = [where](const std::string &why) {
      return Status::error(where + ": " + why);
    };
    // This rank's block of a partitioned tensor of local shape `local`, from
    // the attributes shard_axis and global_shape (absent: the whole tensor).
    struct Block {
      Shape global;
      std::vector<int64_t> offset;
      bool split = false;
    };
    auto blockOf = [&](const Shape &local, Block &b) {
      const plan::AttributeT *axes = findAttr(inst, "shard_axis"),
                             *global = findAttr(inst, "global_shape");
      b.global = local;
      b.offset.assign(local.size(), 0);
      if (!axes && !global)
        return true;
      if (!axes || !global || axes->ints.size() != local.size() ||
          global->ints.size() != local.size())
        return false;
      for (size_t d = 0; d < local.size(); ++d) {
        int64_t a = axes->ints[d];
        if (a < -1 || a >= int64_t(plan.mesh.size()) ||
            global->ints[d] != local[d] * (a < 0 ? 1 : axisSize(a)))
          return false;
        b.offset[d] = a < 0 ? 0 : coord(a) * local[d];
        b.split |= a >= 0 && axisSize(a) > 1;
      }
      b.global = global->ints;
      return true;
    };
    // A collective's mesh axis and transport.
    auto collectiveAxis = [&](int64_t &axis) {
      axis = attrs.integer("axis");
      return axis >= 0 && axis < int64_t(plan.mesh.size()) &&
             (rank.comm || axisSize(axis) == 1);
    };
    std::string label = op + (inst.location.empty() ? "" : " from " + inst.location);

    if (op == "matmul" && arity(2, 1)) {
      const Shape &a = S(in[0]), &b = S(in[1]);
      if (a.size() < 2 || b.size() < 2)
        return fail("operands must have rank 2 or more");
      MatmulShape s = matmulShapeOf(a, b, attrs.integer("transpose_a"),
                                    attrs.integer("transpose_b"));
      int64_t kb = s.transposeB ? b.back() : b[b.size() - 2];
      // Checked: products of dimensions from different operands can wrap.
      auto elements = [](int64_t x, int64_t y, int64_t z) {
        int64_t xy = 0, xyz = -1;
        return checkedMul(x, y, xy) && checkedMul(xy, z, xyz) ? xyz : -1;
      };
      if (kb != s.k || N(out[0]) != elements(s.batch, s.m, s.n) ||
          N(in[0]) != elements(s.broadcastA ? 1 : s.batch, s.m, s.k) ||
          N(in[1]) != elements(s.broadcastB ? 1 : s.batch, s.k, s.n))
        return fail("operand shapes do not agree");
      float beta = attrs.flag("accumulate") ? 1.0f : 0.0f;
      float *x = F(in[0]), *w = F(in[1]), *y = F(out[0]);
      body = [=](StepState &) {
        matmul<float>(s, x, w, y, beta);
        return Status::success();
      };
    } else if ((op == "add" || op == "sub" || op == "mul" || op == "div") &&
               arity(2, 1)) {
      if (!isFloat(dtype(out[0])))
        return fail("integer arithmetic is not supported by the CPU backend");
      BinaryKind kind = op == "add"   ? BinaryKind::Add
                        : op == "sub" ? BinaryKind::Sub
                        : op == "mul" ? BinaryKind::Mul
                                      : BinaryKind::Div;
      if (!broadcastsTo(in[0], out[0]) || !broadcastsTo(in[1], out[0]))
        return fail("operands do not broadcast to the result");
      float *a = F(in[0]), *b = F(in[1]), *y = F(out[0]);
      Shape as = S(in[0]), bs = S(in[1]), ys = S(out[0]);
      body = [=](StepState &) {
        broadcastBinary<float>(kind, a, as, b, bs, y, ys);
        return Status::success();
      };
    } else if ((op == "neg" || op == "scale" || op == "accumulate") &&
               arity(1, 1)) {
      float factor = op == "neg" ? -1.0f
                     : op == "scale" ? float(attrs.real("factor"))
                                     : 1.0f;
      bool add = op == "accumulate";
      float *x = F(in[0]), *y = F(out[0]);
      int64_t n = N(out[0]);
      if (N(in[0]) != n)
        return fail("input and output sizes differ");
      body = [=](StepState &) {
#pragma omp parallel for schedule(static) if (n > 262144)
        for (int64_t i = 0; i < n; ++i)
          y[i] = add ? y[i] + x[i] : factor * x[i];
        return Status::success();
      };
    } else if (op == "cast" && arity(1, 1)) {
      plan::DType from = dtype(in[0]), to = dtype(out[0]);
      int64_t n = N(out[0]);
      if (!sameSize({in[0], out[0]}))
        return fail("input and output sizes differ");
      bool add = attrs.flag("accumulate");
      if (isFloat(from) && isFloat(to)) {
        float *x = F(in[0]), *y = F(out[0]);
        body = [=](StepState &) {
          for (int64_t i = 0; i < n; ++i)
            y[i] = add ? y[i] + x[i] : x[i];
          return Status::success();
        };
      } else if (from == plan::DType::I32 && isFloat(to)) {
        const int32_t *x = as<int32_t>(in[0]);
        float *y = F(out[0]);
        body = [=](StepState &) {
          for (int64_t i = 0; i < n; ++i)
            y[i] = float(x[i]);
          return Status::success();
        };
      } else {
        return fail(std::string("casting ") + dtypeName(from) + " to " +
                    dtypeName(to) + " is not supported by the CPU backend");
      }
    } else if ((op == "relu" || op == "silu" || op == "gelu") &&
               arity(1, 1)) {
      Activation kind;
      if (std::string why = activationOf(op, attrs, kind); !why.empty())
        return fail(why);
      if (!sameSize({in[0], out[0]}))
        return fail("input and output sizes differ");
      float *x = F(in[0]), *y = F(out[0]);
      int64_t n = N(out[0]);
      body = [=](StepState &) {
        activation<float>(kind, x, y, n);
        return Status::success();
      };
    } else if ((op == "relu_grad" || op == "silu_grad" ||
                op == "gelu_grad") &&
               arity(2, 1)) {
      Activation kind;
      if (std::string why = activationOf(op, attrs, kind); !why.empty())
        return fail(why);
      if (!sameSize({in[0], in[1], out[0]}))
        return fail("operand sizes differ");
      float *x = F(in[0]), *dy = F(in[1]), *dx = F(out[0]);
      int64_t n = N(out[0]);
      body = [=](StepState &) {
        activationBackward<float>(kind, x, dy, dx, n);
        return Status::success();
      };
    } else if (op == "softmax" && (arity(1, 1) || arity(2, 1))) {
      const Shape &xs = S(in[0]);
      if (xs.empty() || xs.back() == 0 || !sameSize({in[0], out[0]}) ||
          (in.size() == 2 && (dtype(in[1]) != plan::DType::I1 ||
                              !broadcastsTo(in[1], in[0]))))
        return fail("operand shapes do not agree");
      SoftmaxShape s{N(in[0]) / xs.back(), xs.back(),
                     xs.size() >= 2 ? xs[xs.size() - 2] : 1,
                     attrs.integer("causal") != 0, attrs.real("scale")};
      float *x = F(in[0]), *y = F(out[0]);
      const uint8_t *mask = in.size() == 2 ? as<uint8_t>(in[1]) : nullptr;
      Shape maskShape = in.size() == 2 ? S(in[1]) : Shape();
      auto wide = std::make_shared<std::vector<uint8_t>>();
      body = [=](StepState &) {
        const uint8_t *m = nullptr;
        if (mask) { // broadcast the mask to the scores' shape
          std::vector<float> narrow(mask, mask + numElements(maskShape));
          std::vector<float> full(size_t(numElements(xs))), zero(1, 0.0f);
          broadcastBinary<float>(BinaryKind::Add, narrow.data(), maskShape,
                                 zero.data(), Shape{}, full.data(), xs);
          wide->assign(full.begin(), full.end());
          m = wide->data();
        }
        softmax<float>(s, x, m, y);
        return Status::success();
      };
    } else if (op == "softmax_grad" && arity(2, 1)) {
      if (S(in[0]).empty() || S(in[0]).back() == 0 ||
          !sameSize({in[0], in[1], out[0]}))
        return fail("operand shapes do not agree");
      SoftmaxShape s{N(in[0]) / S(in[0]).back(), S(in[0]).back(), 1, false,
                     attrs.real("scale")};
      float *y = F(in[0]), *dy = F(in[1]), *dx = F(out[0]);
      body = [=](StepState &) {
        softmaxBackward<float>(s, y, dy, dx);
        return Status::success();
      };
    } else if ((op == "layernorm" && arity(3, 1)) ||
               (op == "rmsnorm" && arity(2, 1))) {
      if (S(in[0]).empty() || S(in[0]).back() == 0)
        return fail("the input must have a last dimension");
      int64_t cols = S(in[0]).back(), rows = N(in[0]) / cols;
      double eps = attrs.real("eps");
      bool layer = op == "layernorm";
      if (!sameSize({in[0], out[0]}) || N(in[1]) != cols ||
          (layer && N(in[2]) != cols))
        return fail("operand shapes do not agree");
      float *x = F(in[0]), *w = F(in[1]), *b = layer ? F(in[2]) : nullptr,
            *y = F(out[0]);
      auto stats = std::make_shared<std::vector<float>>(size_t(2 * rows));
      body = [=](StepState &) {
        float *mean = stats->data(), *rstd = mean + rows;
        if (layer)
          layerNorm<float>(x, w, b, y, mean, rstd, rows, cols, eps);
        else
          rmsNorm<float>(x, w, y, rstd, rows, cols, eps);
        return Status::success();
      };
    } else if ((op == "layernorm_grad" && arity(3, 3)) ||
               (op == "rmsnorm_grad" && arity(3, 2))) {
      // The statistics are recomputed from x rather than stored.
      if (S(in[0]).empty() || S(in[0]).back() == 0)
        return fail("the input must have a last dimension");
      int64_t cols = S(in[0]).back(), rows = N(in[0]) / cols;
      double eps = attrs.real("eps");
      bool layer = op == "layernorm_grad";
      if (!sameSize({in[0], in[2], out[0]}) || N(in[1]) != cols ||
          N(out[1]) != cols || (layer && N(out[2]) != cols))
        return fail("operand shapes do not agree");
      float *x = F(in[0]), *w = F(in[1]), *dy = F(in[2]), *dx = F(out[0]),
            *dw = F(out[1]), *db = layer ? F(out[2]) : nullptr;
      auto scratch = std::make_shared<std::vector<float>>(
          size_t(rows * cols + 2 * rows + cols));
      body = [=](StepState &) {
        float *y = scratch->data(), *mean = y + rows * cols,
              *rstd = mean + rows, *zeros = rstd + rows;
        std::fill(dw, dw + cols, 0.0f);
        if (layer) {
          std::fill(zeros, zeros + cols, 0.0f);
          std::fill(db, db + cols, 0.0f);
          layerNorm<float>(x, w, zeros, y, mean, rstd, rows, cols, eps);
          layerNormBackward<float>(x, w, mean, rstd, dy, dx, dw, db, rows,
                                   cols);
        } else {
          rmsNorm<float>(x, w, y, rstd, rows, cols, eps);
          rmsNormBackward<float>(x, w, rstd, dy, dx, dw, rows, cols);
        }
        return Status::success();
      };
    } else if ((op == "dropout" || op == "dropout_grad") && arity(1, 1)) {
      double rate = attrs.real("rate");
      std::string site = attrs.text("site");
      if (!sameSize({in[0], out[0]}))
        return fail("input and output sizes differ");
      float *x = F(in[0]), *y = F(out[0]);
      int64_t n = N(out[0]);
      Block block;
      if (!blockOf(S(in[0]), block))
        return fail("shard_axis and global_shape do not match the input");
      if (!block.split) {
        body = [=](StepState &state) {
          dropout<float>(x, y, n, state.microbatch * n, rate,
                         dropoutKey(state.seed, site, state.step));
          return Status::success();
        };
      } else {
        // A block of the tensor: the mask of each element is the whole
        // tensor's at its global index. Runs of whole trailing dimensions
        // are contiguous in both.
        Shape local = S(in[0]);
        size_t rank = local.size(), last = 0;
        for (size_t d = 0; d < rank; ++d)
          if (block.offset[d] != 0 || block.global[d] != local[d])
            last = d;
        int64_t inner = product(local, last + 1, rank),
                outer = product(local, 0, last + 1),
                globalN = numElements(block.global);
        std::vector<int64_t> stride(rank, 1);
        for (size_t d = rank - 1; d-- > 0;)
          stride[d] = stride[d + 1] * block.global[d + 1];
        body = [=](StepState &state) {
          uint64_t key = dropoutKey(state.seed, site, state.step);
          std::vector<int64_t> index(last + 1, 0);
          for (int64_t o = 0; o < outer; ++o) {
            int64_t g = 0;
            for (size_t d = 0; d <= last; ++d)
              g += (block.offset[d] + index[d]) * stride[d];
            dropout<float>(x + o * inner, y + o * inner, inner,
                           state.microbatch * globalN + g, rate, key);
            for (size_t d = last + 1; d-- > 0;) {
              if (++index[d] < local[d])
                break;
              index[d] = 0;
            }
          }
          return Status::success();
        };
      }
    } else if ((op == "embedding" || op == "embedding_grad") &&
               arity(2, 1)) {
      bool forward = op == "embedding";
      int32_t tableId = forward ? in[0] : out[0];
      if (S(tableId).size() != 2)
        return fail("the table must have rank 2");
      int64_t vocab = S(tableId)[0], hidden = S(tableId).back();
      int32_t idsId = in[1];
      int64_t count = N(idsId);
      bool wide = dtype(idsId) == plan::DType::I64;
      if (!wide && dtype(idsId) != plan::DType::I32)
        return fail("indices must be i32 or i64");
      int64_t rowsElements;
      if (!checkedMul(count, hidden, rowsElements) ||
          N(forward ? out[0] : in[0]) != rowsElements)
        return fail("operand shapes do not agree");
      void *ids = data(idsId);
      float *table = F(tableId), *rows = F(forward ? out[0] : in[0]);
      bool accumulate = attrs.flag("accumulate");
      Block block;
      if (!blockOf(S(tableId), block) || block.offset.back() != 0 ||
          block.global.back() != hidden)
        return fail("shard_axis and global_shape do not match the table "
                    "(only its rows may be split)");
      if (block.split) {
        // A vocabulary-parallel table: this rank's rows are
        // [first, first + vocab) of the vocabulary; other tokens read zeros
        // (the all-reduce after adds the owner's row).
        int64_t first = block.offset[0], total = block.global[0];
        body = [=](StepState &) {
          if (!forward && !accumulate)
            std::fill(table, table + vocab * hidden, 0.0f);
          for (int64_t i = 0; i < count; ++i) {
            int64_t t = wide ? static_cast<int64_t *>(ids)[i]
                             : static_cast<int32_t *>(ids)[i];
            if (t < 0 || t >= total)
              return runError("a token id is outside the table's " +
                              std::to_string(total) + " rows");
            int64_t r = t - first;
            bool mine = r >= 0 && r < vocab;
            float *row = rows + i * hidden;
            if (forward) {
              if (mine)
                std::copy_n(table + r * hidden, hidden, row);
              else
                std::fill(row, row + hidden, 0.0f);
            } else if (mine) {
              float *dst = table + r * hidden;
              for (int64_t h = 0; h < hidden; ++h)
                dst[h] += row[h];
            }
          }
          return Status::success();
        };
      } else body = [=](StepState &) {
        bool ok;
        if (forward)
          ok = wide ? embedding<float, int64_t>(table, vocab, hidden,
                                                static_cast<int64_t *>(ids),
                                                count, rows)
                    : embedding<float, int32_t>(table, vocab, hidden,
                                                static_cast<int32_t *>(ids),
                                                count, rows);
        else {
          if (!accumulate)
            std::fill(table, table + vocab * hidden, 0.0f);
          ok = wide ? embeddingBackward<float, int64_t>(
                          static_cast<int64_t *>(ids), count, vocab, hidden,
                          rows, table)
                    : embeddingBackward<float, int32_t>(
                          static_cast<int32_t *>(ids), count, vocab, hidden,
                          rows, table);
        }
        return ok ? Status::success()
                  : runError("a token id is outside the table's " +
                             std::to_string(vocab) + " rows");
      };
    } else if ((op == "cross_entropy" && arity(2, 1)) ||
               (op == "cross_entropy_grad" && arity(3, 1))) {
      bool forward = op == "cross_entropy";
      if (S(in[0]).empty() || S(in[0]).back() <= 0)
        return fail("logits must be [..., classes]");
      int64_t vocab = S(in[0]).back(), tokens = N(in[0]) / vocab;
      std::string reduction = attrs.text("reduction");
      int64_t ignore = attrs.integer("ignore_index");
      if (reduction != "none" && reduction != "sum" && reduction != "mean")
        return fail("unknown reduction '" + reduction + "'");
      if (dtype(in[1]) != plan::DType::I32)
        return fail("labels must be i32");
      int64_t perToken = reduction == "none" ? tokens : 1;
      if (N(in[1]) != tokens || N(out[0]) != (forward ? perToken : N(in[0])) ||
          (!forward && N(in[2]) != perToken))
        return fail("operand shapes do not agree");
      const int32_t *labels = as<int32_t>(in[1]);
      float *logits = F(in[0]), *result = F(out[0]);
      float *dl = forward ? nullptr : F(in[2]);
      auto scratch = std::make_shared<std::vector<float>>(size_t(tokens));
      body = [=](StepState &) {
        float *perToken = scratch->data();
        auto badLabel = [&] {
          return runError("a label is outside [0, " + std::to_string(vocab) +
                          ") and is not ignore_index " +
                          std::to_string(ignore));
        };
        if (forward) {
          int64_t counted = crossEntropy<float, int32_t>(
              logits, labels, tokens, vocab, ignore, perToken);
          if (counted < 0)
            return badLabel();
          if (reduction == "none") {
            std::copy(perToken, perToken + tokens, result);
          } else {
            double sum = 0;
            for (int64_t t = 0; t < tokens; ++t)
              sum += perToken[t];
            result[0] = float(reduction == "sum" ? sum
                              : counted          ? sum / double(counted)
                                                 : 0.0);
          }
          return Status::success();
        }
        int64_t counted = std::count_if(labels, labels + tokens,
                                        [&](int32_t l) { return l != ignore; });
        for (int64_t t = 0; t < tokens; ++t)
          perToken[t] = reduction == "none" ? dl[t]
                        : reduction == "sum"
                            ? dl[0]
                            : (counted ? float(dl[0] / double(counted)) : 0.f);
        if (!crossEntropyBackward<float, int32_t>(logits, labels, perToken,
                                                  tokens, vocab, ignore,
                                                  result))
          return badLabel();
        return Status::success();
      };
    } else if ((op == "cross_entropy_partials" && arity(3, 2)) ||
               (op == "cross_entropy_partials_grad" && arity(5, 1))) {
      // The vocabulary-parallel cross-entropy's per-token partials over this
      // rank's block of the classes.
      bool forward = op == "cross_entropy_partials";
      const Shape &ls = S(in[0]);
      if (ls.empty() || ls.back() == 0)
        return fail("logits must be [..., classes]");
      int64_t classes = ls.back(), tokens = N(in[0]) / classes;
      int64_t ignore = attrs.integer("ignore_index");
      Block block;
      if (!blockOf(ls, block))
        return fail("shard_axis and global_shape do not match the logits");
      int64_t first = block.offset.back(), total = block.global.back();
      if (dtype(in[2]) != plan::DType::I32 || N(in[1]) != tokens ||
          N(in[2]) != tokens ||
          (forward ? (N(out[0]) != tokens || N(out[1]) != tokens)
                   : (N(in[3]) != tokens || N(in[4]) != tokens ||
                      N(out[0]) != N(in[0]))))
        return fail("operand shapes do not agree");
      const float *z = F(in[0]), *mx = F(in[1]);
      const int32_t *labels = as<int32_t>(in[2]);
      float *a = forward ? F(out[0]) : F(in[3]);
      float *b = forward ? F(out[1]) : F(in[4]);
      float *dz = forward ? nullptr : F(out[0]);
      body = [=](StepState &) {
        for (int64_t t = 0; t < tokens; ++t) {
          int64_t l = labels[t];
          if (l != ignore && (l < 0 || l >= total))
            return runError("a label is outside [0, " + std::to_string(total) +
                            ") and is not ignore_index " +
                            std::to_string(ignore));
        }
#pragma omp parallel for schedule(static) if (tokens * classes > 65536)
        for (int64_t t = 0; t < tokens; ++t) {
          const float *row = z + t * classes;
          int64_t l = labels[t], mine = l != ignore ? l - first : -1;
          bool in = mine >= 0 && mine < classes;
          float m = mx[t];
          if (forward) {
            double sum = 0;
            for (int64_t c = 0; c < classes; ++c)
              sum += std::exp(double(row[c]) - double(m));
            a[t] = float(sum);
            b[t] = in ? row[mine] - m : 0.0f;
          } else {
            float *drow = dz + t * classes;
            for (int64_t c = 0; c < classes; ++c)
              drow[c] = float(double(a[t]) * std::exp(double(row[c]) - double(m)));
            if (in)
              drow[mine] += b[t];
          }
        }
        return Status::success();
      };
    } else if ((op == "cross_entropy_combine" && arity(3, 1)) ||
               (op == "cross_entropy_combine_grad" && arity(3, 2))) {
      bool forward = op == "cross_entropy_combine";
      int64_t tokens = N(in[0]), ignore = attrs.integer("ignore_index");
      int32_t labelsId = forward ? in[2] : in[1];
      if (dtype(labelsId) != plan::DType::I32 || N(labelsId) != tokens ||
          N(in[forward ? 1 : 2]) != tokens || N(out[0]) != tokens ||
          (!forward && N(out[1]) != tokens))
        return fail("operand shapes do not agree");
      const float *sumexp = F(in[0]);
      const int32_t *labels = as<int32_t>(labelsId);
      const float *other = F(forward ? in[1] : in[2]); // target, or dloss
      float *y = F(out[0]), *y2 = forward ? nullptr : F(out[1]);
      body = [=](StepState &) {
        for (int64_t t = 0; t < tokens; ++t) {
          bool counted = labels[t] != ignore;
          if (forward) {
            y[t] = counted ? float(std::log(double(sumexp[t])) - other[t]) : 0.0f;
          } else {
            y[t] = counted ? float(double(other[t]) / double(sumexp[t])) : 0.0f;
            y2[t] = counted ? -other[t] : 0.0f;
          }
        }
        return Status::success();
      };
    } else if (op == "all_reduce" && !in.empty() && in.size() == out.size()) {
      int64_t axis;
      if (!collectiveAxis(axis))
        return fail("the collective's axis is not one of the mesh's, or the "
                    "executor has no communicator");
      std::string kind = attrs.text("kind");
      if (kind != "sum" && kind != "max")
        return fail("unknown all_reduce kind '" + kind + "'");
      ReduceKind reduce = kind == "sum" ? ReduceKind::Sum : ReduceKind::Max;
      float *x, *y;
      size_t count;
      if (in.size() == 1 && in[0] != out[0]) {
        if (!sameSize({in[0], out[0]}))
          return fail("input and output sizes differ");
        x = F(in[0]);
        y = F(out[0]);
        count = size_t(N(in[0]));
      } else {
        // A bucket: f32 buffers reduced in place, adjacent in one arena
        // (up to their alignment), reduced as one span.
        std::vector<int32_t> ids(in.begin(), in.end());
        if (ids != out)
          return fail("a bucket reduces its buffers in place");
        std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
          return plan.buffers[a]->offset < plan.buffers[b]->offset;
        });
        for (size_t i = 0; i < ids.size(); ++i) {
          const plan::BufferT &b = *plan.buffers[ids[i]];
          if (b.dtype != plan::DType::F32 || b.bytes % 4 ||
              b.arena != plan.buffers[ids[0]]->arena)
            return fail("a bucket holds f32 buffers of one arena");
          if (i > 0) {
            const plan::BufferT &p = *plan.buffers[ids[i - 1]];
            int64_t gap = b.offset - (p.offset + p.bytes);
            if (gap < 0 || gap >= 64 || gap % 4)
              return fail("a bucket's buffers are not adjacent");
          }
        }
        const plan::BufferT &back = *plan.buffers[ids.back()];
        x = y = as<float>(ids.front());
        count = size_t(back.offset + back.bytes -
                       plan.buffers[ids.front()]->offset) / 4;
      }
      Communicator *comm = rank.comm;
      body = [=](StepState &) -> Status {
        if (!comm) {
          if (x != y)
            std::copy_n(x, count, y);
          return Status::success();
        }
        Status s = comm->allReduce(int(axis), x, y, count, CommDType::F32,
                                   reduce, label);
        return s.ok() ? s : runError(s.message());
      };
    } else if ((op == "all_gather" || op == "reduce_scatter" ||
                op == "all_slice") && arity(1, 1)) {
      int64_t axis, dim = attrs.integer("dim");
      if (!collectiveAxis(axis))
        return fail("the collective's axis is not one of the mesh's, or the "
                    "executor has no communicator");
      bool gather = op == "all_gather";
      const Shape &small = S(gather ? in[0] : out[0]), &big = S(gather ? out[0] : in[0]);
      int64_t n = axisSize(axis);
      if (dim < 0 || dim >= int64_t(small.size()) || small.size() != big.size())
        return fail("dim is out of range");
      for (size_t d = 0; d < small.size(); ++d)
        if (big[d] != small[d] * (int64_t(d) == dim ? n : 1))
          return fail("the shapes do not differ by the axis size along dim");
      size_t outer = size_t(product(small, 0, size_t(dim))),
             inner = size_t(product(small, size_t(dim), small.size()));
      int64_t g = coord(axis);
      if (op == "all_slice") {
        // No communication: keep this rank's block, of any element type (a
        // split activation's labels or mask come with it).
        if (dtype(in[0]) != dtype(out[0]))
          return fail("input and output types differ");
        size_t bytes = inner * size_t(dtypeBytes(dtype(in[0])));
        const uint8_t *x = as<uint8_t>(in[0]);
        uint8_t *y = as<uint8_t>(out[0]);
        body = [=](StepState &) {
          for (size_t o = 0; o < outer; ++o)
            std::memcpy(y + o * bytes, x + (o * size_t(n) + size_t(g)) * bytes,
                        bytes);
          return Status::success();
        };
        // Raw storage, so no 16-bit shadows around it (below).
        if (!attrs.missing.empty())
          return fail("attribute '" + attrs.missing + "' is missing");
        steps.push_back(std::move(body));
        continue;
      }
      float *x = F(in[0]), *y = F(out[0]);
      Communicator *comm = rank.comm;
      body = [=](StepState &) -> Status {
        if (!comm) { // alone on the axis
          std::copy_n(x, outer * inner, y);
          return Status::success();
        }
        Status s = gather ? comm->allGather(int(axis), x, y, outer, inner,
                                            CommDType::F32, label)
                          : comm->reduceScatter(int(axis), x, y, outer, inner,
                                                CommDType::F32, label);
        return s.ok() ? s : runError(s.message());
      };
    } else if (op == "transpose" && arity(1, 1)) {
      std::vector<int64_t> perm = attrs.ints("permutation");
      std::vector<int64_t> sorted = perm;
      std::sort(sorted.begin(), sorted.end());
      for (size_t d = 0; d < sorted.size(); ++d)
        if (sorted[d] != int64_t(d))
          return fail("the permutation is not one");
      if (perm.size() != S(in[0]).size() || !sameSize({in[0], out[0]}))
        return fail("the permutation does not match the input's rank");
      float *x = F(in[0]), *y = F(out[0]);
      Shape xs = S(in[0]);
      body = [=](StepState &) {
        transpose<float>(x, xs, perm, y);
        return Status::success();
      };
    } else if ((op == "split" && in.size() == 1 && !out.empty()) ||
               (op == "concat" && out.size() == 1 && !in.empty())) {
      bool split = op == "split";
      int64_t axis = attrs.integer("axis");
      const Shape &whole = S(split ? in[0] : out[0]);
      if (axis < 0 || axis >= int64_t(whole.size()))
        return fail("axis out of range");
      int64_t outer = product(whole, 0, size_t(axis)),
              inner = product(whole, size_t(axis) + 1, whole.size()),
              wholeAxis = whole[size_t(axis)];
      std::vector<std::pair<float *, int64_t>> pieces; // data, axis size
      int64_t total = 0;
      for (int32_t id : split ? out : in) {
        Shape piece = S(id);
        if (piece.size() != whole.size())
          return fail("pieces and whole differ in rank");
        total += piece[size_t(axis)];
        piece[size_t(axis)] = wholeAxis;
        if (piece != whole)
          return fail("pieces and whole differ off the axis");
        pieces.push_back({F(id), S(id)[size_t(axis)]});
      }
      if (total != wholeAxis)
        return fail("the pieces do not add up to the whole");
      float *w = F(split ? in[0] : out[0]);
      body = [=](StepState &) {
        int64_t offset = 0;
        for (auto [piece, size] : pieces) {
          for (int64_t i = 0; i < outer; ++i) {
            float *whole = w + (i * wholeAxis + offset) * inner;
            float *part = piece + i * size * inner;
            if (split)
              std::copy_n(whole, size * inner, part);
            else
              std::copy_n(part, size * inner, whole);
          }
          offset += size;
        }
        return Status::success();
      };
    } else if (op == "reduce" && arity(1, 1)) {
      std::string kind = attrs.text("kind");
      if (kind != "sum" && kind != "mean" && kind != "max")
        return fail("unknown reduction '" + kind + "'");
      std::vector<bool> reduced(S(in[0]).size(), false);
      for (int64_t d : attrs.ints("dims")) {
        if (d < 0 || d >= int64_t(reduced.size()))
          return fail("a reduced dimension is out of range");
        reduced[size_t(d)] = true;
      }
      int64_t kept = 1;
      for (size_t d = 0; d < reduced.size(); ++d)
        if (!reduced[d])
          kept *= S(in[0])[d];
      if (N(out[0]) != kept)
        return fail("the result's size is not the kept dimensions'");
      float *x = F(in[0]), *y = F(out[0]);
      Shape xs = S(in[0]);
      int64_t n = N(out[0]);
      body = [=](StepState &) {
        cpu::reduce(x, xs, reduced, kind == "max", kind == "mean", y, n);
        return Status::success();
      };
    } else if (op == "broadcast" && arity(1, 1)) {
      if (!broadcastsTo(in[0], out[0]))
        return fail("the input does not broadcast to the result");
      float *x = F(in[0]), *y = F(out[0]);
      Shape xs = S(in[0]), ys = S(out[0]);
      body = [=](StepState &) {
        float zero = 0;
        broadcastBinary<float>(BinaryKind::Add, x, xs, &zero, Shape{}, y, ys);
        return Status::success();
      };
    } else if ((op == "fill" || op == "loss_grad_seed") && arity(0, 1)) {
      bool seed = op == "loss_grad_seed";
      float value = float(attrs.real("value"));
      float *y = F(out[0]);
      int64_t n = N(out[0]);
      body = [=](StepState &state) {
        std::fill(y, y + n, seed ? float(state.lossScale) : value);
        return Status::success();
      };
    } else if (op == "grad_norm" && out.empty()) {
      // Over a tensor-parallel axis: each rank adds its blocks of split
      // gradients, rank 0 of the axis the whole ones, and the sums of
      // squares are all-reduced.
      const plan::AttributeT *splitAttr = findAttr(inst, "split");
      int64_t axis = -1;
      if (splitAttr && (!collectiveAxis(axis) || splitAttr->ints.size() != in.size()))
        return fail("grad_norm's split and axis do not match the mesh");
      // In a pipeline chunk (`partial`), the squares are added to the
      // step's total, which the runtime sums over the chunks and stages;
      // `exclude` marks a tied parameter's second copy (counted once).
      const plan::AttributeT *excludeAttr = findAttr(inst, "exclude");
      bool partial = attrs.flag("partial");
      if (excludeAttr && excludeAttr->ints.size() != in.size())
        return fail("grad_norm's exclude does not match its inputs");
      std::vector<std::pair<const float *, int64_t>> grads;
      for (size_t i = 0; i < in.size(); ++i) {
        int32_t id = in[i];
        if (dtype(id) != plan::DType::F32)
          return fail("gradients must be f32");
        bool counted = (!splitAttr || splitAttr->ints[i] || coord(axis) == 0) &&
                       !(excludeAttr && excludeAttr->ints[i]);
        if (counted)
          grads.push_back({as<float>(id), N(id)});
      }
      Communicator *comm = splitAttr ? rank.comm : nullptr;
      body = [=](StepState &state) -> Status {
        double sum = 0;
        for (auto [g, n] : grads)
          sum += sumOfSquares(g, n);
        if (comm)
          if (Status s = comm->allReduce(int(axis), &sum, &sum, 1,
                                         CommDType::F64, ReduceKind::Sum,
                                         label);
              !s.ok())
            return runError(s.message());
        if (partial) {
          state.gradSquares += sum;
          return Status::success();
        }
        state.gradNorm = std::sqrt(sum) * state.gradScale;
        state.nonFinite = !std::isfinite(state.gradNorm);
        return Status::success();
      };
    } else if (op == "adamw" && arity(4, 3)) {
      bool decay = attrs.integer("weight_decay") != 0;
      for (int32_t id : {in[0], in[1], in[2], in[3], out[0], out[1], out[2]})
        if (dtype(id) != plan::DType::F32)
          return fail("adamw works on f32 buffers");
      if (!sameSize({in[0], in[1], in[2], in[3]}) || out[0] != in[0] ||
          out[1] != in[2] || out[2] != in[3])
        return fail("adamw's parameter, gradient and moments do not agree");
      float *p = as<float>(in[0]), *g = as<float>(in[1]),
            *m = as<float>(in[2]), *v = as<float>(in[3]);
      int64_t n = N(in[0]);
      body = [=](StepState &state) {
        if (state.nonFinite)
          return Status::success(); // a skipped step changes nothing
        double scale =
            state.gradScale * clipCoefficient(state.gradNorm, state.clipGrad);
        adamwStep(state.adam, state.lr, decay ? state.weightDecay : 0.0,
                  state.optimizerStep, p, g, m, v, n, scale);
        return Status::success();
      };
    } else if (op == "zero" && in.empty()) {
      std::vector<std::pair<uint8_t *, int64_t>> regions;
      for (int32_t id : out)
        regions.push_back(
            {as<uint8_t>(id), plan.buffers[id]->bytes});
      body = [=](StepState &) {
        for (auto [p, bytes] : regions)
          std::memset(p, 0, size_t(bytes));
        return Status::success();
      };
    } else {
      return fail("the CPU backend has no instruction '" + op + "' with " +
                  std::to_string(in.size()) + " inputs and " +
                  std::to_string(out.size()) + " outputs");
    }
    if (!attrs.missing.empty())
      return fail("attribute '" + attrs.missing +
                  "' is missing; was the plan written by another loomc?");
    if (notFloat >= 0)
      return fail("buffer '" + plan.buffers[notFloat]->name +
                  "' must be a float tensor");

    // 16-bit buffers: widen the inputs before, round the outputs after.
    std::vector<int32_t> widen, round;
    for (int32_t id : in)
      if (isFloat16(dtype(id)))
        widen.push_back(id);
    for (int32_t id : out)
      if (isFloat16(dtype(id)))
        round.push_back(id);
    if (!widen.empty() || !round.empty()) {
      auto convert = [this](int32_t id, bool toFloat) {
        const plan::BufferT &b = *plan.buffers[id];
        uint16_t *bits = as<uint16_t>(id);
        float *f = shadows[id].data();
        int64_t n = int64_t(shadows[id].size());
        bool bf16 = b.dtype == plan::DType::BF16;
        for (int64_t i = 0; i < n; ++i) {
          if (toFloat)
            f[i] = bf16 ? bf16ToFloat(bits[i]) : f16ToFloat(bits[i]);
          else
            bits[i] = bf16 ? floatToBf16(f[i]) : floatToF16(f[i]);
        }
      };
      body = [body, widen, round, convert](StepState &state) {
        for (int32_t id : widen)
          convert(id, true);
        Status s = body(state);
        for (int32_t id : round)
          convert(id, false);
        return s;
      };
    }
    steps.push_back(std::move(body));
  }
  prepared.push_back({&program, std::move(steps)});
  return Status::success();
}

} // namespace cpu
} // namespace runtime
} // namespace loom
