//===- Emit.cpp - print a kernel description as host C++ and CUDA C++ -----===//
//
// ScalarEmitter prints the scalar math of a stage, the same text for both
// targets. The host emitter maps the iteration space onto OpenMP threads
// (rows or chunks of elements) with `omp simd` inner loops the compiler
// vectorises; the CUDA emitter maps a row onto a block (block reductions
// through warp shuffles) or elements onto a grid-stride loop. Sums into
// outputs: the host keeps a partial per thread and adds the partials in
// thread order (the same result run after run); CUDA adds with atomics.
//
//===----------------------------------------------------------------------===//

#include "loom/Codegen/Emit.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace loom {
namespace codegen {

namespace {

const char *cType(ValueType t) {
  switch (t) {
  case ValueType::Float:
    return "float";
  case ValueType::Int:
    return "long long";
  case ValueType::Bool:
    return "bool";
  }
  return "float";
}

const char *elemType(ElemType t) {
  switch (t) {
  case ElemType::F32:
    return "float";
  case ElemType::I32:
    return "int";
  case ElemType::I64:
    return "long long";
  }
  return "float";
}

std::string floatLiteral(double v) {
  float f = float(v);
  if (std::isnan(f))
    return "loom_float(0x7FC00000u)";
  if (std::isinf(f))
    return f > 0 ? "loom_float(0x7F800000u)" : "loom_float(0xFF800000u)";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", double(f));
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s + "f";
}

/// The slot of each runtime scalar in the ints or reals array.
struct ParamSlots {
  std::vector<int> slot;
  std::vector<bool> isInt;
  explicit ParamSlots(const KernelDesc &k) {
    int ints = 0, reals = 0;
    for (const Param &p : k.params) {
      bool i = !isRealParam(p.kind);
      isInt.push_back(i);
      slot.push_back(i ? ints++ : reals++);
    }
  }
};

/// What differs between the targets in the scalar math. A runtime scalar
/// is read the same way on both: from the ints or reals array (on CUDA in
/// device memory, so that a captured graph replays with each step's
/// values: docs/codegen.md).
struct Target {
  bool cuda = false;
  std::string param(const ParamSlots &slots, int p) const {
    int s = slots.slot[p];
    return slots.isInt[p] ? "loom_ints[" + std::to_string(s) + "]"
                          : "(float)loom_reals[" + std::to_string(s) + "]";
  }
};

class ScalarEmitter {
public:
  ScalarEmitter(const KernelDesc &k, Target target)
      : k(k), target(target), slots(k) {}

  /// The index expression of element (div, mod) of the iteration space.
  std::string index(int64_t div, int64_t mod) const {
    if (mod == 1)
      return "0";
    if (k.space == Space::Rows) {
      if (div == 1 && mod == k.cols)
        return "j";
      if (div == k.cols && (mod == 0 || mod >= k.rows))
        return "row";
      // A block of whole rows repeated (a [T, C] position table over
      // [B, T, C]): the row's place in the block, then j, so the inner
      // loop stays contiguous.
      if (div == 1 && mod > 0 && mod % k.cols == 0)
        return "((row % " + std::to_string(mod / k.cols) + "LL) * " +
               std::to_string(k.cols) + "LL + j)";
    }
    std::string s = div == 1 ? "i" : "(i / " + std::to_string(div) + "LL)";
    if (mod > 0)
      s = "(" + s + " % " + std::to_string(mod) + "LL)";
    return s;
  }

  std::string ref(int id) const {
    const Node &n = k.nodes[id];
    return (n.op == NodeOp::RowValue ? "r" : "v") + std::to_string(id);
  }

