//===- RecomputePlanner.h - recomputation as a compiler decision -*- C++
//-*-===//
//
// loomc's --recompute none|selective|full|auto and --memory-budget: from the
// differentiated training step (loom/Plan/TrainingPipeline.h) to the plan,
// through --loom-recompute, --loom-fuse and the plan builder. `auto` picks,
// per pipeline stage, the least recomputation whose memory plan fits the
// budget (docs/memory.md, "Choosing the recomputation").
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PLAN_RECOMPUTEPLANNER_H
#define LOOM_PLAN_RECOMPUTEPLANNER_H

#include "loom/Plan/PlanBuilder.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace loom {

struct RecomputeOptions {
  /// none, selective, full or auto.
  std::string mode = "none";
  /// Bytes one rank may hold (the arenas of StageMemory); auto needs it,
  /// and with another mode a plan over it is an error.
  std::optional<int64_t> budgetBytes;
  /// Run --loom-fuse before building the plan (loomc's default).
  bool fuse = true;
};

/// What `auto` tried, for the report: per candidate plan, each stage's
/// recomputation level and bytes.
struct RecomputeSearch {
  struct Candidate {
    std::vector<int64_t> levels; // per stage
    std::vector<int64_t> bytes;  // per stage: StageMemory::total()
  };
  std::vector<Candidate> tried;
  /// Per stage, the level chosen and its layers' choices.
  std::vector<int64_t> chosen;
};

/// Parses "80GB", "80GiB", "512MiB", "1.5e9" or a plain byte count (decimal
/// units are powers of 1000, binary ones of 1024); nullopt when the text is
/// not a positive size.
std::optional<int64_t> parseByteSize(llvm::StringRef text);

/// Builds the plan of `step` (consumed: rewritten in place) with the
/// recomputation `recompute` asks for. Errors are diagnostics on the module.
mlir::FailureOr<std::unique_ptr<plan::PlanT>>
buildPlanWithRecompute(mlir::ModuleOp step, const RecomputeOptions &recompute,
                       PlanOptions options, RecomputeSearch *search = nullptr);

} // namespace loom

#endif // LOOM_PLAN_RECOMPUTEPLANNER_H
