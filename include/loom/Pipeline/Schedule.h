//===- Schedule.h - pipeline-parallel schedules as data ---------*- C++ -*-===//
//
// Pipeline-parallel schedules (Narayanan et al. 2021, "Efficient Large-Scale
// Language Model Training on GPU Clusters Using Megatron-LM"): GPipe,
// 1F1B (PipeDream-Flush) and interleaved 1F1B, as per-stage step lists, with
// a deadlock check, a timing simulation, and text / JSON / SVG renderings.
//
// Plain C++17 (std only): shared by the compiler and the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PIPELINE_SCHEDULE_H
#define LOOM_PIPELINE_SCHEDULE_H

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace loom {
namespace pipeline {

enum class ScheduleKind { GPipe, OneFOneB, Interleaved };

/// "gpipe", "1f1b" or "interleaved".
const char *scheduleKindName(ScheduleKind kind);

/// One unit of work of a stage: the forward or backward pass of one
/// microbatch through one model chunk.
struct Step {
  enum Kind { Forward, Backward } kind;
  int64_t microbatch; ///< in [0, m)
  /// Global virtual model chunk index in [0, p*v). Chunk c runs on stage
  /// c % p; stage s holds chunks s, s+p, s+2p, ... Chunk c feeds chunk c+1.
  int64_t chunk;

  bool operator==(const Step &o) const {
    return kind == o.kind && microbatch == o.microbatch && chunk == o.chunk;
  }
  bool operator!=(const Step &o) const { return !(*this == o); }
};

struct Schedule {
  ScheduleKind kind;
  int64_t stages;         ///< p
  int64_t chunksPerStage; ///< v
  int64_t microbatches;   ///< m
  /// Per pipeline stage, the ordered steps it runs.
  std::vector<std::vector<Step>> perStage;
};

/// Builds the schedule, or returns std::nullopt with a message in `error`.
/// Needs p >= 1, m >= 1; GPipe and 1F1B need v == 1; Interleaved needs
/// v >= 2 and m % p == 0.
///
/// - GPipe: each stage runs F for microbatches 0..m-1, then B for
///   microbatches 0..m-1 (ascending, as labelled in Figure 3 of Narayanan et
///   al. and as Megatron runs it: forward-only pass, then backward in FIFO
///   order).
/// - 1F1B: Megatron's forward_backward_pipelining_without_interleaving:
///   stage s runs min(p-s-1, m) warm-up forwards, then alternates F/B in the
///   steady state, then the remaining backwards.
/// - Interleaved: Megatron's forward_backward_pipelining_with_interleaving:
///   warm-up (p-s-1)*2 + (v-1)*p virtual steps, capped at m*v (as in
///   Megatron-core; the 2021 Megatron-LM also ran all m*v forwards first
///   when m == p, which is not done here), then F/B pairs, then the remaining
///   backwards; virtual id k maps to chunk-in-stage (k % (p*v)) / p
///   (reversed for backward) and microbatch (k / (p*v)) * p + k % p.
///
/// Dependencies: F(mb, c) needs F(mb, c-1) (c > 0); B(mb, c) needs F(mb, c)
/// and B(mb, c+1) (c < p*v-1).
std::optional<Schedule> buildSchedule(ScheduleKind kind, int64_t p, int64_t v,
                                      int64_t m, std::string &error);

/// Cost of one chunk's forward and backward step (any time unit).
struct StepCost {
  double forward, backward;
};

struct Simulation {
  bool deadlockFree = false;
  /// Empty when deadlock-free; otherwise which stages are stuck waiting on
  /// what, e.g. "stage 1 waits at step 3 (B mb 0 chunk 1) for B mb 0 chunk
  /// 2; stage 0 waits at step 0 (...) for ..." (step indices 0-based).
  std::string deadlock;
  /// Time the last step ends (steps start at 0). +infinity on deadlock.
  double makespan = 0;
  /// Narayanan et al.: (makespan - ideal) / ideal, ideal = m * the largest
  /// per-stage sum over its chunks of (F + B) cost. +infinity on deadlock.
  double bubbleFraction = 0;
  /// Per stage: the most (microbatch, chunk) pairs whose forward ran but whose
  /// backward has not (activations held), following the stage's step order.
  std::vector<int64_t> maxInFlight;
  /// Per stage, per step: (start, end). NaN for steps that never ran
  /// (deadlock).
  std::vector<std::vector<std::pair<double, double>>> times;
};

/// Simulates every stage running its steps in order: a step starts when its
/// stage is free and its dependencies have finished (sends are buffered and
/// instantaneous). Deadlock = no stage can make progress while steps remain;
/// a dependency missing from the schedule is waited on forever. costs[c] is
/// chunk c's cost; a missing entry costs {1, 2}.
Simulation simulate(const Schedule &s, const std::vector<StepCost> &costs);

/// Validates an arbitrary schedule (e.g. hand-written): p, v, m >= 1, one
/// step list per stage, every (F/B, mb, chunk) appears exactly once and on
/// stage chunk % p, then simulates it with costs {1, 2} per chunk. Returns ""
/// when valid, else the error (a deadlock names the stuck stages).
std::string validateSchedule(const Schedule &s);

/// Reads a schedule in scheduleText's form (one "stage S: F0.0 B0.0 ..." line
/// per stage) for p stages, v chunks per stage and m microbatches; std::nullopt
/// with a message in `error` when it does not parse or validateSchedule
/// rejects it (a deadlock among them).
std::optional<Schedule> parseScheduleText(const std::string &text, int64_t p,
                                          int64_t v, int64_t m,
                                          std::string &error);
/// The chunks per stage a schedule in scheduleText's form uses over p
/// stages (its largest chunk index + 1 over p, rounded up), checking only
/// its lines' form: std::nullopt with a message in `error` ("line N: ...")
/// when a line does not parse or the text has no steps at all.
std::optional<int64_t> scheduleTextChunks(const std::string &text, int64_t p,
                                          std::string &error);
/// One line per stage, "stage 0: F0.0 F1.0 B0.0 ...\n" (F<mb>.<chunk>).
std::string scheduleText(const Schedule &s);

/// A table, one row per stage: its steps, the most microbatches in flight
/// and the share of the makespan it is idle; then the bubble fraction. (On
/// deadlock, the stuck stages instead.) Its size grows with p, not with m.
std::string explainSummary(const Schedule &s, const Simulation &sim);

/// JSON object: schedule, stages, chunks_per_stage, microbatches,
/// bubble_fraction, makespan (null when not finite), deadlock_free, deadlock,
/// per_stage: [{stage, max_in_flight, steps, idle_fraction}] (idle_fraction:
/// the share of the makespan the stage is idle, null on deadlock).
std::string explainJson(const Schedule &s, const Simulation &sim);

/// Self-contained SVG 1.1 timeline in the style of Figures 3/4 of Narayanan
/// et al.: one row per stage ("Device 1..p"), time on x, one
/// <rect class="step"> per step that ran, labelled with its 1-based
/// microbatch; colour per model chunk of a device (chunk / p), forward lighter,
/// backward darker; idle time blank; legend and title.
std::string scheduleSvg(const Schedule &s, const Simulation &sim);

} // namespace pipeline
} // namespace loom

#endif // LOOM_PIPELINE_SCHEDULE_H
