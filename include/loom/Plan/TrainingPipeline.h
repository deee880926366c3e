//===- TrainingPipeline.h - the training step's passes ----------*- C++ -*-===//
//
// The passes from a model in the loom dialect to the training step the plan
// builder lowers (loom/Plan/PlanBuilder.h): inline, the loss normalised over
// the global batch, with a mesh the partitioned program (and pipeline chunks
// with pp > 1), the precision policy, differentiation, and with a mesh the
// backward's all_slice(all_reduce) pairs as reduce_scatters. One builder
// makes the sequence: loomc runs it (buildTrainingStep) and loom-opt runs it
// as --loom-training-step-pipeline, the way IREE registers its
// build*PassPipeline functions.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_TRAININGPIPELINE_H
#define LOOM_PLAN_TRAININGPIPELINE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

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

/// --loom-training-step-pipeline's options, named as loomc's flags are.
struct TrainingStepPipelineOptions
    : mlir::PassPipelineOptions<TrainingStepPipelineOptions> {
  Option<std::string> precision{
      *this, "precision",
      llvm::cl::desc("Compute precision: f32 (types as they are), bf16 or "
                     "f16 (--loom-mixed-precision)"),
      llvm::cl::init("f32")};
  Option<std::string> mesh{
      *this, "mesh",
      llvm::cl::desc("The mesh: dp=D,pp=P,tp=T (empty: one rank, without "
                     "the dist passes)"),
      llvm::cl::init("")};
  Option<bool> sequenceParallel{
      *this, "sequence-parallel",
      llvm::cl::desc("Split the layernorm and dropout regions along the "
                     "sequence"),
      llvm::cl::init(false)};
  Option<int64_t> chunksPerStage{
      *this, "chunks-per-stage",
      llvm::cl::desc("Virtual pipeline chunks per stage (loomc's --schedule "
                     "interleaved:V)"),
      llvm::cl::init(1)};
  Option<std::string> pipelineLayout{
      *this, "pipeline-layout",
      llvm::cl::desc("Layers per pipeline chunk, comma-separated (default: "
                     "balanced by cost)"),
      llvm::cl::init("")};

  DistOptions distOptions() const;
};

/// Adds the passes up to the partitioned program (loomc --emit=dist) to
/// `pm`, a pass manager on a module: --inline, --symbol-dce,
/// --loom-global-batch-loss, and with a mesh --loom-shard and
/// --loom-partition, then with pp > 1 --loom-pipeline.
void buildDistPassPipeline(mlir::OpPassManager &pm, const DistOptions &dist);

/// Adds the training step's passes to `pm`: buildDistPassPipeline, then
/// --loom-mixed-precision when `compute` is "bf16" or "f16" ("f32" leaves
/// types as they are), --loom-autodiff, and with a mesh
/// --dist-fuse-reduce-scatter.
void buildTrainingStepPassPipeline(mlir::OpPassManager &pm,
                                   llvm::StringRef compute,
                                   const DistOptions &dist);

/// Runs buildDistPassPipeline's passes on `module`.
mlir::LogicalResult buildDistProgram(mlir::ModuleOp module,
                                     const DistOptions &dist);

/// Runs --loom-fuse on every function of a built training step: the fusion
/// regions that become generated kernels (docs/codegen.md). loomc runs it
/// before building the plan (not with --no-fuse); the f64 evaluator and
/// --emit=step see the step before it.
mlir::LogicalResult fuseTrainingStep(mlir::ModuleOp module);

/// Runs buildTrainingStepPassPipeline's passes on `module`.
mlir::LogicalResult buildTrainingStep(mlir::ModuleOp module,
                                      llvm::StringRef compute,
                                      const DistOptions &dist = {});

/// Registers --loom-training-step-pipeline (loom-opt).
void registerTrainingStepPipeline();

} // namespace loom

#endif // LOOM_PLAN_TRAININGPIPELINE_H
