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

/// What a model is: its parameters (each once, by name) and the cost of one
/// execution of its ops on their global shapes.
struct ModelSummary {
  llvm::SmallVector<ParameterSummary> parameters;
  int64_t totalParameters = 0;
  int64_t parameterBytes = 0;
  int64_t flops = 0;
  int64_t matmulFlops = 0;
  int64_t bytesRead = 0;
  int64_t bytesWritten = 0;
  /// Op name -> how many times it occurs.
  std::map<std::string, int64_t> opCounts;
  /// Parameters summed by module: the name without its last component
  /// (`layers.0.mlp.fc1` for `layers.0.mlp.fc1.weight` and `.bias`).
  std::map<std::string, int64_t> parametersByGroup;
};

/// Summarises every function of `module`. Fails, with a diagnostic at the
/// second declaration, when one parameter name is declared with two different
/// types or initializers.
mlir::FailureOr<ModelSummary> summarizeModel(mlir::ModuleOp module);

/// A table for people.
void printModelSummary(const ModelSummary &summary, llvm::raw_ostream &os);
/// The same as one JSON object (`parameters`, `flops`, ... ).
void printModelSummaryJson(const ModelSummary &summary, llvm::raw_ostream &os);

} // namespace loom

#endif // LOOM_ANALYSIS_MODELSUMMARY_H
