//===- Executor.h - the interface every backend implements ------*- C++ -*-===//
//
// A backend runs one rank's plan (a whole plan or one pipeline chunk). It
// prepares the plan once, when it is created: allocates the arenas, decodes
// every instruction (loom/runtime/Decoder.h) and binds each record to a
// kernel. Then, step after step, the runtime enqueues programs or ranges of
// them, moves buffers in and out with upload/download, and reads the step's
// outputs once. Nothing else crosses the interface: the runtime never holds
// a pointer into a backend's memory, so a backend's buffers may live on a
// device. Collectives are instructions of the plan, which the backend runs
// through the rank's communicator on its own buffers.
//
// Prepare once, run many: run() enqueues work that was bound at creation
// (on CUDA, a range of a program maps onto a captured graph).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_EXECUTOR_H
#define LOOM_RUNTIME_EXECUTOR_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Optimizer.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

class Tracer;

/// What the instructions of one step read besides the buffers: set by the
/// runtime for each run().
struct StepParams {
  uint64_t seed = 0;
  /// The step being run, from 1: it keys the dropout masks.
  int64_t step = 1;
  /// false in evaluation (Session::evaluate): dropout passes its input
  /// through unchanged, as a model in eval() mode.
  bool training = true;
  /// The microbatch being run (its index in the global batch): its tensors'
  /// elements start at global index microbatch · (elements per microbatch),
  /// for dropout.
  int64_t microbatch = 0;
  /// This run is the step's last over the microbatch program's backward
  /// (Session::runRank's last microbatch; a pipeline chunk's last backward):
  /// a backend overlapping the dp gradient all-reduces starts each bucket's
  /// once its gradients are final (loom/runtime/GradientBuckets.h).
  bool lastMicrobatch = false;
  /// The optimizer updates made so far, plus this one: AdamW's bias
  /// correction (a skipped step makes no update).
  int64_t optimizerStep = 1;
  /// The loss gradient's seed (1, or the f16 loss scale).
  double lossScale = 1;
  /// 1 / (the loss normaliser · the loss scale): turns the accumulated
  /// gradients into the gradients of the global-batch mean.
  double gradScale = 1;
  double clipGrad = 0, lr = 0, weightDecay = 0;
  AdamW adam;
};

/// What a step leaves with the backend, read when the step ends
/// (readStepOutputs synchronises with the backend; a pipeline stage also
/// reads its chunks' sums of squares at the norm).
struct StepOutputs {
  /// The microbatches' losses added by accumulateLoss, in double.
  double lossSum = 0;
  /// A pipeline chunk's grad_norm (`partial`): its sum of squares.
  double gradSquares = 0;
  /// grad_norm's global norm of the true gradients (before clipping), and
  /// whether it is inf or nan: then adamw leaves everything as it is.
  double gradNorm = 0;
  bool nonFinite = false;
};

/// Which rank of the plan's mesh an executor runs, and how it reaches the
/// others. A single-rank plan needs neither.
struct RankContext {
  /// The rank's coordinate on each of the plan's mesh axes (empty: all 0).
  std::vector<int64_t> coords;
  /// The collectives' transport; null for a plan without collectives.
  Communicator *comm = nullptr;
  /// Run the plan's generated kernels (compiled at load; docs/codegen.md).
  /// false: each kernel instruction runs its reference form instead.
  bool generatedKernels = true;
  /// The GPU this rank runs on (a CUDA device index; the cuda backend).
  int device = 0;
  /// Capture the microbatch program as a CUDA graph and replay it (the
  /// cuda backends; loom-run --no-cuda-graph turns it off).
  bool cudaGraphs = true;
  /// Where the backend records a slice per instruction it runs in a traced
  /// step (Tracer::tracesStep), on track `traceTrack`; null: tracing is
  /// off, and the run loop only checks this pointer
  /// (loom/runtime/Trace.h).
  Tracer *tracer = nullptr;
  int traceTrack = 0;
  /// Overlap the dp gradient buckets' all-reduces with the last
  /// microbatch's backward, on a communication thread of the executor (the
  /// cpu backend; SessionOptions::overlapGradReduce). The results are the
  /// same bits either way.
  bool overlapGradReduce = true;
  /// Buffers the runtime writes after the microbatches and before the
  /// optimizer (a pipeline's tied gradients): their buckets are not
  /// overlapped.
  std::vector<int32_t> writtenAfterMicrobatches;
  /// The track of the overlapped all-reduces in a traced step
  /// (Tracer::commTrack).
  int commTraceTrack = 0;
};

/// The plan's two programs.
enum class ProgramKind { Microbatch, Optimizer };

class Executor {
public:
  virtual ~Executor();

  /// The backend's name ("cpu").
  virtual const char *backend() const = 0;

  /// Runs instructions [begin, end) of a program (a pipeline chunk's
  /// forward, an optimizer's norm). An error (a token id outside the
  /// vocabulary, say) names the instruction and its model source position;
  /// a device backend, which does not wait for its kernels inside a step,
  /// reports such a check from readStepOutputs instead.
  virtual Status run(ProgramKind program, const StepParams &params,
                     size_t begin = 0, size_t end = SIZE_MAX) = 0;

  /// Copies `bytes` (the buffer's size) from host memory into a buffer, or
  /// out of it.
  virtual Status upload(int32_t buffer, const void *data, size_t bytes) = 0;
  virtual Status download(int32_t buffer, void *data, size_t bytes) = 0;
  /// Clears a buffer's storage.
  virtual Status zero(int32_t buffer) = 0;

  /// Point to point between pipeline stages: the buffer's storage to or
  /// from rank `peer` of mesh axis `axis`, as 4-byte words, with `tag`.
  virtual Status send(int32_t buffer, int axis, int64_t peer, int64_t tag,
                      const std::string &what) = 0;
  virtual Status recv(int32_t buffer, int axis, int64_t peer, int64_t tag,
                      const std::string &what) = 0;

  /// A pipeline chunk's stash (the plan's Stash arena, one copy per
  /// microbatch in flight: plan.stash_slots): the copy that later run(),
  /// upload, download, send and recv use, until the next call. Slot 0 at
  /// creation; an error for a slot the plan does not have.
  virtual Status selectStashSlot(int64_t slot) = 0;

  /// The bytes the executor holds for the plan: its arenas (the stash's
  /// slots included) and what the backend adds itself (the 16-bit operands'
  /// shadows, step slots, scratch): what loomc --explain predicts.
  struct MemoryUse {
    int64_t arenas = 0, runtime = 0;
  };
  virtual MemoryUse memoryUse() const = 0;

  /// Clears the step outputs; called before a step's first run().
  virtual void beginStep() = 0;
  /// Adds the f32 scalar in `loss` to the step's loss sum, in program
  /// order with the runs.
  virtual Status accumulateLoss(int32_t loss) = 0;
  /// Waits for the work enqueued and reads the step outputs.
  virtual Result<StepOutputs> readStepOutputs() = 0;
  /// A pipeline's norm, summed by the runtime over stages and chunks: what
  /// adamw then clips by (and skips on, when it is not finite).
  virtual void setGradNorm(double norm) = 0;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_EXECUTOR_H
