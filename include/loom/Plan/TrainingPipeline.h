//===- TrainingPipeline.h - the training step's passes ----------*- C++ -*-===//
//
// The passes from a model in the loom dialect to the training step the plan
// builder lowers (loom/Plan/PlanBuilder.h): inline, the loss normalised over
// the global batch, with a mesh the partitioned program (and pipeline chunks
// with pp > 1), the precision policy, differentiation, and with a mesh the
// backward's all_slice(all_reduce) pairs as reduce_scatters.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_TRAININGPIPELINE_H
#define LOOM_PLAN_TRAININGPIPELINE_H

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace loom {

/// The mesh to compile for (loomc --mesh, --sequence-parallel). An empty
/// mesh compiles for one rank without the dist passes.
struct DistOptions {
  std::string mesh;
  bool sequenceParallel = false;
  /// Pipeline parallelism (the mesh's pp > 1): virtual chunks per stage and
  /// an optional layout (layers per chunk, "3,3,2,2").
  int64_t chunksPerStage = 1;
  std::string pipelineLayout;
};

/// The passes up to the partitioned program (loomc --emit=dist): inline,
/// normalise the loss over the global batch (--loom-global-batch-loss), and
/// with a mesh, --loom-shard and --loom-partition.
mlir::LogicalResult buildDistProgram(mlir::ModuleOp module,
                                     const DistOptions &dist);

/// The training step's passes on a model module: buildDistProgram, then the
/// precision policy when `compute` is "bf16" or "f16"
/// (--loom-mixed-precision), and differentiation (--loom-autodiff). With a
/// mesh, the backward's all_slice(all_reduce) pairs become reduce_scatters
/// (--dist-fuse-reduce-scatter). `compute` "f32" leaves types as they are.
mlir::LogicalResult buildTrainingStep(mlir::ModuleOp module,
                                      llvm::StringRef compute,
                                      const DistOptions &dist = {});

} // namespace loom

#endif // LOOM_PLAN_TRAININGPIPELINE_H
