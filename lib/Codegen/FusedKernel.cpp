//===- FusedKernel.cpp - a loom.fused region to one kernel description ----===//
//
// Elementwise values are built on demand: asking for a value in a loop
// stage emits the nodes of its producers (their scalar math below) down to
// loads of the region's inputs. A row op (the region's anchor) expands into
// stages: loops that reduce over the row, once-per-row stages that finish
// the statistics, and a last loop that computes its result, which the
// elementwise ops after it read. A value the rest of the program reads is
// stored in the first loop that computes it.
//
//===----------------------------------------------------------------------===//

#include "loom/Codegen/FusedKernel.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <cmath>

using namespace mlir;

namespace loom {
namespace codegen {

namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654; // as Kernels.cpp
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;
constexpr double kGeluCubic = 0.044715;

std::vector<int64_t> shapeOf(Value v) {
  auto s = cast<RankedTensorType>(v.getType()).getShape();
  return std::vector<int64_t>(s.begin(), s.end());
}

int64_t elements(const std::vector<int64_t> &s) {
  int64_t n = 1;
  for (int64_t d : s)
    n *= d;
  return n;
}

class Builder {
public:
  Builder(FusedOp op, StringRef name, const std::vector<bool> &accumulate)
      : op(op), accumulate(accumulate.begin(), accumulate.end()) {
    k.name = name.str();
    k.family = op.getKind().str();
    Block &body = op.getBody().front();
    for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
      argOf[arg] = int(i);
      k.args.push_back(argFor(arg, false, "in" + std::to_string(i)));
    }
    auto yield = cast<YieldOp>(body.getTerminator());
    for (auto [i, v] : llvm::enumerate(yield.getValues())) {
      outputArg[v] = int(body.getNumArguments() + i);
      k.args.push_back(argFor(v, true, "out" + std::to_string(i)));
    }
    this->accumulate.resize(yield.getValues().size(), false);
  }

  FailureOr<KernelDesc> build() {
    Block &body = op.getBody().front();
    Operation *anchor = nullptr;
    for (Operation &o : body.without_terminator())
      if (!hasScalarMath(&o)) {
        if (anchor &&
            !(isa<CrossEntropyOp>(anchor) && isa<CrossEntropyGradOp>(o)))
          return op.emitError()
                 << "the code generator makes one kernel of at most one row "
                    "op, this region has '"
                 << anchor->getName() << "' and '" << o.getName() << "'";
        anchor = &o;
      }
    LogicalResult ok = success();
    if (!anchor)
      ok = elementwise();
    else if (auto ln = dyn_cast<LayerNormOp>(anchor))
      ok = layerNorm(ln.getInput(), ln.getWeight(), ln.getBias(),
                     ln.getEpsilon().convertToDouble(), ln.getResult());
    else if (auto rn = dyn_cast<RmsNormOp>(anchor))
      ok = layerNorm(rn.getInput(), rn.getWeight(), Value(),
                     rn.getEpsilon().convertToDouble(), rn.getResult());
    else if (auto sm = dyn_cast<SoftmaxOp>(anchor))
      ok = softmax(sm);
    else if (auto sg = dyn_cast<SoftmaxGradOp>(anchor))
      ok = softmaxGrad(sg);
    else if (auto lg = dyn_cast<LayerNormGradOp>(anchor))
      ok = layerNormGrad(lg.getInput(), lg.getWeight(), lg.getGrad(),
                         lg.getEpsilon().convertToDouble(), lg.getInputGrad(),
                         lg.getWeightGrad(), lg.getBiasGrad());
    else if (auto rg = dyn_cast<RmsNormGradOp>(anchor))
      ok = layerNormGrad(rg.getInput(), rg.getWeight(), rg.getGrad(),
                         rg.getEpsilon().convertToDouble(), rg.getInputGrad(),
                         rg.getWeightGrad(), Value());
    else if (auto r = dyn_cast<ReduceOp>(anchor))
      ok = columnSum(r);
    else if (auto ce = dyn_cast<CrossEntropyGradOp>(anchor))
      ok = crossEntropy(ce);
    else
      return op.emitError() << "the code generator has no kernel for '"
                            << anchor->getName() << "' in a fused region";
    if (failed(ok))
      return failure();
    for (auto [v, arg] : outputArg)
      if (!stored.count(v))
        return op.emitError()
               << "the code generator did not write result "
               << arg - int(op.getInputs().size()) << " of this region";
    if (std::string e = verifyKernel(k); !e.empty())
      return op.emitError() << "generated a malformed kernel: " << e;
    return k;
  }

private:
  Arg argFor(Value v, bool output, std::string name) {
    Arg a;
    a.name = std::move(name);
    Type e = cast<RankedTensorType>(v.getType()).getElementType();
    a.type = e.isInteger(64)   ? ElemType::I64
             : e.isInteger(32) ? ElemType::I32
                               : ElemType::F32;
    a.output = output;
    a.elements = elements(shapeOf(v));
    return a;
  }

