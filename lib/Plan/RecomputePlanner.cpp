//===- RecomputePlanner.cpp - recomputation as a compiler decision --------===//
//
// --recompute none|selective|full applies one choice to every layer. auto
// searches, per pipeline stage, a ladder of choices ordered by the bytes
// they save per recomputed FLOP: level 0 recomputes nothing; levels 1 to L
// make the stage's first 1 to L layers selective (the attention core:
// 5as/h of a layer's 34 + 5as/h bytes per sbh for a few percent more
// FLOPs, Korthikanti et al. 2022); levels L + 1 to 2L then make its first
// 1 to L layers full (a whole forward each, to keep only 2 bytes per sbh).
// Each level is judged by its memory plan itself (StageMemory: the arenas
// the runtime allocates), never by a formula. A stage's memory depends only
// on its own chunks, so all stages are searched at once: each candidate
// plan sets every unresolved stage to the middle of its interval (binary
// search over the ladder, whose bytes fall as the level rises), and each
// stage takes the lowest level that fits.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/RecomputePlanner.h"
#include "loom/Plan/StageMemory.h"
#include "loom/Plan/TrainingPipeline.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

using namespace mlir;

namespace loom {

std::optional<int64_t> parseByteSize(llvm::StringRef text) {
  text = text.trim();
  struct Unit {
    const char *suffix;
    double scale;
  };
  static const Unit kUnits[] = {{"TiB", 1099511627776.0},
                                {"GiB", 1073741824.0},
                                {"MiB", 1048576.0},
                                {"KiB", 1024.0},
                                {"TB", 1e12},
                                {"GB", 1e9},
                                {"MB", 1e6},
                                {"KB", 1e3},
                                {"kB", 1e3},
                                {"B", 1.0}};
  double scale = 1;
  for (const Unit &u : kUnits)
    if (text.ends_with(u.suffix)) {
      text = text.drop_back(strlen(u.suffix)).trim();
      scale = u.scale;
      break;
    }
  double value = 0;
  if (text.empty() || text.getAsDouble(value) || !std::isfinite(value) ||
      value <= 0)
    return std::nullopt;
  double bytes = value * scale;
  if (bytes < 1 || bytes > double(kMaxArenaBytes) * 8)
    return std::nullopt;
  return int64_t(bytes);
}

namespace {

std::string formatBytes(int64_t bytes) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  if (bytes >= (int64_t(1) << 30))
    os << double(bytes) / 1073741824.0 << " GiB (" << bytes << " bytes)";
  else
    os << double(bytes) / 1048576.0 << " MiB (" << bytes << " bytes)";
  return os.str();
}

std::string stageName(int64_t stage, size_t stages) {
  return stages > 1 ? "pipeline stage " + std::to_string(stage) : "one rank";
}

/// Per pipeline stage, the layers its chunks hold, in order.
std::vector<std::vector<int64_t>> stageLayers(ModuleOp module) {
  int64_t stages = 1;
  if (auto p = module->getAttrOfType<IntegerAttr>(
          LoomDialect::PipelineStagesAttrHelper::getNameStr()))
    stages = std::max<int64_t>(1, p.getInt());
  std::vector<std::set<int64_t>> sets(static_cast<size_t>(stages));
  for (auto fn : module.getOps<func::FuncOp>()) {
    auto forwardOps = fn->getAttrOfType<IntegerAttr>(
        LoomDialect::ForwardOpsAttrHelper::getNameStr());
    if (fn.isExternal() || !forwardOps)
      continue;
    int64_t chunk = 0;
    if (auto c = fn->getAttrOfType<IntegerAttr>(
            LoomDialect::PipelineChunkAttrHelper::getNameStr()))
      chunk = c.getInt();
    int64_t k = 0;
    for (Operation &op : fn.front().without_terminator()) {
      if (k++ >= forwardOps.getInt())
        break;
      if (auto l = op.getAttrOfType<IntegerAttr>(
              LoomDialect::LayerAttrHelper::getNameStr()))
        sets[size_t(chunk % stages)].insert(l.getInt());
    }
  }
  std::vector<std::vector<int64_t>> out;
  for (const auto &s : sets)
    out.emplace_back(s.begin(), s.end());
  return out;
}

/// The per-layer choices of ladder level `level` for a stage's layers.
void addLevel(const std::vector<int64_t> &layers, int64_t level,
              llvm::SmallVectorImpl<std::string> &entries) {
  int64_t n = int64_t(layers.size());
  for (int64_t i = 0; i < n; ++i) {
    const char *choice = level > n + i ? "full"
                         : level > i   ? "selective"
                                       : "none";
    entries.push_back(std::to_string(layers[size_t(i)]) + ":" + choice);
  }
}

/// Recompute (mode and per-layer choices), fuse, build.
FailureOr<std::unique_ptr<plan::PlanT>>
buildOne(ModuleOp module, llvm::StringRef mode, const std::string &perLayer,
         const RecomputeOptions &recompute, const PlanOptions &options) {
  PassManager pm(module.getContext());
  LoomRecomputeOptions pass;
  pass.mode = mode.str();
  pass.perLayer = perLayer;
  pm.addPass(createLoomRecompute(pass));
  if (failed(pm.run(module)))
    return failure();
  if (recompute.fuse && failed(fuseTrainingStep(module)))
    return failure();
  return buildPlan(module, options);
}

} // namespace

