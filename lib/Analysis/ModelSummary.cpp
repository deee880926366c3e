//===- ModelSummary.cpp - parameters, FLOPs and bytes of a model ----------===//

#include "loom/Analysis/ModelSummary.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

using namespace mlir;

namespace loom {

bool CostTotals::add(const CostTotals &other, int64_t times) {
  double t = static_cast<double>(times);
  flops += t * other.flops;
  matmulFlops += t * other.matmulFlops;
  bytesRead += t * other.bytesRead;
  bytesWritten += t * other.bytesWritten;
  bool fits = true;
  for (const auto &[name, count] : other.opCounts) {
    int64_t more;
    int64_t &total = opCounts[name];
    if (__builtin_mul_overflow(times, count, &more) ||
        __builtin_add_overflow(total, more, &total)) {
      total = INT64_MAX;
      fits = false;
    }
  }
  return fits;
}

namespace {

/// Per function: the cost of its own ops, and how often it calls each callee.
struct FunctionCost {
  CostTotals own;
  llvm::SmallVector<std::pair<func::FuncOp, int64_t>> calls;
};

class CallGraphCost {
public:
  explicit CallGraphCost(ModuleOp module) : symbols(module) {}

  LogicalResult collect(func::FuncOp fn) {
    FunctionCost &cost = functions[fn];
    llvm::DenseMap<func::FuncOp, int64_t> callCounts;
    WalkResult walk = fn.walk([&](Operation *op) {
      if (auto call = dyn_cast<func::CallOp>(op)) {
        auto callee = symbols.lookup<func::FuncOp>(call.getCallee());
        if (!callee) {
          call.emitError() << "calls @" << call.getCallee()
                           << ", which is not a function of this module";
          return WalkResult::interrupt();
        }
        ++callCounts[callee];
        return WalkResult::advance();
      }
      if (op->getDialect() && isa<LoomDialect>(op->getDialect()))
        ++cost.own.opCounts[op->getName().getStringRef().str()];
      if (auto costOp = dyn_cast<CostOpInterface>(op)) {
        double flops = costOp.getFlops();
        cost.own.flops += flops;
        if (isa<MatmulOp>(op))
          cost.own.matmulFlops += flops;
        cost.own.bytesRead += costOp.getBytesRead();
        cost.own.bytesWritten += costOp.getBytesWritten();
      }
      return WalkResult::advance();
    });
    for (auto [callee, count] : callCounts)
      cost.calls.push_back({callee, count});
    return failure(walk.wasInterrupted());
  }

  /// The cost of one call of `fn`, callees included. Iterative (a post-order
  /// over the call graph with an explicit stack): a chain of calls as deep as
  /// the input makes it would overflow the native stack.
  FailureOr<CostTotals> total(func::FuncOp fn) {
    if (auto it = totals.find(fn); it != totals.end())
      return it->second;
    // Each frame: a function and how many of its callees are summed so far.
    SmallVector<std::pair<func::FuncOp, size_t>> stack{{fn, 0}};
    inProgress.insert(fn);
    while (!stack.empty()) {
      auto &[current, next] = stack.back();
      FunctionCost &cost = functions[current];
      if (next < cost.calls.size()) {
        func::FuncOp callee = cost.calls[next].first;
        if (totals.count(callee)) {
          ++next;
          continue;
        }
        if (!inProgress.insert(callee).second)
          return callee.emitError()
                 << "@" << callee.getSymName()
                 << " calls itself, directly or through other functions; a "
                    "model's call graph must be acyclic";
        stack.push_back({callee, 0});
        continue;
      }
      CostTotals result = cost.own;
      for (auto [callee, count] : cost.calls)
        if (!result.add(totals[callee], count))
          return current.emitError()
                 << "@" << current.getSymName()
                 << " executes an op more than 2^63 times through its calls; "
                    "the summary cannot count it";
      totals[current] = std::move(result);
      inProgress.erase(current);
      stack.pop_back();
    }
    return totals[fn];
  }

