//===- Evaluator.h - run loom IR on the CPU kernels in double ---*- C++ -*-===//
//
// Executes a function of loom ops directly, op by op, with the runtime's CPU
// reference kernels in double precision. It is the compiler's numeric
// oracle: gradient checks of the autodiff pass (against finite differences)
// and tests of passes that must not change what a program computes. Every
// float computes in double: casts to bf16 or f16 do not round here.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_EXECUTION_EVALUATOR_H
#define LOOM_EXECUTION_EVALUATOR_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringMap.h"

#include <cstdint>
#include <vector>

namespace loom {

/// A dense row-major tensor on the host. Integer tensors hold their values
/// exactly (as doubles, below 2^53).
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;
};

struct EvaluationOptions {
  /// The training seed and step that key dropout masks.
  uint64_t seed = 0;
  uint64_t step = 0;
};

/// Runs `fn` on `inputs` (one per argument). A parameter takes its value
/// from `parameters` by name, or from a constant initializer (zeros, ones);
/// a random initializer with no value given is an error. Fails with a
/// diagnostic at the op that cannot run (an unsupported op, an index out of
/// range).
mlir::FailureOr<std::vector<HostTensor>>
evaluate(mlir::func::FuncOp fn, const std::vector<HostTensor> &inputs,
         const llvm::StringMap<HostTensor> &parameters,
         const EvaluationOptions &options = {});

} // namespace loom

#endif // LOOM_EXECUTION_EVALUATOR_H
