//===- ModelSummary.h - parameters, FLOPs and bytes of a model --*- C++ -*-===//

#ifndef LOOM_ANALYSIS_MODELSUMMARY_H
#define LOOM_ANALYSIS_MODELSUMMARY_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <map>
#include <string>

namespace loom {

struct ParameterSummary {
  std::string name;
  llvm::SmallVector<int64_t> shape;
  std::string elementType;
  int64_t elements = 0;
  int64_t bytes = 0;
};

/// The cost of executing ops, as CostOpInterface counts it (doubles: a 1T
/// model's step does not overflow them).
struct CostTotals {
  double flops = 0;
  double matmulFlops = 0;
  double bytesRead = 0;
  double bytesWritten = 0;
  /// Op name -> executions.
  std::map<std::string, int64_t> opCounts;

  /// Adds `times` executions of `other`. False when an op count passes
  /// int64 (it is then left at INT64_MAX); the doubles never overflow.
  bool add(const CostTotals &other, int64_t times = 1);
};

/// What a model is: its parameters (each name once) and the cost of one
/// execution of its entry functions, each called function counted as often
/// as it is called.
struct ModelSummary {
  /// The entry function's name (the model's), and the layers its `repeat`
  /// stacks unroll to (the `loom.layers` attribute; 0 when absent).
  std::string model;
  int64_t layers = 0;
  llvm::SmallVector<ParameterSummary> parameters;
  int64_t totalParameters = 0;
  int64_t parameterBytes = 0;
  CostTotals cost;
  /// Parameters summed by block: the name without its last component and
  /// with layer indices as `*` (`layers.*.mlp.fc1` for every layer's
  /// `mlp.fc1.weight` and `.bias`).
  std::map<std::string, int64_t> parametersByGroup;
};

/// Summarises `module`. The entry functions are those no other function
/// calls. Fails, with a diagnostic, on a call to an unknown function or a
/// recursive call graph. Run --loom-verify-model first: the summary takes
/// each parameter name's first declaration.
mlir::FailureOr<ModelSummary> summarizeModel(mlir::ModuleOp module);

/// A table for people.
void printModelSummary(const ModelSummary &summary, llvm::raw_ostream &os);
/// The same as one JSON object (`parameters`, `flops`, ... ).
void printModelSummaryJson(const ModelSummary &summary, llvm::raw_ostream &os);

} // namespace loom

#endif // LOOM_ANALYSIS_MODELSUMMARY_H
