//===- Trace.h - a Chrome trace of a run: where a step goes -----*- C++ -*-===//
//
// A Tracer collects complete events ("ph":"X") of one process and writes
// them as the Trace Event Format JSON that Perfetto (ui.perfetto.dev) and
// chrome://tracing open, as PyTorch's profiler does:
//
//   {"traceEvents":[{"name":"matmul","cat":"op","ph":"X","ts":12,"dur":3,
//                    "pid":7,"tid":1,"args":{...}}, ...],
//    "displayTimeUnit":"ms"}
//
// Each rank of a session has its own track (tid rankTrack(r), named after
// the rank and its mesh coordinates); load-time work that belongs to no rank
// (reading the plan) goes on kHostTrack. Who records what:
//   - Session: the plan's load, each rank's executor creation, a slice per
//     traced step on every rank and, inside it, the microbatches, the
//     pipeline schedule's forwards and backwards, its sends and receives
//     ("cat":"pipeline"), and the optimizer;
//   - a backend's run loop: a slice per instruction (instructionSlice),
//     collectives with "cat":"collective";
//   - the CPU executor's communication thread: the overlapped dp gradient
//     all-reduces on the rank's "comm" track (commTrack), and the
//     optimizer's "wait for all_reduce" on the rank's track;
//   - a JIT kernel compiler: compileKernels(), from the RankContext's tracer
//     while its executor is created.
//
// Tracing is off when the Tracer pointer is null: a backend or the session
// then checks the pointer and reads no clock. Only the steps of
// tracesStep() are traced, so a long run's file stays small.
//
// Thread-safe: the ranks of a session are threads of one process and record
// into one tracer.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRACE_H
#define LOOM_RUNTIME_TRACE_H

#include "loom/runtime/Plan.h"
#include "loom/runtime/Status.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace loom {
namespace runtime {

struct DecodedProgram;
struct StepParams;

/// `text` as a JSON string literal, quotes included: `"` and `\` escaped,
/// control characters as \n, \t, ... or \u00XX, and bytes that are not
/// UTF-8 as U+FFFD (a file name can hold any bytes; JSON must be UTF-8).
std::string jsonQuote(std::string_view text);
/// A double as JSON, the same in every locale (shortest round-trip form);
/// inf and nan, which JSON lacks, as null.
std::string jsonDouble(double value);

/// The args object of a slice, built as JSON as values are added.
class TraceArgs {
public:
  TraceArgs &add(std::string_view key, std::string_view value);
  TraceArgs &add(std::string_view key, const char *value) {
    return add(key, std::string_view(value));
  }
  TraceArgs &add(std::string_view key, const std::string &value) {
    return add(key, std::string_view(value));
  }
  TraceArgs &add(std::string_view key, double value);
  TraceArgs &add(std::string_view key, bool value);
  /// Any integer type (int, int64_t, size_t): written exactly.
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>,
                             int> = 0>
  TraceArgs &add(std::string_view key, T value) {
    return addRaw(key, std::to_string(value));
  }
  bool empty() const { return body_.empty(); }
  /// `{"key":value,...}`.
  std::string json() const { return "{" + body_ + "}"; }

private:
  TraceArgs &addRaw(std::string_view key, const std::string &json);
  std::string body_;
};

class Tracer {
public:
  /// The track of load-time work that belongs to no rank.
  static constexpr int kHostTrack = 0;
  /// Rank r's track (tid): the host's is 0, so the ranks start at 1.
  static int rankTrack(int64_t rank) { return int(rank) + 1; }
  /// Rank r's communication track: the dp gradient all-reduces a backend
  /// overlaps with the backward. After every rank's track (at most
  /// kMaxLocalRanks of them).
  static int commTrack(int64_t rank) { return kCommTrackBase + int(rank); }
  static constexpr int kCommTrackBase = 1 << 16;

  /// Times start now: every ts is microseconds since the tracer was made.
  Tracer();
  Tracer(const Tracer &) = delete;
  Tracer &operator=(const Tracer &) = delete;

  /// Microseconds since the tracer was made (steady clock).
  int64_t nowUs() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now() - epoch_)
        .count();
  }

  /// Steps [first, last] are traced (default: none). Set before the steps
  /// run, not while ranks record.
  void setSteps(int64_t first, int64_t last) {
    firstStep_ = first;
    lastStep_ = last;
  }
  bool tracesStep(int64_t step) const {
    return step >= firstStep_ && step <= lastStep_;
  }
  int64_t firstStep() const { return firstStep_; }
  int64_t lastStep() const { return lastStep_; }

  /// The process's name in the viewer ("loom-run gpt.plan").
  void nameProcess(std::string_view name);
  /// A track's name ("rank 0 (dp=0, pp=0, tp=0)"); the tracks are sorted
  /// by their number.
  void nameTrack(int track, std::string_view name);

  /// A complete event: `name` on `track` from `beginUs` for `durUs`
  /// microseconds, in category `cat`, with `args`.
  void complete(int track, std::string_view name, std::string_view cat,
                int64_t beginUs, int64_t durUs,
                const TraceArgs &args = TraceArgs());

  /// The JIT kernel compiler's hook: one "compile kernels" slice
  /// ("cat":"compile") with args {cache: hit|miss, seconds, kernels}.
  void compileKernels(int track, int64_t beginUs, int64_t durUs, bool cacheHit,
                      double seconds, int64_t kernels);

  /// Events recorded so far (metadata included).
  size_t size() const;
  /// The whole trace as JSON.
  std::string json() const;
  /// Writes json() to `path` atomically (runtime/Files.h).
  Status write(const std::string &path) const;

private:
  void append(std::string event);

  std::chrono::steady_clock::time_point epoch_;
  int64_t pid_;
  int64_t firstStep_ = 1, lastStep_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> events_; // each one event's JSON object
};

/// Times a scope into a complete event; does nothing (reads no clock,
/// copies no string) when the tracer is null.
class TraceScope {
public:
  TraceScope(Tracer *tracer, int track, std::string_view name,
             std::string_view cat)
      : tracer_(tracer) {
    if (!tracer_)
      return;
    track_ = track;
    name_ = name;
    cat_ = cat;
    begin_ = tracer_->nowUs();
  }
  ~TraceScope() { end(); }
  /// Records the slice now, not at the end of the scope.
  void end() {
    if (tracer_)
      tracer_->complete(track_, name_, cat_, begin_, tracer_->nowUs() - begin_,
                        args_);
    tracer_ = nullptr;
  }
  TraceScope(const TraceScope &) = delete;
  TraceScope &operator=(const TraceScope &) = delete;

  /// Whether the scope records (the tracer is not null): set args only then.
  explicit operator bool() const { return tracer_ != nullptr; }
  TraceArgs &args() { return args_; }

private:
  Tracer *tracer_;
  int track_ = 0;
  std::string name_, cat_;
  int64_t begin_ = 0;
  TraceArgs args_;
};

/// The slice of instruction `index` of `program`, run from `beginUs` to
/// now: named by its opcode (or a generated kernel's `name` attribute),
/// "cat":"collective" for the collectives (and grad_norm's reduction),
/// "op" for the rest; args: the model source location, the instruction,
/// the program, step and microbatch, bytes (inputs + outputs) and FLOPs
/// (2·M·N·K per GEMM; 0 for every other instruction).
void instructionSlice(Tracer &tracer, int track, const plan::PlanT &plan,
                      const DecodedProgram &program, size_t index,
                      const StepParams &params, int64_t beginUs);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_TRACE_H