  //===--- Nodes ----------------------------------------------------------===//

  int node(NodeOp o, std::vector<int> operands,
           ValueType type = ValueType::Float) {
    return k.append(o, std::move(operands), type);
  }
  int constant(double v, ValueType type = ValueType::Float) {
    Node n;
    n.op = NodeOp::Const;
    n.type = type;
    n.value = v;
    return k.append(n);
  }
  int paramReal(int p) {
    Node n;
    n.op = NodeOp::ParamReal;
    n.param = p;
    return k.append(n);
  }
  int bin(NodeOp o, int a, int b) { return node(o, {a, b}); }
  int add(int a, int b) { return bin(NodeOp::Add, a, b); }
  int sub(int a, int b) { return bin(NodeOp::Sub, a, b); }
  int mul(int a, int b) { return bin(NodeOp::Mul, a, b); }
  int div(int a, int b) { return bin(NodeOp::Div, a, b); }
  int call(NodeOp o, int a) { return node(o, {a}); }
  int select(int c, int a, int b, ValueType t = ValueType::Float) {
    return node(NodeOp::Select, {c, a, b}, t);
  }
  int cmp(NodeOp o, int a, int b) { return node(o, {a, b}, ValueType::Bool); }
  int rowValue() {
    Node n;
    n.op = NodeOp::RowValue;
    return k.add(n);
  }
  int loadRow(int arg, ValueType t) {
    Node n;
    n.op = NodeOp::LoadRow;
    n.arg = arg;
    n.type = t;
    return k.append(n);
  }

  Stage &stage() { return k.stages.back(); }
  void loopStage() {
    k.stages.emplace_back();
    stage().loop = true;
    current.clear();
  }
  void rowStage() {
    k.stages.emplace_back();
    stage().loop = false;
  }
  int reduce(ReduceKind kind, int n) {
    int r = rowValue();
    stage().reduces.push_back({kind, n, r});
    return r;
  }

  int param(ParamKind kind, std::string site, int64_t elements) {
    for (size_t p = 0; p < k.params.size(); ++p)
      if (k.params[p].kind == kind && k.params[p].site == site &&
          k.params[p].elements == elements)
        return int(p);
    k.params.push_back({kind, std::move(site), elements});
    return int(k.params.size()) - 1;
  }

  //===--- Elementwise values ---------------------------------------------===//

  /// The value at the current element of a loop stage.
  int value(Value v) {
    if (auto it = current.find(v); it != current.end())
      return it->second;
    int id;
    if (auto it = argOf.find(v); it != argOf.end()) {
      std::optional<BroadcastIndex> b = broadcastIndex(shapeOf(v), space);
      Node n;
      n.op = NodeOp::Load;
      n.arg = it->second;
      n.type = k.args[it->second].type == ElemType::F32 ? ValueType::Float
                                                        : ValueType::Int;
      n.div = b ? b->div : 1;
      n.mod = b ? b->mod : 0;
      id = k.append(n);
    } else {
      id = compute(v.getDefiningOp());
    }
    current[v] = id;
    storeIfOutput(v, id);
    return id;
  }

  void storeIfOutput(Value v, int id) {
    auto it = outputArg.find(v);
    if (it == outputArg.end() || stored.count(v) || shapeOf(v) != space)
      return;
    stage().stores.push_back(
        {it->second, id, 1, 0, accumulate[it->second - int(argOf.size())]});
    stored.insert(v);
  }