FailureOr<std::unique_ptr<plan::PlanT>>
buildPlanWithRecompute(ModuleOp step, const RecomputeOptions &recompute,
                       PlanOptions options, RecomputeSearch *search) {
  const std::string &mode = recompute.mode;
  if (mode != "none" && mode != "selective" && mode != "full" && mode != "auto")
    return step.emitError() << "unknown recomputation '" << mode
                            << "'; use none, selective, full or auto";
  options.recompute = mode;
  if (mode != "auto") {
    FailureOr<std::unique_ptr<plan::PlanT>> built =
        buildOne(step, mode, "", recompute, options);
    if (failed(built) || !recompute.budgetBytes)
      return built;
    for (const StageMemory &m : stageMemory(**built))
      if (m.total() > *recompute.budgetBytes)
        return step.emitError()
               << "with --recompute " << mode << ", "
               << (built->get()->chunks.empty()
                       ? std::string("the rank")
                       : "a rank of pipeline stage " + std::to_string(m.stage))
               << " needs " << formatBytes(m.total())
               << ", over --memory-budget "
               << formatBytes(*recompute.budgetBytes)
               << ": use --recompute auto to recompute only what the budget "
                  "needs, or give the model more ranks (--mesh), a smaller "
                  "--micro-batch-size or a larger budget";
    return built;
  }
  if (!recompute.budgetBytes)
    return step.emitError() << "--recompute auto picks the least "
                               "recomputation that fits a memory budget: give "
                               "--memory-budget (e.g. 80GB)";
  int64_t budget = *recompute.budgetBytes;
  std::vector<std::vector<int64_t>> layers = stageLayers(step);
  size_t stages = layers.size();
  RecomputeSearch local;
  RecomputeSearch &log = search ? *search : local;

  auto perLayerOf = [&](const std::vector<int64_t> &levels) {
    llvm::SmallVector<std::string> entries;
    for (size_t s = 0; s < stages; ++s)
      addLevel(layers[s], levels[s], entries);
    return llvm::join(entries, ",");
  };
  // One candidate: every stage at its level, on a copy of the step.
  auto measure = [&](const std::vector<int64_t> &levels)
      -> FailureOr<std::vector<int64_t>> {
    OwningOpRef<ModuleOp> copy = step.clone();
    FailureOr<std::unique_ptr<plan::PlanT>> built =
        buildOne(*copy, "none", perLayerOf(levels), recompute, options);
    if (failed(built))
      return failure();
    std::vector<int64_t> bytes(stages, 0);
    for (const StageMemory &m : stageMemory(**built))
      if (size_t(m.stage) < stages)
        bytes[size_t(m.stage)] = m.total();
    log.tried.push_back({levels, bytes});
    return bytes;
  };

  std::vector<int64_t> lo(stages, -1), hi(stages), top(stages);
  for (size_t s = 0; s < stages; ++s)
    top[s] = hi[s] = 2 * int64_t(layers[s].size());
  // The ends of the ladder: what fits without recomputing, and whether
  // anything fits at all.
  FailureOr<std::vector<int64_t>> least =
      measure(std::vector<int64_t>(stages, 0));
  if (failed(least))
    return failure();
  FailureOr<std::vector<int64_t>> most = measure(top);
  if (failed(most))
    return failure();
  for (size_t s = 0; s < stages; ++s) {
    if ((*least)[s] <= budget) {
      hi[s] = 0;
      continue;
    }
    lo[s] = 0;
    if ((*most)[s] > budget) {
      bool full = (*most)[s] <= (*least)[s];
      return step.emitError()
             << "--memory-budget " << formatBytes(budget)
             << " is too small for " << stageName(int64_t(s), stages)
             << ": the smallest peak Loom can reach there is "
             << formatBytes(full ? (*most)[s] : (*least)[s])
             << (full ? " (every layer recomputed in full)"
                      : " (without recomputation)")
             << "; give the model more "
                "ranks (--mesh: more pp or tp), a smaller --micro-batch-size "
                "or a larger budget";
    }
  }
  // Binary search on every stage at once: lo does not fit, hi fits.
  for (;;) {
    std::vector<int64_t> levels = hi;
    bool open = false;
    for (size_t s = 0; s < stages; ++s)
      if (hi[s] - lo[s] > 1) {
        levels[s] = lo[s] + (hi[s] - lo[s]) / 2;
        open = true;
      }
    if (!open)
      break;
    FailureOr<std::vector<int64_t>> bytes = measure(levels);
    if (failed(bytes))
      return failure();
    for (size_t s = 0; s < stages; ++s)
      if (hi[s] - lo[s] > 1)
        ((*bytes)[s] <= budget ? hi[s] : lo[s]) = levels[s];
  }
  log.chosen = hi;
  FailureOr<std::unique_ptr<plan::PlanT>> built =
      buildOne(step, "none", perLayerOf(hi), recompute, options);
  if (failed(built))
    return failure();
  // The ladder's bytes fall as the level rises; should a plan not, say so
  // rather than hand out a plan over the budget.
  for (const StageMemory &m : stageMemory(**built))
    if (m.total() > budget)
      return step.emitError()
             << "--recompute auto: the plan chosen for "
             << stageName(m.stage, stages) << " needs "
             << formatBytes(m.total()) << ", over --memory-budget "
             << formatBytes(budget)
             << " (its memory did not fall with more recomputation); choose "
                "--recompute selective or full";
  return built;
}

} // namespace loom
