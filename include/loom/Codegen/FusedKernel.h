//===- FusedKernel.h - a loom.fused region to a kernel ----------*- C++ -*-===//
//
// lib/Codegen/FusedKernel.cpp: the scalar math of every op --loom-fuse puts
// in a region, written to mirror the reference kernels' order of operations
// (runtime/cpu/Kernels.cpp), so a fused kernel differs from them only where
// a sum is reassociated and where exp/tanh are the prelude's.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_CODEGEN_FUSEDKERNEL_H
#define LOOM_CODEGEN_FUSEDKERNEL_H

#include "loom/Codegen/Kernel.h"
#include "loom/dialects/Loom/IR/LoomOps.h"

#include "mlir/Support/LogicalResult.h"

namespace loom {
namespace codegen {

/// Whether the code generator computes `op` per element (its scalar math is
/// in FusedKernel.cpp): the ops --loom-fuse may put in an elementwise chain.
bool hasScalarMath(mlir::Operation *op);

/// The kernel of a region: arguments are the region's inputs, then its
/// results, in order. `accumulate[r]`: result r is added to what its buffer
/// holds (a gradient written straight into its accumulator). Emits an error
/// on the op for a region the code generator does not know.
mlir::FailureOr<KernelDesc>
buildFusedKernel(FusedOp op, llvm::StringRef name,
                 const std::vector<bool> &accumulate);

} // namespace codegen
} // namespace loom

#endif // LOOM_CODEGEN_FUSEDKERNEL_H
