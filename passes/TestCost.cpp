//===- TestCost.cpp - --loom-test-cost ------------------------------------===//
//
// Reports CostOpInterface results as remarks so lit can check them.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#define DEBUG_TYPE "loom-test-cost"

namespace loom {
#define GEN_PASS_DEF_LOOMTESTCOST
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

struct LoomTestCostPass : impl::LoomTestCostBase<LoomTestCostPass> {
  using LoomTestCostBase::LoomTestCostBase;

  void runOnOperation() override {
    int64_t ops = 0, flops = 0, matmulFlops = 0, bytesRead = 0,
            bytesWritten = 0;
    getOperation().walk([&](CostOpInterface op) {
      int64_t f = op.getFlops(), r = op.getBytesRead(),
              w = op.getBytesWritten();
      ++ops;
      flops += f;
      bytesRead += r;
      bytesWritten += w;
      if (isa<MatmulOp>(op))
        matmulFlops += f;
      if (perOp)
        op->emitRemark() << "flops = " << f << ", bytes read = " << r
                         << ", bytes written = " << w;
    });
    getOperation()->emitRemark()
        << "total of " << ops << " ops: flops = " << flops << " (matmul "
        << matmulFlops << "), bytes read = " << bytesRead
        << ", bytes written = " << bytesWritten;
  }
};

} // namespace
} // namespace loom
