//===- FuseReduceScatter.cpp - --dist-fuse-reduce-scatter -----------------===//
//
// all_slice(all_reduce sum x) over one axis becomes reduce_scatter x. The
// rewrite is the Dist dialect's canonicalization of all_slice
// (dialects/Dist/IR/DistOps.cpp), applied here to the all_slices alone: the
// training step wants this one rewrite after differentiation, not every
// canonicalization and fold of the program.
//
//===----------------------------------------------------------------------===//

#include "loom/passes/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace loom {
#define GEN_PASS_DEF_DISTFUSEREDUCESCATTER
#include "passes/Passes.h.inc"
} // namespace loom

using namespace mlir;

namespace loom {
namespace {

struct DistFuseReduceScatterPass
    : impl::DistFuseReduceScatterBase<DistFuseReduceScatterPass> {
  void runOnOperation() override {
    SmallVector<Operation *> slices;
    getOperation().walk([&](dist::AllSliceOp op) { slices.push_back(op); });
    RewritePatternSet patterns(&getContext());
    dist::AllSliceOp::getCanonicalizationPatterns(patterns, &getContext());
    // Only the all_slices found above are rewritten: the reduce_scatters
    // created, and every other op, are left as they are.
    GreedyRewriteConfig config;
    config.strictMode = GreedyRewriteStrictness::ExistingOps;
    if (failed(applyOpPatternsAndFold(slices, std::move(patterns), config)))
      signalPassFailure();
  }
};

} // namespace
} // namespace loom
