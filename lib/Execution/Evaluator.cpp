//===- Evaluator.cpp - run loom IR on the CPU kernels in double -----------===//

#include "loom/Execution/Evaluator.h"
#include "loom/dialects/Loom/IR/LoomOps.h"
#include "loom/runtime/cpu/Kernels.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <numeric>

using namespace mlir;
namespace kernels = loom::runtime::cpu;

namespace loom {
namespace {

using Shape = std::vector<int64_t>;

Shape shapeOf(Value value) {
  ArrayRef<int64_t> s = cast<RankedTensorType>(value.getType()).getShape();
  return Shape(s.begin(), s.end());
}

HostTensor make(Value value, double fill = 0) {
  Shape shape = shapeOf(value);
  return {shape, std::vector<double>(kernels::numElements(shape), fill)};
}

/// The product of `shape`'s dimensions in [begin, end).
int64_t product(const Shape &shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i)
    n *= shape[i];
  return n;
}

std::vector<int64_t> asIndices(const HostTensor &t) {
  return std::vector<int64_t>(t.data.begin(), t.data.end());
}

class Evaluator {
public:
  Evaluator(const llvm::StringMap<HostTensor> &parameters,
            const EvaluationOptions &options)
      : parameters(parameters), options(options) {}

  LogicalResult run(Operation *op);
  llvm::DenseMap<Value, HostTensor> values;

private:
  const HostTensor &in(Value v) { return values.find(v)->second; }
  LogicalResult runMatmul(MatmulOp op);
  LogicalResult runReduce(ReduceOp op);

  const llvm::StringMap<HostTensor> &parameters;
  const EvaluationOptions &options;
};

LogicalResult Evaluator::runMatmul(MatmulOp op) {
  kernels::MatmulShape s =
      kernels::matmulShapeOf(shapeOf(op.getLhs()), shapeOf(op.getRhs()),
                             op.getTransposeLhs(), op.getTransposeRhs());
  HostTensor c = make(op.getResult());
  kernels::matmul(s, in(op.getLhs()).data.data(), in(op.getRhs()).data.data(),
                  c.data.data());
  values[op.getResult()] = std::move(c);
  return success();
}

LogicalResult Evaluator::runReduce(ReduceOp op) {
  const HostTensor &x = in(op.getInput());
  HostTensor y = make(op.getResult());
  bool max = op.getKind() == ReduceKind::Max;
  std::fill(y.data.begin(), y.data.end(),
            max ? -std::numeric_limits<double>::infinity() : 0.0);
  // Each input element goes to the output element with the reduced
  // coordinates dropped.
  size_t rank = x.shape.size();
  std::vector<bool> reduced(rank, false);
  for (int64_t d : op.getDims())
    reduced[d] = true;
  std::vector<int64_t> index(rank, 0);
  for (size_t i = 0; i < x.data.size(); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < rank; ++d)
      if (!reduced[d])
        o = o * x.shape[d] + index[d];
    y.data[o] = max ? std::max(y.data[o], x.data[i]) : y.data[o] + x.data[i];
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < x.shape[d])
        break;
      index[d] = 0;
    }
  }
  if (op.getKind() == ReduceKind::Mean) {
    double count =
        double(x.data.size()) / double(std::max<size_t>(1, y.data.size()));
    for (double &v : y.data)
      v /= count;
  }
  values[op.getResult()] = std::move(y);
  return success();
}

