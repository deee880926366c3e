//===- TestCost.cpp - --loom-test-cost ------------------------------------===//
//
// Reports CostOpInterface results as remarks so lit can check them.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "llvm/Support/FormatVariadic.h"

#define DEBUG_TYPE "loom-test-cost"

namespace loom {
#define GEN_PASS_DEF_LOOMTESTCOST
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

/// Costs are doubles; they print as whole numbers (exact up to 2^53).
std::string count(double value) { return llvm::formatv("{0:f0}", value).str(); }

struct LoomTestCostPass : impl::LoomTestCostBase<LoomTestCostPass> {
  using LoomTestCostBase::LoomTestCostBase;

  void runOnOperation() override {
    int64_t ops = 0;
    double flops = 0, matmulFlops = 0, bytesRead = 0, bytesWritten = 0;
    getOperation().walk([&](CostOpInterface op) {
      double f = op.getFlops(), r = op.getBytesRead(), w = op.getBytesWritten();
      ++ops;
      flops += f;
      bytesRead += r;
      bytesWritten += w;
      if (isa<MatmulOp>(op))
        matmulFlops += f;
      if (perOp)
        op->emitRemark() << "flops = " << count(f)
                         << ", bytes read = " << count(r)
                         << ", bytes written = " << count(w);
    });
    getOperation()->emitRemark()
        << "total of " << ops << " ops: flops = " << count(flops) << " (matmul "
        << count(matmulFlops) << "), bytes read = " << count(bytesRead)
        << ", bytes written = " << count(bytesWritten);
  }
};

} // namespace
} // namespace loom