  int compute(Operation *o) {
    auto x = [&](int i) { return value(o->getOperand(i)); };
    if (isa<AddOp>(o))
      return add(x(0), x(1));
    if (isa<SubOp>(o))
      return sub(x(0), x(1));
    if (isa<MulOp>(o))
      return mul(x(0), x(1));
    if (isa<DivOp>(o))
      return div(x(0), x(1));
    if (isa<NegOp>(o))
      return call(NodeOp::Neg, x(0));
    if (auto s = dyn_cast<ScaleOp>(o)) {
      int v = x(0);
      return mul(v, constant(s.getFactor().convertToDouble()));
    }
    if (isa<ReluOp>(o)) {
      int v = x(0);
      return select(cmp(NodeOp::Gt, v, constant(0)), v, constant(0));
    }
    if (isa<SiluOp>(o)) {
      int v = x(0);
      return div(v, add(constant(1), call(NodeOp::Exp, call(NodeOp::Neg, v))));
    }
    if (auto g = dyn_cast<GeluOp>(o)) {
      int v = x(0);
      int inner;
      if (g.getApproximate() == GeluApproximation::Tanh) {
        int cube = mul(mul(mul(constant(kGeluCubic), v), v), v);
        inner = call(NodeOp::Tanh, mul(constant(kSqrt2OverPi), add(v, cube)));
      } else {
        inner = call(NodeOp::Erf, mul(v, constant(kInvSqrt2)));
      }
      return mul(mul(constant(0.5), v), add(constant(1), inner));
    }
    if (isa<ReluGradOp>(o)) {
      int v = x(0), dy = x(1);
      return mul(dy, select(cmp(NodeOp::Gt, v, constant(0)), constant(1),
                            constant(0)));
    }
    if (isa<SiluGradOp>(o)) {
      int v = x(0), dy = x(1);
      int s = div(constant(1),
                  add(constant(1), call(NodeOp::Exp, call(NodeOp::Neg, v))));
      int d = mul(s, add(constant(1), mul(v, sub(constant(1), s))));
      return mul(dy, d);
    }
    if (auto g = dyn_cast<GeluGradOp>(o)) {
      int v = x(0), dy = x(1), d;
      if (g.getApproximate() == GeluApproximation::Tanh) {
        int cube = mul(mul(mul(constant(kGeluCubic), v), v), v);
        int t = call(NodeOp::Tanh, mul(constant(kSqrt2OverPi), add(v, cube)));
        int a = mul(constant(0.5), add(constant(1), t));
        int b = mul(mul(mul(mul(constant(0.5), v), sub(constant(1), mul(t, t))),
                        constant(kSqrt2OverPi)),
                    add(constant(1), mul(mul(constant(3 * kGeluCubic), v), v)));
        d = add(a, b);
      } else {
        int a = mul(
            constant(0.5),
            add(constant(1), call(NodeOp::Erf, mul(v, constant(kInvSqrt2)))));
        int b = mul(mul(v, constant(kInvSqrt2Pi)),
                    call(NodeOp::Exp, mul(mul(constant(-0.5), v), v)));
        d = add(a, b);
      }
      return mul(dy, d);
    }
    if (isa<DropoutOp, DropoutGradOp>(o)) {
      std::string site = isa<DropoutOp>(o)
                             ? cast<DropoutOp>(o).getSite().str()
                             : cast<DropoutGradOp>(o).getSite().str();
      // The rate and the scale are run-time scalars (the runtime gives
      // float(rate) and float(1 / (1 - rate)), the constants this used to
      // bake in, while training; 0 and 1 in evaluation), so the kernel
      // passes x through unchanged when not training.
      int v = x(0);
      int rateValue = paramReal(param(ParamKind::DropoutRate, site, 0));
      Node keep;
      keep.op = NodeOp::DropoutKeep;
      keep.type = ValueType::Bool;
      keep.operands = {rateValue};
      keep.param = param(ParamKind::DropoutOffset, site, elements(space));
      keep.param2 = param(ParamKind::DropoutKey, site, 0);
      int kept = k.append(keep);
      int scaled = mul(v, paramReal(param(ParamKind::DropoutScale, site, 0)));
      return select(kept, scaled, constant(0));
    }
    // The anchor's result is set by its expansion before it is read.
    o->emitError() << "the code generator cannot compute '" << o->getName()
                   << "' per element here";
    failedOp = true;
    return constant(0);
  }