  std::string expr(int id) const {
    const Node &n = k.nodes[id];
    auto a = [&](int i) { return ref(n.operands[i]); };
    auto bin = [&](const char *o) {
      return "(" + a(0) + " " + o + " " + a(1) + ")";
    };
    auto call = [&](const char *f) {
      return std::string(f) + "(" + a(0) + ")";
    };
    switch (n.op) {
    case NodeOp::Load:
      return "a" + std::to_string(n.arg) + "[" + index(n.div, n.mod) + "]";
    case NodeOp::LoadAt:
      return "a" + std::to_string(n.arg) + "[row * " + std::to_string(k.cols) +
             "LL + " + a(0) + "]";
    case NodeOp::LoadRow:
      return "a" + std::to_string(n.arg) + "[row]";
    case NodeOp::Const:
      if (n.type == ValueType::Bool)
        return n.value != 0 ? "true" : "false";
      if (n.type == ValueType::Int)
        return std::to_string(int64_t(n.value)) + "LL";
      return floatLiteral(n.value);
    case NodeOp::ParamInt:
    case NodeOp::ParamReal:
      return target.param(slots, n.param);
    case NodeOp::Index:
      return "i";
    case NodeOp::Col:
      return "j";
    case NodeOp::Row:
      return "row";
    case NodeOp::RowsCount:
      return std::to_string(k.rows) + "LL";
    case NodeOp::ColsCount:
      return std::to_string(k.cols) + "LL";
    case NodeOp::Add:
      return bin("+");
    case NodeOp::Sub:
      return bin("-");
    case NodeOp::Mul:
      return bin("*");
    case NodeOp::Div:
      return bin("/");
    case NodeOp::Rem:
      return n.type == ValueType::Int ? bin("%")
                                      : "fmodf(" + a(0) + ", " + a(1) + ")";
    case NodeOp::Neg:
      return "(-" + a(0) + ")";
    case NodeOp::Max:
      return "(" + a(0) + " > " + a(1) + " ? " + a(0) + " : " + a(1) + ")";
    case NodeOp::Min:
      return "(" + a(0) + " < " + a(1) + " ? " + a(0) + " : " + a(1) + ")";
    case NodeOp::Exp:
      return call("loom_exp");
    case NodeOp::Log:
      return call("loom_log");
    case NodeOp::Tanh:
      return call("loom_tanh");
    case NodeOp::Erf:
      return call("loom_erf");
    case NodeOp::Sqrt:
      return call("loom_sqrt");
    case NodeOp::Rsqrt:
      return call("loom_rsqrt");
    case NodeOp::Lt:
      return bin("<");
    case NodeOp::Le:
      return bin("<=");
    case NodeOp::Gt:
      return bin(">");
    case NodeOp::Ge:
      return bin(">=");
    case NodeOp::Eq:
      return bin("==");
    case NodeOp::Ne:
      return bin("!=");
    case NodeOp::And:
      return bin("&&");
    case NodeOp::Or:
      return bin("||");
    case NodeOp::Not:
      return "(!" + a(0) + ")";
    case NodeOp::Select:
      return "(" + a(0) + " ? " + a(1) + " : " + a(2) + ")";
    case NodeOp::ToFloat:
      return "(float)(" + a(0) + ")";
    case NodeOp::DropoutKeep:
      return "loom_dropout_keep((unsigned long long)" +
             target.param(slots, n.param2) + ", " +
             target.param(slots, n.param) + " + i, " + a(0) + ")";
    case NodeOp::RowValue:
      return ref(id);
    }
    return "0";
  }

  /// `const T vN = expr;` for each node of a stage (row values excepted).
  void nodes(std::ostream &os, const Stage &stage, const std::string &indent) {
    for (int id : stage.nodes) {
      const Node &n = k.nodes[id];
      if (n.op == NodeOp::RowValue)
        continue;
      os << indent << "const " << cType(n.type) << " " << ref(id) << " = "
         << expr(id) << ";\n";
    }
  }

  std::string storeTarget(const Store &s, bool loop) const {
    return "a" + std::to_string(s.arg) + "[" +
           (loop ? index(s.div, s.mod) : std::string("row")) + "]";
  }

