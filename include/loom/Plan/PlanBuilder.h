//===- PlanBuilder.h - a differentiated model to the plan bundle -*- C++ -*-===//
//
// The last step of the compiler for one rank: the training function (after
// the training-step pipeline, loom/Plan/TrainingPipeline.h) becomes the exec
// level of DESIGN.md, a plan (runtime/Plan.fbs). Each loom op becomes an
// instruction on buffers; parameters, their gradients and AdamW's moments
// get persistent buffers; each parameter gradient is accumulated over
// microbatches where it is produced (a GEMM with beta = 1, an embedding
// gradient scattered in place) or by an `accumulate`; the optimizer program
// follows. Activations get workspace offsets from the memory planner. The
// jobs live in separate files of lib/Plan/ (listed in lib/Plan/Lowering.h).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_PLANBUILDER_H
#define LOOM_PLAN_PLANBUILDER_H

#include "loom/Pipeline/Schedule.h"
#include "loom/runtime/Plan.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <optional>
#include <string>

namespace loom {

/// Every buffer starts at a multiple of this many bytes in its arena.
constexpr int64_t kBufferAlignment = 64;
inline int64_t alignBuffer(int64_t bytes) {
  return (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

/// Bounds on what one rank's plan may hold: the runtime's (validatePlan
/// refuses more), so that the compiler says first what to change. An arena
/// of 2^50 bytes (1 PiB) is far past any device, and keeps every sum of
/// offsets and sizes well inside int64.
constexpr int64_t kMaxArenaBytes = runtime::kMaxArenaBytes;
/// Sequences per step, and microbatches per step (the runtime's bound on a
/// pipeline's m).
constexpr int64_t kMaxBatchSize = int64_t(1) << 30;
constexpr int64_t kMaxMicrobatches = int64_t(1) << 20;
/// Ranks of a mesh, dp × pp × tp (the runtime's bound on each axis).
constexpr int64_t kMaxMeshRanks = runtime::kMaxRanks;

/// a * b, or std::nullopt when either is negative or the product overflows
/// int64 or exceeds `limit`: the one check for every product of sizes.
inline std::optional<int64_t> boundedProduct(int64_t a, int64_t b,
                                             int64_t limit) {
  if (a < 0 || b < 0 || (b != 0 && a > limit / b))
    return std::nullopt;
  return a * b;
}

struct PlanOptions {
  /// Written into the plan for the runtime's defaults (loom-run overrides).
  plan::OptimizerDefaultsT optimizer;
  plan::PrecisionPolicyT precision;
  std::string compiler = "loomc";
  /// Data parallelism all-reduces gradients in buckets of about this many
  /// bytes (PyTorch DDP's default).
  int64_t gradBucketBytes = 25 << 20;
  /// The optimizer's fusion region (docs/codegen.md): AdamW and the
  /// gradient's zeroing as one generated kernel per parameter span
  /// (loomc sets it unless --no-fuse).
  bool fuseOptimizer = false;
  /// ZeRO-1 (Megatron's distributed optimizer): with dp > 1, AdamW's
  /// moments are sharded over dp; a no-op with dp = 1.
  bool distributedOptimizer = false;
  /// The pipeline schedule: gpipe, 1f1b, interleaved, or custom (the text
  /// in scheduleText, in loom::pipeline::scheduleText's form).
  std::string schedule = "1f1b";
  std::string scheduleText;
  /// Where scheduleText came from, for messages (loomc's --schedule file:).
  std::string scheduleName;
  /// What loomc's --recompute asked for (none, selective, full or auto),
  /// recorded in the plan; the choices themselves are the module's
  /// (--loom-recompute, loom/Plan/RecomputePlanner.h).
  std::string recompute = "none";
};

/// Lowers the module's training function. `module` must have been through
/// the training-step pipeline (loom/Plan/TrainingPipeline.h; the builder
/// reads `loom.grad`, `loom.loss_normalizer`, the batch sizes the front end
/// records). Errors are diagnostics.
mlir::FailureOr<std::unique_ptr<plan::PlanT>>
buildPlan(mlir::ModuleOp module, const PlanOptions &options);

/// A pipeline plan's step costs per chunk, from the cost model: a forward
/// costs a third of the chunk's model FLOPs, a backward the rest of what its
/// microbatch program runs (the backward, twice the forward, and what it
/// recomputes).
std::vector<pipeline::StepCost> chunkCosts(const plan::PlanT &plan);

/// Assigns workspace offsets to the plan's buffers so that no two buffers
/// live at once overlap: a buffer lives from the instruction that first
/// writes it to the last that reads it (inputs from before the program,
/// outputs to after it); buffers in one `aliases` group (a reshape's view
/// and its source) share storage and live as one. Greedy by size, each at
/// the lowest offset free for its whole life. Sets arena_bytes[Workspace].
/// `aliasOf[i]` is the buffer i is a view of, or -1. Fails when the
/// workspace would exceed kMaxArenaBytes.
mlir::LogicalResult planWorkspace(plan::PlanT &plan,
                                  const std::vector<int32_t> &aliasOf);

} // namespace loom

#endif // LOOM_PLAN_PLANBUILDER_H