  //===--- Kernels --------------------------------------------------------===//

  /// Every output of the region computed in one loop.
  LogicalResult finishLoop() {
    for (auto [v, arg] : outputArg)
      if (!stored.count(v) && shapeOf(v) == space)
        value(v);
    return failure(failedOp);
  }

  /// The iteration space of a region of `shape`: rows of its last
  /// dimension when an operand broadcasts along it, else flat elements.
  void rowsOf(const std::vector<int64_t> &shape) {
    space = shape;
    k.space = Space::Rows;
    k.cols = shape.empty() ? 1 : shape.back();
    k.rows = k.cols ? elements(shape) / k.cols : 0;
  }

  LogicalResult elementwise() {
    Block &body = op.getBody().front();
    Operation *last = body.getTerminator()->getPrevNode();
    std::vector<int64_t> shape = shapeOf(last->getResult(0));
    bool broadcasts = false;
    for (Value in : body.getArguments())
      broadcasts |= shapeOf(in) != shape;
    if (broadcasts && !shape.empty()) {
      rowsOf(shape);
    } else {
      space = shape;
      k.space = Space::Elementwise;
      k.extent = elements(shape);
    }
    loopStage();
    return finishLoop();
  }

  /// A norm's statistics over each row of x, as the reference computes
  /// them: the mean and 1 / sqrt(var + eps) (centred), or 1 / sqrt(mean of
  /// x² + eps) (rms; mean -1).
  struct RowStats {
    int mean = -1, rs = -1;
  };
  RowStats rowStats(Value x, double eps, bool centred) {
    auto colsF = [&] { return constant(double(k.cols)); };
    RowStats st;
    int square;
    if (centred) {
      loopStage();
      int sum = reduce(ReduceKind::Sum, value(x));
      rowStage();
      st.mean = div(sum, colsF());
      loopStage();
      int d = sub(value(x), st.mean);
      square = reduce(ReduceKind::Sum, mul(d, d));
    } else {
      loopStage();
      int xv = value(x);
      square = reduce(ReduceKind::Sum, mul(xv, xv));
    }
    rowStage();
    st.rs = call(NodeOp::Rsqrt, add(div(square, colsF()), constant(eps)));
    return st;
  }

  LogicalResult layerNorm(Value x, Value w, Value b, double eps, Value y) {
    rowsOf(shapeOf(x));
    RowStats st = rowStats(x, eps, bool(b));
    loopStage();
    int out = b ? add(mul(mul(sub(value(x), st.mean), st.rs), value(w)),
                      value(b))
                : mul(mul(value(x), st.rs), value(w));
    current[y] = out;
    storeIfOutput(y, out);
    return finishLoop();
  }

  LogicalResult softmax(SoftmaxOp sm) {
    Value x = sm.getInput();
    std::vector<int64_t> shape = shapeOf(x);
    rowsOf(shape);
    int64_t queries = shape.size() >= 2 ? shape[shape.size() - 2] : 1;
    bool causal = sm.getCausal();
    double scale = sm.getScale().convertToDouble();
    int visible = -1;
    if (causal) {
      rowStage();
      int q = constant(double(queries), ValueType::Int);
      int v = node(NodeOp::Rem, {node(NodeOp::Row, {}, ValueType::Int), q},
                   ValueType::Int);
      v = node(NodeOp::Add,
               {v, constant(double(k.cols - queries + 1), ValueType::Int)},
               ValueType::Int);
      v = node(NodeOp::Max, {v, constant(0, ValueType::Int)}, ValueType::Int);
      visible = node(NodeOp::Min, {v, constant(double(k.cols), ValueType::Int)},
                     ValueType::Int);
    }
    auto kept = [&]() {
      return causal ? cmp(NodeOp::Lt, node(NodeOp::Col, {}, ValueType::Int),
                          visible)
                    : constant(1, ValueType::Bool);
    };
    auto scaled = [&] { return mul(constant(scale), value(x)); };
    loopStage();
    int max =
        reduce(ReduceKind::Max, select(kept(), scaled(), constant(-INFINITY)));
    rowStage();
    int masked = cmp(NodeOp::Eq, max, constant(-INFINITY));
    loopStage();
    auto e = [&] {
      return select(kept(), call(NodeOp::Exp, sub(scaled(), max)), constant(0));
    };
    int sum = reduce(ReduceKind::Sum, e());
    loopStage();
    int out = select(masked, constant(0), div(e(), sum));
    current[sm.getResult()] = out;
    storeIfOutput(sm.getResult(), out);
    return finishLoop();
  }

