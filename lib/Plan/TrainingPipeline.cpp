//===- TrainingPipeline.cpp - the training step's pass pipeline -----------===//
//
// The one place that says which passes make the training step, in which
// order; docs/architecture.md ("The training step") says why.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/TrainingPipeline.h"
#include "loom/passes/Passes.h"

#include "mlir/Pass/PassManager.h"
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
  // Partitioning comes before differentiation, so the backward holds the
  // collectives' gradients: a fan_out's all_reduce read by an all_gather's
  // all_slice is one reduce_scatter.
  if (!dist.mesh.empty())
    pm.addPass(createDistFuseReduceScatter());
  return pm.run(module);
}

} // namespace loom
