//===- TrainingPipeline.cpp - the training step's pass pipeline -----------===//
//
// The one place that says which passes make the training step, in which
// order; docs/architecture.md ("The training step") says why.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/TrainingPipeline.h"
#include "loom/passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

namespace loom {

DistOptions TrainingStepPipelineOptions::distOptions() const {
  DistOptions dist;
  dist.mesh = mesh;
  dist.sequenceParallel = sequenceParallel;
  dist.chunksPerStage = chunksPerStage;
  dist.pipelineLayout = pipelineLayout;
  return dist;
}

void buildDistPassPipeline(OpPassManager &pm, const DistOptions &dist) {
  pm.addPass(createInlinerPass());
  pm.addPass(createSymbolDCEPass());
  pm.addPass(createLoomGlobalBatchLoss());
  if (dist.mesh.empty())
    return;
  LoomShardOptions shard;
  shard.meshSpec = dist.mesh;
  shard.sequenceParallel = dist.sequenceParallel;
  pm.addPass(createLoomShard(shard));
  pm.addPass(createLoomPartition());
  // A mesh that does not parse gets its message from --loom-shard.
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

void buildTrainingStepPassPipeline(OpPassManager &pm, StringRef compute,
                                   const DistOptions &dist) {
  buildDistPassPipeline(pm, dist);
  if (compute != "f32") {
    LoomMixedPrecisionOptions precision;
    precision.compute = compute.str();
    pm.addPass(createLoomMixedPrecision(precision));
  }
  pm.addPass(createLoomAutodiff());
  // Partitioning comes before differentiation, so the backward holds the
  // collectives' gradients: a fan_out's all_reduce read by an all_gather's
  // all_slice is one reduce_scatter.
  if (!dist.mesh.empty())
    pm.addPass(createDistFuseReduceScatter());
}

LogicalResult buildDistProgram(ModuleOp module, const DistOptions &dist) {
  PassManager pm(module.getContext());
  buildDistPassPipeline(pm, dist);
  return pm.run(module);
}

LogicalResult buildTrainingStep(ModuleOp module, StringRef compute,
                                const DistOptions &dist) {
  PassManager pm(module.getContext());
  buildTrainingStepPassPipeline(pm, compute, dist);
  return pm.run(module);
}

LogicalResult fuseTrainingStep(ModuleOp module) {
  PassManager pm(module.getContext());
  pm.addNestedPass<func::FuncOp>(createLoomFuse());
  return pm.run(module);
}

void registerTrainingStepPipeline() {
  PassPipelineRegistration<TrainingStepPipelineOptions>(
      "loom-training-step-pipeline",
      "The training step loomc builds: the partitioned program on a mesh, "
      "the precision policy, the gradients",
      [](OpPassManager &pm, const TrainingStepPipelineOptions &options) {
        buildTrainingStepPassPipeline(pm, options.precision,
                                      options.distOptions());
      });
}

} // namespace loom