LogicalResult Evaluator::run(Operation *op) {
  auto unary = [&](Value x, Value result, auto f) {
    HostTensor y = make(result);
    const HostTensor &xs = in(x);
    for (size_t i = 0; i < y.data.size(); ++i)
      y.data[i] = f(xs.data[i]);
    values[result] = std::move(y);
    return success();
  };
  auto binary = [&](Operation *o, kernels::BinaryKind kind) {
    HostTensor y = make(o->getResult(0));
    const HostTensor &a = in(o->getOperand(0)), &b = in(o->getOperand(1));
    kernels::broadcastBinary(kind, a.data.data(), a.shape, b.data.data(),
                             b.shape, y.data.data(), y.shape);
    // Integer division truncates, as the ops' integer semantics say.
    if (kind == kernels::BinaryKind::Div &&
        !isa<FloatType>(
            cast<RankedTensorType>(o->getResult(0).getType()).getElementType()))
      for (double &v : y.data)
        v = std::trunc(v);
    values[o->getResult(0)] = std::move(y);
    return success();
  };
  auto activation = [&](Value x, Value result, kernels::Activation kind) {
    HostTensor y = make(result);
    kernels::activation(kind, in(x).data.data(), y.data.data(),
                        int64_t(y.data.size()));
    values[result] = std::move(y);
    return success();
  };
  auto activationGrad = [&](Value x, Value dy, Value result,
                            kernels::Activation kind) {
    HostTensor dx = make(result);
    kernels::activationBackward(kind, in(x).data.data(), in(dy).data.data(),
                                dx.data.data(), int64_t(dx.data.size()));
    values[result] = std::move(dx);
    return success();
  };
  auto rowsCols = [&](Value v) {
    Shape s = shapeOf(v);
    int64_t cols = s.back();
    return std::make_pair(kernels::numElements(s) / cols, cols);
  };

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](ParameterOp p) -> LogicalResult {
        auto it = parameters.find(p.getName());
        HostTensor t = make(p.getResult());
        if (it != parameters.end()) {
          if (it->second.data.size() != t.data.size())
            return p.emitError()
                   << "the value given for parameter '" << p.getName()
                   << "' has " << it->second.data.size() << " elements, not "
                   << t.data.size();
          t.data = it->second.data;
        } else if (std::optional<double> c = p.getInit().getConstantValue()) {
          std::fill(t.data.begin(), t.data.end(), *c);
        } else {
          return p.emitError()
                 << "no value given for parameter '" << p.getName() << "'";
        }
        values[p.getResult()] = std::move(t);
        return success();
      })
      .Case([&](MatmulOp o) { return runMatmul(o); })
      .Case([&](AddOp o) { return binary(o, kernels::BinaryKind::Add); })
      .Case([&](SubOp o) { return binary(o, kernels::BinaryKind::Sub); })
      .Case([&](MulOp o) { return binary(o, kernels::BinaryKind::Mul); })
      .Case([&](DivOp o) { return binary(o, kernels::BinaryKind::Div); })
      .Case([&](NegOp o) {
        return unary(o.getInput(), o.getResult(), [](double v) { return -v; });
      })
      .Case([&](ScaleOp o) {
        double f = o.getFactor().convertToDouble();
        return unary(o.getInput(), o.getResult(),
                     [f](double v) { return v * f; });
      })
      .Case([&](CastOp o) {
        bool toInt = !isa<FloatType>(o.getType().getElementType());
        bool toBool = o.getType().getElementType().isInteger(1);
        return unary(o.getInput(), o.getResult(), [=](double v) {
          return toBool ? double(v != 0) : toInt ? std::trunc(v) : v;
        });
      })
      .Case([&](ReluOp o) {
        return activation(o.getInput(), o.getResult(),
                          kernels::Activation::Relu);
      })
      .Case([&](SiluOp o) {
        return activation(o.getInput(), o.getResult(),
                          kernels::Activation::Silu);
      })
      .Case([&](GeluOp o) {
        return activation(o.getInput(), o.getResult(),
                          o.getApproximate() == GeluApproximation::Tanh
                              ? kernels::Activation::GeluTanh
                              : kernels::Activation::Gelu);
      })
      .Case([&](ReluGradOp o) {
        return activationGrad(o.getInput(), o.getGrad(), o.getResult(),
                              kernels::Activation::Relu);
      })
      .Case([&](SiluGradOp o) {
        return activationGrad(o.getInput(), o.getGrad(), o.getResult(),
                              kernels::Activation::Silu);
      })
      .Case([&](GeluGradOp o) {
        return activationGrad(o.getInput(), o.getGrad(), o.getResult(),
                              o.getApproximate() == GeluApproximation::Tanh
                                  ? kernels::Activation::GeluTanh
                                  : kernels::Activation::Gelu);
      })
      .Case([&](SoftmaxOp o) {
        Shape s = shapeOf(o.getInput());
        auto [rows, cols] = rowsCols(o.getInput());
        kernels::SoftmaxShape ss{rows, cols,
                                 s.size() >= 2 ? s[s.size() - 2] : 1,
                                 o.getCausal(), o.getScale().convertToDouble()};
        std::vector<uint8_t> mask;
        if (Value m = o.getMask()) {
          // Broadcast the mask to the input's shape.
          const HostTensor &mt = in(m);
          std::vector<double> wide(kernels::numElements(s));
          std::vector<double> zero(1, 0.0);
          kernels::broadcastBinary(kernels::BinaryKind::Add, mt.data.data(),
                                   mt.shape, zero.data(), Shape{}, wide.data(),
                                   s);
          mask.assign(wide.begin(), wide.end());
        }
        HostTensor y = make(o.getResult());
        kernels::softmax(ss, in(o.getInput()).data.data(),
                         mask.empty() ? nullptr : mask.data(), y.data.data());
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](SoftmaxGradOp o) {
        auto [rows, cols] = rowsCols(o.getOutput());
        kernels::SoftmaxShape ss{rows, cols, 1, false,
                                 o.getScale().convertToDouble()};
        HostTensor dx = make(o.getResult());
        kernels::softmaxBackward(ss, in(o.getOutput()).data.data(),
                                 in(o.getGrad()).data.data(), dx.data.data());
        values[o.getResult()] = std::move(dx);
        return success();
      })
      .Case([&](LayerNormOp o) {
        auto [rows, cols] = rowsCols(o.getInput());
        HostTensor y = make(o.getResult());
        std::vector<double> mean(rows), rstd(rows);
        kernels::layerNorm(
            in(o.getInput()).data.data(), in(o.getWeight()).data.data(),
            in(o.getBias()).data.data(), y.data.data(), mean.data(),
            rstd.data(), rows, cols, o.getEpsilon().convertToDouble());
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](LayerNormGradOp o) {
        auto [rows, cols] = rowsCols(o.getInput());
        std::vector<double> y(rows * cols), mean(rows), rstd(rows);
        std::vector<double> zeros(cols, 0.0);
        const double *x = in(o.getInput()).data.data();
        const double *w = in(o.getWeight()).data.data();
        double eps = o.getEpsilon().convertToDouble();
        kernels::layerNorm(x, w, zeros.data(), y.data(), mean.data(),
                           rstd.data(), rows, cols, eps);
        HostTensor dx = make(o.getInputGrad()), dw = make(o.getWeightGrad()),
                   db = make(o.getBiasGrad());
        kernels::layerNormBackward(x, w, mean.data(), rstd.data(),
                                   in(o.getGrad()).data.data(), dx.data.data(),
                                   dw.data.data(), db.data.data(), rows, cols);
        values[o.getInputGrad()] = std::move(dx);
        values[o.getWeightGrad()] = std::move(dw);
        values[o.getBiasGrad()] = std::move(db);
        return success();
      })
      .Case([&](RmsNormOp o) {
        auto [rows, cols] = rowsCols(o.getInput());
        HostTensor y = make(o.getResult());
        std::vector<double> rstd(rows);
        kernels::rmsNorm(in(o.getInput()).data.data(),
                         in(o.getWeight()).data.data(), y.data.data(),
                         rstd.data(), rows, cols,
                         o.getEpsilon().convertToDouble());
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](RmsNormGradOp o) {
        auto [rows, cols] = rowsCols(o.getInput());
        std::vector<double> y(rows * cols), rstd(rows);
        const double *x = in(o.getInput()).data.data();
        const double *w = in(o.getWeight()).data.data();
        kernels::rmsNorm(x, w, y.data(), rstd.data(), rows, cols,
                         o.getEpsilon().convertToDouble());
        HostTensor dx = make(o.getInputGrad()), dw = make(o.getWeightGrad());
        kernels::rmsNormBackward(x, w, rstd.data(), in(o.getGrad()).data.data(),
                                 dx.data.data(), dw.data.data(), rows, cols);
        values[o.getInputGrad()] = std::move(dx);
        values[o.getWeightGrad()] = std::move(dw);
        return success();
      })
      .Case([&](DropoutOp o) {
        HostTensor y = make(o.getResult());
        kernels::dropout(
            in(o.getInput()).data.data(), y.data.data(), int64_t(y.data.size()),
            0, o.getRate().convertToDouble(),
            kernels::dropoutKey(options.seed, o.getSite().str(), options.step));
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](DropoutGradOp o) {
        HostTensor dx = make(o.getResult());
        kernels::dropout(
            in(o.getGrad()).data.data(), dx.data.data(),
            int64_t(dx.data.size()), 0, o.getRate().convertToDouble(),
            kernels::dropoutKey(options.seed, o.getSite().str(), options.step));
        values[o.getResult()] = std::move(dx);
        return success();
      })
      .Case([&](EmbeddingOp o) -> LogicalResult {
        Shape table = shapeOf(o.getTable());
        std::vector<int64_t> ids = asIndices(in(o.getIndices()));
        HostTensor y = make(o.getResult());
        if (!kernels::embedding(in(o.getTable()).data.data(), table[0],
                                table[1], ids.data(), int64_t(ids.size()),
                                y.data.data()))
          return o.emitError()
                 << "an index is outside the table's " << table[0] << " rows";
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](EmbeddingGradOp o) -> LogicalResult {
        Shape table = shapeOf(o.getResult());
        std::vector<int64_t> ids = asIndices(in(o.getIndices()));
        HostTensor dt = make(o.getResult());
        if (!kernels::embeddingBackward(
                ids.data(), int64_t(ids.size()), table[0], table[1],
                in(o.getGrad()).data.data(), dt.data.data()))
          return o.emitError()
                 << "an index is outside the table's " << table[0] << " rows";
        values[o.getResult()] = std::move(dt);
        return success();
      })
      .Case([&](CrossEntropyOp o) -> LogicalResult {
        auto [tokens, vocab] = rowsCols(o.getLogits());
        std::vector<int64_t> labels = asIndices(in(o.getLabels()));
        std::vector<double> losses(tokens);
        int64_t classes = o.getClasses() ? int64_t(o.getClasses()) : vocab;
        int64_t counted = kernels::crossEntropy(
            in(o.getLogits()).data.data(), labels.data(), tokens, vocab,
            int64_t(o.getIgnoreIndex()), losses.data(), classes);
        if (counted < 0)
          return o.emitError() << "a label is outside [0, " << classes << ")";
        HostTensor y = make(o.getResult());
        double sum = std::accumulate(losses.begin(), losses.end(), 0.0);
        switch (o.getReduction()) {
        case LossReduction::None:
          y.data = losses;
          break;
        case LossReduction::Sum:
          y.data[0] = sum;
          break;
        case LossReduction::Mean:
          y.data[0] = counted ? sum / double(counted) : 0.0;
          break;
        }
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](CrossEntropyGradOp o) -> LogicalResult {
        auto [tokens, vocab] = rowsCols(o.getLogits());
        std::vector<int64_t> labels = asIndices(in(o.getLabels()));
        int64_t ignore = int64_t(o.getIgnoreIndex());
        std::vector<double> dloss(tokens);
        const HostTensor &g = in(o.getGrad());
        int64_t counted = std::count_if(labels.begin(), labels.end(),
                                        [&](int64_t l) { return l != ignore; });
        for (int64_t t = 0; t < tokens; ++t)
          dloss[t] = o.getReduction() == LossReduction::None ? g.data[t]
                     : o.getReduction() == LossReduction::Sum
                         ? g.data[0]
                         : (counted ? g.data[0] / double(counted) : 0.0);
        HostTensor dl = make(o.getResult());
        int64_t classes = o.getClasses() ? int64_t(o.getClasses()) : vocab;
        if (!kernels::crossEntropyBackward(
                in(o.getLogits()).data.data(), labels.data(), dloss.data(),
                tokens, vocab, ignore, dl.data.data(), classes))
          return o.emitError() << "a label is outside [0, " << classes << ")";
        values[o.getResult()] = std::move(dl);
        return success();
      })
      .Case([&](ReshapeOp o) {
        HostTensor y = in(o.getInput());
        y.shape = shapeOf(o.getResult());
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](TransposeOp o) {
        HostTensor y = make(o.getResult());
        ArrayRef<int64_t> perm = o.getPermutation();
        kernels::transpose(in(o.getInput()).data.data(), shapeOf(o.getInput()),
                           std::vector<int64_t>(perm.begin(), perm.end()),
                           y.data.data());
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](SplitOp o) {
        Shape s = shapeOf(o.getInput());
        size_t axis = o.getAxis();
        int64_t outer = product(s, 0, axis),
                inner = product(s, axis + 1, s.size());
        // Inserting the pieces may grow the map: copy out of the input
        // first, insert after.
        const std::vector<double> &x = in(o.getInput()).data;
        std::vector<HostTensor> pieces;
        int64_t offset = 0;
        for (Value r : o.getResults()) {
          HostTensor y = make(r);
          int64_t size = y.shape[axis];
          for (int64_t i = 0; i < outer; ++i)
            std::copy_n(x.begin() + (i * s[axis] + offset) * inner,
                        size * inner, y.data.begin() + i * size * inner);
          offset += size;
          pieces.push_back(std::move(y));
        }
        for (auto [r, y] : llvm::zip(o.getResults(), pieces))
          values[r] = std::move(y);
        return success();
      })
      .Case([&](ConcatOp o) {
        HostTensor y = make(o.getResult());
        size_t axis = o.getAxis();
        int64_t outer = product(y.shape, 0, axis),
                inner = product(y.shape, axis + 1, y.shape.size());
        int64_t offset = 0;
        for (Value v : o.getInputs()) {
          const HostTensor &x = in(v);
          int64_t size = x.shape[axis];
          for (int64_t i = 0; i < outer; ++i)
            std::copy_n(x.data.begin() + i * size * inner, size * inner,
                        y.data.begin() + (i * y.shape[axis] + offset) * inner);
          offset += size;
        }
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](ReduceOp o) { return runReduce(o); })
      .Case([&](BroadcastOp o) {
        HostTensor y = make(o.getResult());
        const HostTensor &x = in(o.getInput());
        std::vector<double> zero(1, 0.0);
        kernels::broadcastBinary(kernels::BinaryKind::Add, x.data.data(),
                                 x.shape, zero.data(), Shape{}, y.data.data(),
                                 y.shape);
        values[o.getResult()] = std::move(y);
        return success();
      })
      .Case([&](FillOp o) {
        values[o.getResult()] =
            make(o.getResult(), o.getValue().convertToDouble());
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitError()
               << "the evaluator cannot run '" << other->getName() << "'";
      });
}

} // namespace

FailureOr<std::vector<HostTensor>>
evaluate(func::FuncOp fn, const std::vector<HostTensor> &inputs,
         const llvm::StringMap<HostTensor> &parameters,
         const EvaluationOptions &options) {
  Block &body = fn.front();
  if (inputs.size() != body.getNumArguments())
    return fn.emitError() << "@" << fn.getSymName() << " takes "
                          << body.getNumArguments() << " inputs, "
                          << inputs.size() << " were given";
  Evaluator evaluator(parameters, options);
  for (auto [arg, input] : llvm::zip(body.getArguments(), inputs)) {
    if (input.shape != shapeOf(arg))
      return fn.emitError() << "input #" << arg.getArgNumber()
                            << " has the wrong shape for " << arg.getType();
    evaluator.values[arg] = input;
  }
  std::vector<HostTensor> results;
  for (Operation &op : body) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (Value v : ret.getOperands())
        results.push_back(evaluator.values.find(v)->second);
      break;
    }
    if (failed(evaluator.run(&op)))
      return failure();
  }
  return results;
}

} // namespace loom