  const KernelDesc &k;
  Target target;
  ParamSlots slots;
};

std::string reduceInit(ReduceKind kind) {
  return kind == ReduceKind::Sum ? "0.0f" : "loom_float(0xFF800000u)";
}

/// The name of stage `stage`'s accumulator `a`.
std::string accumName(size_t stage, size_t a) {
  return "loom_acc" + std::to_string(stage) + "_" + std::to_string(a);
}

/// The accumulators of a kernel: one per Accum, by (stage, index).
struct AccumRef {
  const Accum *accum;
  std::string name;
};

std::vector<AccumRef> accumsOf(const KernelDesc &k) {
  std::vector<AccumRef> out;
  for (size_t s = 0; s < k.stages.size(); ++s)
    for (size_t a = 0; a < k.stages[s].accums.size(); ++a)
      out.push_back({&k.stages[s].accums[a], accumName(s, a)});
  return out;
}



//===--- Host C++ ---------------------------------------------------------===//

std::string emitHost(const KernelDesc &k) {
  ScalarEmitter se(k, Target{false});
  std::ostringstream os;
  os << "// " << k.family << "\n";
  os << "extern \"C\" int " << k.name
     << "(void *const *loom_args, const long long *loom_ints, "
        "const double *loom_reals) {\n";
  os << "  (void)loom_ints;\n  (void)loom_reals;\n";
  // Each thread unpacks the arguments itself: pointers local to the
  // outlined parallel body are loop-invariant, which the vectoriser needs
  // (a shared pointer variable could be written by the stores).
  auto unpack = [&](const std::string &indent) {
    for (size_t a = 0; a < k.args.size(); ++a)
      os << indent << (k.args[a].output ? "" : "const ")
         << elemType(k.args[a].type) << " *a" << a << " = ("
         << (k.args[a].output ? "" : "const ") << elemType(k.args[a].type)
         << " *)loom_args[" << a << "];\n"
         << indent << "(void)a" << a << ";\n";
  };
  std::string n;
  if (k.space == Space::Elementwise) {
    n = std::to_string(k.extent) + "LL";
    if (k.runtimeExtent)
      for (size_t p = 0; p < k.params.size(); ++p)
        if (k.params[p].kind == ParamKind::Count)
          n = se.target.param(se.slots, int(p));
    os << "  const long long loom_n = " << n << ";\n";
  }
  std::vector<AccumRef> accums = accumsOf(k);
  // Overwritten sums start from zero.
  for (const AccumRef &a : accums)
    if (!a.accum->accumulate) {
      if (a.accum->perCol)
        os << "  std::memset(loom_args[" << a.accum->arg << "], 0, " << k.cols
           << " * sizeof(float));\n";
      else
        os << "  ((float *)loom_args[" << a.accum->arg << "])[0] = 0.0f;\n";
    }
  os << "  int loom_status = 0;\n";
  std::string work = k.space == Space::Elementwise
                         ? std::string("loom_n")
                         : std::to_string(k.rows * k.cols) + "LL";
  os << "#pragma omp parallel if (" << work << " > 32768)\n  {\n";
  unpack("    ");
  os << "    int loom_st = 0;\n";
  for (const AccumRef &a : accums) {
    if (a.accum->perCol)
      os << "    float *" << a.name << " = (float *)std::calloc(" << k.cols
         << ", sizeof(float));\n";
    else
      os << "    float " << a.name << " = 0.0f;\n";
  }
  std::string scalarAccums;
  for (const AccumRef &a : accums)
    if (!a.accum->perCol)
      scalarAccums += " reduction(+:" + a.name + ")";

  if (k.space == Space::Elementwise) {
    os << "#pragma omp for schedule(static)\n";
    os << "    for (long long loom_c = 0; loom_c < loom_n; loom_c += 4096) {\n";
    os << "      const long long loom_e = loom_c + 4096 < loom_n ? loom_c + "
          "4096 : loom_n;\n";
    const Stage &stage = k.stages[0];
    bool hasChecks = !stage.checks.empty();
    if (!hasChecks)
      os << "#pragma omp simd" << scalarAccums << "\n";
    os << "      for (long long i = loom_c; i < loom_e; ++i) {\n";
    se.nodes(os, stage, "        ");
    for (const Store &s : stage.stores)
      os << "        " << se.storeTarget(s, true)
         << (s.accumulate ? " += " : " = ") << se.ref(s.node) << ";\n";
    for (size_t a = 0; a < stage.accums.size(); ++a)
      os << "        " << accumName(0, a)
         << " += " << se.ref(stage.accums[a].node) << ";\n";
    for (size_t c = 0; c < stage.checks.size(); ++c)
      os << "        if (!" << se.ref(stage.checks[c].node)
         << " && !loom_st) loom_st = " << c + 1 << ";\n";
    os << "      }\n    }\n";
  } else {
    os << "#pragma omp for schedule(static)\n";
    os << "    for (long long row = 0; row < " << k.rows << "LL; ++row) {\n";
    int checkBase = 0;
    for (size_t s = 0; s < k.stages.size(); ++s) {
      const Stage &stage = k.stages[s];
      if (stage.loop) {
        std::string clauses;
        for (const Reduce &r : stage.reduces) {
          os << "      float " << se.ref(r.result) << " = "
             << reduceInit(r.kind) << ";\n";
          clauses += std::string(" reduction(") +
                     (r.kind == ReduceKind::Sum ? "+" : "max") + ":" +
                     se.ref(r.result) + ")";
        }
        for (size_t a = 0; a < stage.accums.size(); ++a)
          if (!stage.accums[a].perCol)
            clauses += " reduction(+:" + accumName(s, a) + ")";
        os << "#pragma omp simd" << clauses << "\n";
        os << "      for (long long j = 0; j < " << k.cols << "LL; ++j) {\n";
        os << "        const long long i = row * " << k.cols << "LL + j;\n";
        os << "        (void)i;\n";
        se.nodes(os, stage, "        ");
        for (const Reduce &r : stage.reduces) {
          if (r.kind == ReduceKind::Sum)
            os << "        " << se.ref(r.result) << " += " << se.ref(r.node)
               << ";\n";
          else
            os << "        " << se.ref(r.result) << " = " << se.ref(r.result)
               << " > " << se.ref(r.node) << " ? " << se.ref(r.result) << " : "
               << se.ref(r.node) << ";\n";
        }
        for (const Store &st : stage.stores)
          os << "        " << se.storeTarget(st, true)
             << (st.accumulate ? " += " : " = ") << se.ref(st.node) << ";\n";
        for (size_t a = 0; a < stage.accums.size(); ++a)
          os << "        " << accumName(s, a)
             << (stage.accums[a].perCol ? "[j]" : "")
             << " += " << se.ref(stage.accums[a].node) << ";\n";
        os << "      }\n";
      } else {
        se.nodes(os, stage, "      ");
        for (const Store &st : stage.stores)
          os << "      " << se.storeTarget(st, false)
             << (st.accumulate ? " += " : " = ") << se.ref(st.node) << ";\n";
        for (size_t a = 0; a < stage.accums.size(); ++a)
          os << "      " << accumName(s, a)
             << " += " << se.ref(stage.accums[a].node) << ";\n";
        for (size_t c = 0; c < stage.checks.size(); ++c)
          os << "      if (!" << se.ref(stage.checks[c].node)
             << " && !loom_st) loom_st = " << checkBase + int(c) + 1 << ";\n";
      }
      checkBase += int(stage.checks.size());
    }
    os << "    }\n";
  }
  // The partials, added in thread order.
  os << "#pragma omp for ordered schedule(static, 1)\n";
  os << "    for (int loom_t = 0; loom_t < omp_get_num_threads(); ++loom_t) "
        "{\n";
  os << "#pragma omp ordered\n      {\n";
  os << "        if (loom_st && !loom_status) loom_status = loom_st;\n";
  for (const AccumRef &a : accums) {
    if (a.accum->perCol)
      os << "        for (long long j = 0; j < " << k.cols << "LL; ++j) a"
         << a.accum->arg << "[j] += " << a.name << "[j];\n";
    else
      os << "        a" << a.accum->arg << "[0] += " << a.name << ";\n";
  }
  os << "      }\n    }\n";
  for (const AccumRef &a : accums)
    if (a.accum->perCol)
      os << "    std::free(" << a.name << ");\n";
  os << "  }\n  return loom_status;\n}\n";
  return os.str();
}

//===--- CUDA C++ ---------------------------------------------------------===//

LaunchRule launchOf(const KernelDesc &k) {
  LaunchRule l;
  if (k.space == Space::Elementwise) {
    l.rule = "elementwise";
    l.block = 256;
    int64_t blocks = (k.extent + 255) / 256;
    l.grid = k.runtimeExtent
                 ? 4096
                 : std::min<int64_t>(std::max<int64_t>(blocks, 1), 1 << 20);
  } else {
    l.rule = "rows";
    int64_t t = ((k.cols + 31) / 32) * 32;
    l.block = std::min<int64_t>(std::max<int64_t>(t, 32), 1024);
    l.grid = std::min<int64_t>(std::max<int64_t>(k.rows, 1), 1 << 20);
  }
  for (const Stage &s : k.stages)
    for (const Accum &a : s.accums)
      if (!a.accumulate)
        l.zeroArgs.push_back(a.arg);
  return l;
}

std::string emitCuda(const KernelDesc &k, const LaunchRule &launch) {
  ScalarEmitter se(k, Target{true});
  std::ostringstream os;
  os << "// " << k.family << "\n";
  os << "extern \"C\" __global__ void __launch_bounds__(" << launch.block
     << ") " << k.name << "(";
  bool first = true;
  auto comma = [&] {
    if (!first)
      os << ", ";
    first = false;
  };
  for (size_t a = 0; a < k.args.size(); ++a) {
    comma();
    os << (k.args[a].output ? "" : "const ") << elemType(k.args[a].type)
       << " *a" << a;
  }
  comma();
  os << "const long long *loom_ints, const double *loom_reals, "
        "int *loom_status) {\n";
  if (k.space == Space::Elementwise) {
    std::string n = std::to_string(k.extent) + "LL";
    if (k.runtimeExtent)
      for (size_t p = 0; p < k.params.size(); ++p)
        if (k.params[p].kind == ParamKind::Count)
          n = se.target.param(se.slots, int(p));
    os << "  const long long loom_n = " << n << ";\n";
    const Stage &stage = k.stages[0];
    for (size_t a = 0; a < stage.accums.size(); ++a)
      os << "  float " << accumName(0, a) << " = 0.0f;\n";
    os << "  for (long long i = blockIdx.x * (long long)blockDim.x + "
          "threadIdx.x; i < loom_n; i += (long long)gridDim.x * blockDim.x) "
          "{\n";
    se.nodes(os, stage, "    ");
    for (const Store &s : stage.stores)
      os << "    " << se.storeTarget(s, true) << (s.accumulate ? " += " : " = ")
         << se.ref(s.node) << ";\n";
    for (size_t a = 0; a < stage.accums.size(); ++a)
      os << "    " << accumName(0, a)
         << " += " << se.ref(stage.accums[a].node) << ";\n";
    for (size_t c = 0; c < stage.checks.size(); ++c)
      os << "    if (!" << se.ref(stage.checks[c].node)
         << ") atomicCAS(loom_status, 0, " << c + 1 << ");\n";
    os << "  }\n";
    for (size_t a = 0; a < stage.accums.size(); ++a)
      os << "  atomicAdd(&a" << stage.accums[a].arg << "[0], "
         << accumName(0, a) << ");\n";
    os << "}\n";
    return os.str();
  }
  bool reduces = false;
  for (const Stage &stage : k.stages)
    reduces |= !stage.reduces.empty();
  if (reduces)
    os << "  __shared__ float loom_shared[32];\n";
  os << "  for (long long row = blockIdx.x; row < " << k.rows
     << "LL; row += gridDim.x) {\n";
  int checkBase = 0;
  for (size_t s = 0; s < k.stages.size(); ++s) {
    const Stage &stage = k.stages[s];
    if (stage.loop) {
      for (const Reduce &r : stage.reduces)
        os << "    float " << se.ref(r.result) << " = " << reduceInit(r.kind)
           << ";\n";
      for (size_t a = 0; a < stage.accums.size(); ++a)
        if (!stage.accums[a].perCol)
          os << "    float " << accumName(s, a) << " = 0.0f;\n";
      os << "    for (long long j = threadIdx.x; j < " << k.cols
         << "LL; j += blockDim.x) {\n";
      os << "      const long long i = row * " << k.cols << "LL + j;\n";
      os << "      (void)i;\n";
      se.nodes(os, stage, "      ");
      for (const Reduce &r : stage.reduces) {
        if (r.kind == ReduceKind::Sum)
          os << "      " << se.ref(r.result) << " += " << se.ref(r.node)
             << ";\n";
        else
          os << "      " << se.ref(r.result) << " = fmaxf(" << se.ref(r.result)
             << ", " << se.ref(r.node) << ");\n";
      }
      for (const Store &st : stage.stores)
        os << "      " << se.storeTarget(st, true)
           << (st.accumulate ? " += " : " = ") << se.ref(st.node) << ";\n";
      for (size_t a = 0; a < stage.accums.size(); ++a) {
        if (stage.accums[a].perCol)
          os << "      atomicAdd(&a" << stage.accums[a].arg << "[j], "
             << se.ref(stage.accums[a].node) << ");\n";
        else
          os << "      " << accumName(s, a)
             << " += " << se.ref(stage.accums[a].node) << ";\n";
      }
      os << "    }\n";
      for (const Reduce &r : stage.reduces)
        os << "    " << se.ref(r.result) << " = loom_block_"
           << (r.kind == ReduceKind::Sum ? "sum" : "max") << "("
           << se.ref(r.result) << ", loom_shared);\n";
      for (size_t a = 0; a < stage.accums.size(); ++a)
        if (!stage.accums[a].perCol)
          os << "    atomicAdd(&a" << stage.accums[a].arg << "[0], "
             << accumName(s, a) << ");\n";
    } else {
      se.nodes(os, stage, "    ");
      os << "    if (threadIdx.x == 0) {\n";
      for (const Store &st : stage.stores)
        os << "      " << se.storeTarget(st, false)
           << (st.accumulate ? " += " : " = ") << se.ref(st.node) << ";\n";
      for (size_t a = 0; a < stage.accums.size(); ++a)
        os << "      atomicAdd(&a" << stage.accums[a].arg << "[0], "
           << se.ref(stage.accums[a].node) << ");\n";
      for (size_t c = 0; c < stage.checks.size(); ++c)
        os << "      if (!" << se.ref(stage.checks[c].node)
           << ") atomicCAS(loom_status, 0, " << checkBase + int(c) + 1
           << ");\n";
      os << "    }\n";
    }
    checkBase += int(stage.checks.size());
    os << "    __syncthreads();\n";
  }
  os << "  }\n}\n";
  return os.str();
}

} // namespace

EmittedKernel emitKernel(const KernelDesc &kernel) {
  EmittedKernel out;
  out.entry = kernel.name;
  out.launch = launchOf(kernel);
  out.hostSource = emitHost(kernel);
  out.cudaSource = emitCuda(kernel, out.launch);
  return out;
}

} // namespace codegen
} // namespace loom
