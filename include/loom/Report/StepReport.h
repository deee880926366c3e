//===- StepReport.h - a plan's memory, FLOPs, traffic and step time -*- C++
//-*-===//
//
// What `loomc --explain` reports of a built plan, per pipeline stage (every
// rank of a stage runs the same plan): the bytes it allocates by kind and
// the most it has live over the step, its FLOPs per step, the bytes it
// sends per mesh axis, the pipeline's bubble, and for a device description
// a predicted step time, MFU and whether each stage fits. Everything is read
// from the plan (its buffers, programs, chunks and stage schedules), not
// from a formula; docs/memory.md ("The --explain report") says how.
//
// Plain C++17 on plan::PlanT and the runtime's decoder: no MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_REPORT_STEPREPORT_H
#define LOOM_REPORT_STEPREPORT_H

#include "loom/Plan/StageMemory.h"
#include "loom/Report/DeviceModel.h"
#include "loom/runtime/Plan.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace loom {

/// The fraction of peak FLOP/s a step's compute is assumed to reach:
/// GEMM-bound training steps measure 56-61% MFU end to end (llm.c on
/// A100, GPU-NOTES.md) and 72% (FlashAttention-2's GPT training); MFU
/// includes the bubble and communication that the prediction adds itself.
constexpr double kDefaultComputeEfficiency = 0.6;

struct StepReportOptions {
  std::optional<DeviceModel> device;
  double computeEfficiency = kDefaultComputeEfficiency;
};

/// Per mesh axis, in Plan.mesh's order: dp, pp, tp.
enum MeshAxisKind { kDp = 0, kPp = 1, kTp = 2, kNumAxes = 3 };
const char *meshAxisKindName(int axis);

/// One point of memory over the step: from `time` on, `bytes` live.
struct MemoryPoint {
  double time;
  int64_t bytes;
};

struct StageReport {
  int64_t stage = 0;
  StageMemory memory;
  /// The most bytes live at once over the step: persistent and shadows,
  /// plus the stash slots occupied, plus the live workspace buffers of the
  /// run in progress (the union of their byte ranges at each instruction).
  int64_t peakLive = 0;
  /// The most workspace bytes live in one run, and stash slots occupied.
  int64_t peakWorkspaceLive = 0, peakStashSlots = 0;
  /// Per rank of this stage, per step.
  double hardwareFlops = 0, modelFlops = 0;
  /// Bytes this rank sends per step, per axis (ring algorithms).
  double commBytes[kNumAxes] = {0, 0, 0};
  /// Of commBytes: what the optimizer program and the tied-gradient
  /// exchange send, after the pipeline.
  double commBytesAfter[kNumAxes] = {0, 0, 0};

  // The prediction (with a device): seconds.
  double computeSeconds = 0; ///< all runs' FLOPs at the rate
  double commSeconds[kNumAxes] = {0, 0, 0};
  double pipelineEnd = 0;   ///< when its last schedule step ends
  double afterPipeline = 0; ///< its dp reduction, tied exchange, optimizer
  bool fits = true;         ///< memory.total() <= the device's memory

  /// Memory over the step (time: seconds with a device, else FLOPs of work
  /// per rank).
  std::vector<MemoryPoint> timeline;
};

struct StepReport {
  std::string model, schedule, recompute, computeType;
  int64_t dp = 1, pp = 1, tp = 1, microbatches = 1, chunksPerStage = 1;
  std::vector<StageReport> stages;
  /// All ranks, per step: step_flops; model_flops (or step_flops when the
  /// plan does not say: modelFlopsFromPlan false).
  double hardwareFlops = 0, modelFlops = 0;
  bool modelFlopsFromPlan = false;
  /// The bubble with each step's FLOPs as its cost (no communication).
  double bubbleFraction = 0;
  /// The old --explain's schedule JSON (null without a pipeline).
  std::string pipelineJson = "null";

  std::optional<DeviceModel> device;
  double computeEfficiency = kDefaultComputeEfficiency;
  double peakFlops = 0; ///< per rank, for the plan's compute type
  double axisBandwidth[kNumAxes] = {0, 0, 0};
  bool axisIntraNode[kNumAxes] = {true, true, true};
  double pipelineSeconds = 0; ///< the simulated schedule's makespan
  double afterPipelineSeconds = 0;
  double stepSeconds = 0;
  double predictedBubble = 0; ///< the bubble with the predicted times
  double mfu = 0;
  bool allFit = true;

  int64_t ranks() const { return dp * pp * tp; }
};

StepReport buildStepReport(const plan::PlanT &plan,
                           const StepReportOptions &options = {});

/// The table for people: per stage rows, the totals, the prediction.
std::string stepReportText(const StepReport &report);
/// One JSON object (its keys: docs/memory.md).
std::string stepReportJson(const StepReport &report);
/// Memory over the step, one line per stage, with the device's capacity.
std::string memorySvg(const StepReport &report);

} // namespace loom

#endif // LOOM_REPORT_STEPREPORT_H
