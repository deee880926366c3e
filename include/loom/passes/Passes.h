//===- Passes.h - Loom's compiler passes ------------------------*- C++ -*-===//

#ifndef LOOM_PASSES_PASSES_H
#define LOOM_PASSES_PASSES_H

#include "loom/dialects/Dist/IR/DistOps.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace loom {

/// Parses a mesh like `dp=2,tp=4` into the axes dp, pp, tp in that order
/// (unnamed axes have size 1), or fails with a message in `error`.
mlir::FailureOr<llvm::SmallVector<std::pair<std::string, int64_t>>>
parseMeshSpec(llvm::StringRef spec, std::string &error);

/// Contiguous ranges of layers for `chunks` pipeline chunks minimising the
/// most expensive chunk, the first chunk also paying `firstExtra` (the
/// embedding) and the last `lastExtra` (the head and the loss): the layers
/// per chunk, or failure with a message in `error`.
mlir::FailureOr<llvm::SmallVector<int64_t>>
balanceLayers(llvm::ArrayRef<double> layerCost, double firstExtra,
              double lastExtra, int64_t chunks, std::string &error);

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace loom

#endif // LOOM_PASSES_PASSES_H