  LogicalResult softmaxGrad(SoftmaxGradOp sg) {
    rowsOf(shapeOf(sg.getOutput()));
    loopStage();
    int dot = reduce(ReduceKind::Sum,
                     mul(value(sg.getGrad()), value(sg.getOutput())));
    loopStage();
    int out = mul(
        mul(constant(sg.getScale().convertToDouble()), value(sg.getOutput())),
        sub(value(sg.getGrad()), dot));
    current[sg.getResult()] = out;
    storeIfOutput(sg.getResult(), out);
    return finishLoop();
  }

  /// A column sum (perCol accumulation) of `v` into the output `result`.
  void columnSumOf(Value result, int v) {
    auto it = outputArg.find(result);
    if (it == outputArg.end())
      return;
    stage().accums.push_back(
        {it->second, v, true, accumulate[it->second - int(argOf.size())]});
    stored.insert(result);
  }

  LogicalResult layerNormGrad(Value x, Value w, Value dy, double eps,
                              Value dx, Value dw, Value db) {
    rowsOf(shapeOf(x));
    auto colsF = [&] { return constant(double(k.cols)); };
    RowStats st = rowStats(x, eps, bool(db));
    int out;
    loopStage();
    if (db) {
      // With xhat = (x - mean) · rstd and g = dy · weight:
      // dx = rstd · (g - mean(g) - xhat · mean(g · xhat)).
      auto xhat = [&] { return mul(sub(value(x), st.mean), st.rs); };
      int xh = xhat();
      int g = mul(value(dy), value(w));
      int sumG = reduce(ReduceKind::Sum, g);
      int sumGX = reduce(ReduceKind::Sum, mul(g, xh));
      columnSumOf(dw, mul(value(dy), xh));
      columnSumOf(db, value(dy));
      rowStage();
      int meanG = div(sumG, colsF());
      int meanGX = div(sumGX, colsF());
      loopStage();
      out = mul(st.rs, sub(sub(mul(value(dy), value(w)), meanG),
                           mul(xhat(), meanGX)));
    } else {
      // dx = rstd · (g - x · rstd² · mean(g · x)).
      int sumGX = reduce(ReduceKind::Sum,
                         mul(mul(value(dy), value(w)), value(x)));
      columnSumOf(dw, mul(mul(value(dy), value(x)), st.rs));
      rowStage();
      int meanGX = div(sumGX, colsF());
      loopStage();
      out = mul(st.rs, sub(mul(value(dy), value(w)),
                           mul(mul(mul(value(x), st.rs), st.rs), meanGX)));
    }
    current[dx] = out;
    storeIfOutput(dx, out);
    return finishLoop();
  }

  LogicalResult columnSum(ReduceOp r) {
    std::vector<int64_t> shape = shapeOf(r.getInput());
    space = shape;
    k.space = Space::Rows;
    int64_t leading = int64_t(r.getDims().size());
    k.rows = 1;
    for (int64_t d = 0; d < leading; ++d)
      k.rows *= shape[d];
    k.cols = k.rows ? elements(shape) / k.rows : 0;
    loopStage();
    columnSumOf(r.getResult(), value(r.getInput()));
    return finishLoop();
  }

