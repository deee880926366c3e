//===- TrainingPipeline.cpp - the training step's pass pipeline -----------===//
//
// The one place that says which passes make the training step, in which
// order; docs/architecture.md ("The training step") says why.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/TrainingPipeline.h"
#include "loom/dialects/Dist/IR/DistOps.h"
#include "loom/passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace loom {

LogicalResult buildDistProgram(ModuleOp module, const DistOptions &dist) {
  PassManager pm(module.getContext());
  pm.addPass(createInlinerPass());
  pm.addPass(createSymbolDCEPass());
  pm.addPass(createLoomGlobalBatchLoss());
  if (!dist.mesh.empty()) {
    LoomShardOptions options;
    options.meshSpec = dist.mesh;
    options.sequenceParallel = dist.sequenceParallel;
    pm.addPass(createLoomShard(options));
    pm.addPass(createLoomPartition());
    std::string error;
    auto axes = parseMeshSpec(dist.mesh, error);
    if (succeeded(axes) && (*axes)[1].second > 1) {
      LoomPipelineOptions pipeline;
      pipeline.stages = (*axes)[1].second;
      pipeline.chunksPerStage = dist.chunksPerStage;
      pipeline.layout = dist.pipelineLayout;
      pm.addPass(createLoomPipeline(pipeline));
    }
  }
  return pm.run(module);
}

LogicalResult buildTrainingStep(ModuleOp module, StringRef compute,
                                const DistOptions &dist) {
  if (failed(buildDistProgram(module, dist)))
    return failure();
  PassManager pm(module.getContext());
  if (compute != "f32") {
    LoomMixedPrecisionOptions options;
    options.compute = compute.str();
    pm.addPass(createLoomMixedPrecision(options));
  }
  pm.addPass(createLoomAutodiff());
  if (failed(pm.run(module)))
    return failure();
  if (dist.mesh.empty())
    return success();
  // all_slice(all_reduce) -> reduce_scatter: the dialect's canonicalization,
  // applied to those ops alone (the rest of the program keeps its form).
  SmallVector<Operation *> slices;
  module.walk([&](dist::AllSliceOp op) { slices.push_back(op); });
  RewritePatternSet patterns(module.getContext());
  dist::AllSliceOp::getCanonicalizationPatterns(patterns, module.getContext());
  GreedyRewriteConfig config;
  config.strictMode = GreedyRewriteStrictness::ExistingOps;
  return applyOpPatternsAndFold(slices, std::move(patterns), config);
}

} // namespace loom