  bool isCalled(func::FuncOp fn) {
    if (called.empty())
      for (const auto &[caller, cost] : functions)
        for (auto [callee, count] : cost.calls)
          called.insert(callee);
    return called.contains(fn);
  }

private:
  SymbolTable symbols;
  llvm::DenseMap<func::FuncOp, FunctionCost> functions;
  llvm::DenseMap<func::FuncOp, CostTotals> totals;
  llvm::DenseSet<func::FuncOp> inProgress;
  /// Every function some function calls (filled on first use).
  llvm::DenseSet<func::FuncOp> called;
};

} // namespace

/// `layers.3.mlp.fc1.weight` -> `layers.*.mlp.fc1.weight`.
static std::string layerPattern(StringRef name) {
  SmallVector<StringRef> parts;
  name.split(parts, '.');
  std::string out;
  for (auto [i, part] : llvm::enumerate(parts)) {
    if (i)
      out += ".";
    bool index = !part.empty() && llvm::all_of(part, llvm::isDigit);
    out += index ? "*" : part.str();
  }
  return out;
}

FailureOr<ModelSummary> summarizeModel(ModuleOp module) {
  ModelSummary summary;

  llvm::StringSet<> seen;
  ParameterOp overflowed;
  module.walk([&](ParameterOp param) {
    if (!seen.insert(param.getName()).second)
      return; // a tied parameter, counted at its first declaration
    RankedTensorType type = param.getType();
    ParameterSummary p;
    p.name = param.getName().str();
    p.shape.assign(type.getShape().begin(), type.getShape().end());
    llvm::raw_string_ostream(p.elementType) << type.getElementType();
    // --loom-verify-model bounds each tensor, so its count and bytes fit.
    p.elements = elementCount(type).value_or(INT64_MAX);
    p.bytes = tensorBytes(type);
    if (__builtin_add_overflow(summary.totalParameters, p.elements,
                               &summary.totalParameters) ||
        __builtin_add_overflow(summary.parameterBytes, p.bytes,
                               &summary.parameterBytes))
      overflowed = param;
    std::string pattern = layerPattern(p.name);
    summary.parametersByGroup[StringRef(pattern).rsplit('.').first.str()] +=
        p.elements;
    summary.parameters.push_back(std::move(p));
  });
  if (overflowed)
    return overflowed.emitError()
           << "the model's parameters number more than 2^63 elements or "
              "bytes; the summary cannot count them";

  CallGraphCost graph(module);
  auto functions = module.getOps<func::FuncOp>();
  for (func::FuncOp fn : functions)
    if (failed(graph.collect(fn)))
      return failure();
  for (func::FuncOp fn : functions) {
    if (graph.isCalled(fn))
      continue;
    FailureOr<CostTotals> total = graph.total(fn);
    if (failed(total))
      return failure();
    if (!summary.cost.add(*total))
      return fn.emitError() << "the entry functions execute an op more than "
                               "2^63 times; the summary cannot count it";
    if (summary.model.empty())
      summary.model = fn.getSymName().str();
    if (IntegerAttr layers =
            LoomDialect::LayersAttrHelper(fn.getContext()).getAttr(fn))
      summary.layers += layers.getInt();
  }
  // A cycle that no entry function reaches still makes the graph cyclic.
  for (func::FuncOp fn : functions)
    if (failed(graph.total(fn)))
      return failure();
  return summary;
}

/// Counts print as whole numbers, exact up to 2^53.
static std::string count(double value) {
  return llvm::formatv("{0:f0}", value).str();
}

void printModelSummary(const ModelSummary &summary, llvm::raw_ostream &os) {
  const CostTotals &cost = summary.cost;
  os << "model: " << summary.model << " (" << summary.layers << " layers)\n";
  os << "parameters: " << summary.totalParameters << " ("
     << summary.parameterBytes << " bytes)\n";
  os << "parameters by block (* = every layer):\n";
  for (const auto &[group, elements] : summary.parametersByGroup)
    os << "  " << llvm::left_justify(group, 40) << " " << elements << "\n";
  os << "flops per execution: " << count(cost.flops) << " (matmul "
     << count(cost.matmulFlops) << ")\n";
  os << "bytes read: " << count(cost.bytesRead)
     << ", bytes written: " << count(cost.bytesWritten) << "\n";
  os << "ops executed:\n";
  for (const auto &[name, n] : cost.opCounts)
    os << "  " << llvm::left_justify(name, 32) << " " << n << "\n";
  // One line per tensor pattern: every layer's copy has the same shape.
  os << "parameter tensors:\n";
  llvm::StringMap<int64_t> copies;
  for (const ParameterSummary &p : summary.parameters)
    ++copies[layerPattern(p.name)];
  for (const ParameterSummary &p : summary.parameters) {
    std::string pattern = layerPattern(p.name);
    auto it = copies.find(pattern);
    if (it == copies.end())
      continue; // printed with its first copy
    os << "  " << llvm::left_justify(pattern, 40) << " "
       << llvm::left_justify(shapeString(p.shape), 16) << " "
       << llvm::left_justify(p.elementType, 5);
    if (it->second > 1)
      os << " x" << it->second;
    os << "\n";
    copies.erase(it);
  }
}

void printModelSummaryJson(const ModelSummary &summary, llvm::raw_ostream &os) {
  const CostTotals &cost = summary.cost;
  llvm::json::Array params;
  for (const ParameterSummary &p : summary.parameters)
    params.push_back(llvm::json::Object{{"name", p.name},
                                        {"shape", llvm::json::Array(p.shape)},
                                        {"dtype", p.elementType},
                                        {"elements", p.elements}});
  llvm::json::Object groups;
  for (const auto &[group, elements] : summary.parametersByGroup)
    groups[group] = elements;
  llvm::json::Object ops;
  for (const auto &[name, n] : cost.opCounts)
    ops[name] = n;
  llvm::json::Object root{{"model", summary.model},
                          {"layers", summary.layers},
                          {"parameters", summary.totalParameters},
                          {"parameter_bytes", summary.parameterBytes},
                          {"flops", cost.flops},
                          {"matmul_flops", cost.matmulFlops},
                          {"bytes_read", cost.bytesRead},
                          {"bytes_written", cost.bytesWritten},
                          {"parameter_groups", std::move(groups)},
                          {"ops", std::move(ops)},
                          {"parameter_tensors", std::move(params)}};
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
}

} // namespace loom