  LogicalResult crossEntropy(CrossEntropyGradOp grad) {
    Value logits = grad.getLogits();
    CrossEntropyOp forward;
    for (Operation &o : op.getBody().front())
      if (auto ce = dyn_cast<CrossEntropyOp>(o))
        forward = ce;
    rowsOf(shapeOf(logits));
    int64_t ignore = grad.getIgnoreIndex();
    // Columns from `classes` on pad the vocabulary: out of the max, the sum
    // and the labels' range, with gradient 0. Without padding the kernel is
    // the one it always was.
    int64_t classes = grad.getClasses() ? int64_t(grad.getClasses()) : k.cols;
    bool padded = classes < k.cols;
    int labelsArg = argOf.lookup(grad.getLabels());
    int logitsArg = argOf.lookup(logits);
    rowStage();
    int label = loadRow(labelsArg, ValueType::Int);
    int valid =
        cmp(NodeOp::Ne, label, constant(double(ignore), ValueType::Int));
    int inRange = node(
        NodeOp::And,
        {cmp(NodeOp::Ge, label, constant(0, ValueType::Int)),
         cmp(NodeOp::Lt, label, constant(double(classes), ValueType::Int))},
        ValueType::Bool);
    int ok =
        node(NodeOp::Or, {node(NodeOp::Not, {valid}, ValueType::Bool), inRange},
             ValueType::Bool);
    stage().checks.push_back(
        {ok, "a label is outside [0, " + std::to_string(classes) +
                 ") and is not ignore_index " + std::to_string(ignore)});
    // Whether column j is a class (built per loop: nodes belong to a stage).
    auto isClass = [&] {
      return cmp(NodeOp::Lt, node(NodeOp::Col, {}, ValueType::Int),
                 constant(double(classes), ValueType::Int));
    };
    loopStage();
    int max = reduce(ReduceKind::Max, padded ? select(isClass(), value(logits),
                                                      constant(-INFINITY))
                                             : value(logits));
    loopStage();
    int e = call(NodeOp::Exp, sub(value(logits), max));
    int sum =
        reduce(ReduceKind::Sum, padded ? select(isClass(), e, constant(0)) : e);
    rowStage();
    int safe = select(node(NodeOp::And, {valid, inRange}, ValueType::Bool),
                      label, constant(0, ValueType::Int), ValueType::Int);
    Node at;
    at.op = NodeOp::LoadAt;
    at.arg = logitsArg;
    at.operands = {safe};
    int target = k.append(at);
    int loss = select(valid, sub(add(max, call(NodeOp::Log, sum)), target),
                      constant(0));
    if (forward) {
      auto it = outputArg.find(forward.getResult());
      if (it != outputArg.end()) {
        stage().accums.push_back({it->second, loss, false,
                                  accumulate[it->second - int(argOf.size())]});
        stored.insert(forward.getResult());
      }
    }
    Value seedValue = grad.getGrad();
    Node seed;
    seed.op = NodeOp::Load;
    seed.arg = argOf.lookup(seedValue);
    seed.mod = 1;
    int seedNode = k.append(seed);
    loopStage();
    int p = div(call(NodeOp::Exp, sub(value(logits), max)), sum);
    int onehot =
        select(cmp(NodeOp::Eq, node(NodeOp::Col, {}, ValueType::Int), label),
               constant(1), constant(0));
    int out = select(valid, mul(seedNode, sub(p, onehot)), constant(0));
    if (padded)
      out = select(isClass(), out, constant(0));
    current[grad.getResult()] = out;
    storeIfOutput(grad.getResult(), out);
    return finishLoop();
  }

  FusedOp op;
  std::vector<bool> accumulate;
  KernelDesc k;
  std::vector<int64_t> space;
  llvm::DenseMap<Value, int> argOf, outputArg, current;
  llvm::DenseSet<Value> stored;
  bool failedOp = false;
};

} // namespace

bool hasScalarMath(Operation *op) {
  return isa<AddOp, SubOp, MulOp, DivOp, NegOp, ScaleOp, ReluOp, SiluOp, GeluOp,
             ReluGradOp, SiluGradOp, GeluGradOp, DropoutOp, DropoutGradOp>(op);
}

FailureOr<KernelDesc> buildFusedKernel(FusedOp op, StringRef name,
                                       const std::vector<bool> &accumulate) {
  return Builder(op, name, accumulate).build();
}

} // namespace codegen
} // namespace loom
