//===- Session.h - Loom's runtime API: train a compiled plan ----*- C++ -*-===//
//
// What an application embeds (DESIGN.md, "Runtime"): open a plan, initialise
// or load the parameters, run training steps, read the loss and metrics,
// save. A Session runs every rank of the plan's mesh in this process, each
// rank a thread with its own executor of the backend named in the options
// (loom/runtime/Backend.h), joined by the `local` communicator. Checkpoints
// and parameter() hold whole (global) tensors, so they do not depend on the
// mesh. The session reaches the backend only through the Executor
// interface: it uploads inputs, enqueues programs, and reads the step's
// outputs once.
//
// The implementation is split by job: Session.cpp (opening a plan, the
// step loop), Evaluate.cpp (evaluate(): the forward only, dropout off),
// PipelineRunner.cpp (a pipeline stage's schedule: stashed
// activations, message tags, tied gradients) and StateTensors.cpp (the
// whole tensors of parameters and moments gathered from and scattered to
// the ranks' blocks: initialisation, checkpoints).
//
//   auto session = loom::runtime::Session::open("gpt.plan", {});
//   (*session)->initializeParameters();
//   auto data = loom::runtime::TokenDataset::open(...);
//   auto metrics = (*session)->step(*data);   // metrics->loss, ->gradNorm
//   (*session)->save("checkpoints/step-100");
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SESSION_H
#define LOOM_RUNTIME_SESSION_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Data.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

class Executor;
class Tracer;
struct StepParams;

/// Run-time settings. Unset optimizer fields take the plan's defaults
/// (loomc's --lr, ...); loom-run's options of the same names set them.
struct SessionOptions {
  /// The backend every rank runs on (loom/runtime/Backend.h's names).
  std::string backend = "cpu";
  /// Run the plan's generated kernels; false: their reference forms
  /// (loom-run --no-jit).
  bool generatedKernels = true;
  /// The GPU of every rank (the cuda backend; loom-run --device N): a
  /// single-GPU run, where every rank of the mesh shares the device.
  int device = 0;
  /// CUDA graphs for the microbatch program (loom-run --no-cuda-graph).
  bool cudaGraphs = true;
  /// Overlap the dp gradient buckets' all-reduces with the last
  /// microbatch's backward (the cpu backend; the same bits either way;
  /// loom-run --no-overlap-grad-reduce).
  bool overlapGradReduce = true;
  uint64_t seed = 1234;
  std::optional<double> lr, minLr, weightDecay, clipGrad, beta1, beta2, eps;
  std::optional<int64_t> warmupSteps, decaySteps;
  std::optional<std::string> decayStyle;
  /// The rank count the launcher provides; it must be the plan's mesh size
  /// (unset: run every rank of the plan's mesh).
  std::optional<int64_t> ranks;
  /// How long a rank waits in a collective for the others before the step
  /// fails with an error naming the rank and the collective.
  double collectiveTimeoutSeconds = 300;
  /// One rank per process (loom/runtime/Job.h): this session runs only mesh
  /// rank processComm->rank(), joined to the job's other processes by
  /// processComm (it must outlive the session; its mesh must be the
  /// plan's). Null: every rank of the mesh runs here, each a thread.
  Communicator *processComm = nullptr;
  /// Records the run (loom/runtime/Trace.h): the plan's load, each rank's
  /// executor, and every rank's work in the steps the tracer traces. It
  /// must outlive the session; null: no tracing, at no cost.
  Tracer *tracer = nullptr;
};

struct StepMetrics {
  int64_t step = 0;        // the step just run, from 1
  double loss = 0;         // mean over the global batch's counted tokens
  double gradNorm = 0;     // global norm before clipping
  double lr = 0;           // the learning rate this step used
  double lossScale = 1;    // f16's loss scale this step used
  bool skipped = false;    // inf/nan gradients: no update was made
  int64_t tokens = 0;      // tokens processed (global batch × sequence)
  double seconds = 0;      // wall time of the step
};

/// A validation pass (Session::evaluate).
struct EvalMetrics {
  double loss = 0;    // mean over the batches' counted tokens (or microbatches)
  int64_t tokens = 0; // tokens processed (iterations × global batch × sequence)
  double seconds = 0; // wall time of the pass
};

/// The most ranks a session runs, each a thread of this process with its
/// own arenas (4096: beyond the cores of any one machine; a larger mesh
/// runs one rank per process).
constexpr int64_t kMaxLocalRanks = 4096;

class Session {
public:
  /// Reads and checks the plan and prepares it on the options' backend.
  static Result<std::unique_ptr<Session>> open(const std::string &planPath,
                                               const SessionOptions &options);
  ~Session();

  const plan::PlanT &plan() const { return *plan_; }
  /// The ranks of the plan's mesh (all run by this session, or one in
  /// each process of a job).
  int64_t numRanks() const { return mesh_.numRanks(); }
  /// The rank this process runs in a multi-process job (0 otherwise):
  /// save() writes from rank 0, and loom-run logs from it.
  int64_t processRank() const {
    return options_.processComm ? options_.processComm->rank() : 0;
  }
  /// Steps completed, and samples of the dataset consumed.
  int64_t step() const { return step_; }
  int64_t dataPosition() const { return dataPosition_; }
  uint64_t seed() const { return options_.seed; }

  /// The step at which the learning rate reaches its minimum (overrides
  /// the plan's and the options').
  void setDecaySteps(int64_t steps) { options_.decaySteps = steps; }

  /// Draws every parameter from its initializer keyed by (seed, name,
  /// global element index) and clears the optimizer state.
  Status initializeParameters();

  /// One training step on the next global batch of `data` (samples
  /// dataPosition() onwards, by global index).
  Result<StepMetrics> step(const SampleSource &data);
  /// One training step on a global batch given as [global batch, seq]
  /// tokens and labels (a model that takes other inputs too steps on a
  /// SampleSource that gives them).
  Result<StepMetrics> step(const int32_t *tokens, const int32_t *labels);

  /// The validation loss over `iters` global batches of `valid`, from its
  /// sample 0 (every evaluation reads the same samples, so evaluations are
  /// comparable): each microbatch runs the training plan's forward only
  /// (its microbatch program through the loss), with dropout off, on every
  /// rank; the loss is normalised as step() normalises it, over all the
  /// batches. Nothing of the training state changes (parameters,
  /// gradients, moments, step, data position, loss scale): a run with
  /// evaluations trains as one without. An error for a plan whose forward
  /// writes the training state. In a multi-process job every rank calls it.
  Result<EvalMetrics> evaluate(const SampleSource &valid, int64_t iters);

  /// The model inputs a step feeds, by name: tokens, labels, then any
  /// others the model declares (BERT's token_types and padding_mask).
  const std::vector<std::string> &inputNames() const { return feedNames_; }

  /// Parameters, optimizer state, step, data position, seed and loss scale.
  /// In a multi-process job every rank calls it: the ranks' blocks are
  /// gathered to rank 0, which writes the whole tensors (the same file a
  /// session of threads writes), and every rank returns rank 0's result.
  Status save(const std::string &directory) const;
  /// Restores what save() wrote; the checkpoint's parameters must be the
  /// plan's (names and shapes). The session takes the checkpoint's seed.
  /// In a multi-process job each rank reads the checkpoint (the directory
  /// must be visible to every process) and takes its own blocks.
  Status load(const std::string &directory);

  /// A parameter's values (f32, the whole tensor), or an error naming the
  /// missing parameter. In a multi-process job every rank calls it and
  /// every rank gets the whole tensor.
  Result<std::vector<float>> parameter(const std::string &name);

  /// What each rank this session runs holds on its backend (its
  /// executors' arenas, the stash slots included, and the backend's own
  /// allocations): the measured side of loomc --explain's prediction.
  struct RankMemory {
    int64_t rank = 0, stage = 0;
    int64_t arenas = 0, runtime = 0;
  };
  std::vector<RankMemory> memoryUse() const;

private:
  Session() = default;
  /// A plan a rank runs: the whole plan, or one pipeline chunk of it.
  struct Part {
    const plan::PlanT *plan = nullptr;
    int64_t chunk = 0;
    std::unique_ptr<Executor> executor;
    /// The model inputs this plan takes: (its input buffer, the index in
    /// feedNames_ of the field it is fed).
    std::vector<std::pair<int32_t, size_t>> feeds;
    size_t normEnd = 0; // optimizer program instructions through grad_norm
    /// Evaluation's range of the microbatch program, [0, evalEnd): through
    /// the loss, or a chunk's forward (prepareEvaluation).
    size_t evalEnd = 0;
  };
  struct Rank {
    int64_t id = 0;               // its mesh rank
    Communicator *comm = nullptr; // null for a one-rank mesh
    std::vector<int64_t> coords; // per plan mesh axis
    std::vector<Part> parts;
    double lossSum = 0, gradNorm = 0;
    bool nonFinite = false;
    double evalLossSum = 0; // an evaluation batch's, over dp (and pp)
  };
  /// A tensor of the training state: a parameter (role 0) or one of its
  /// AdamW moments (1, 2), whole, under its checkpoint name.
  struct StateTensor {
    std::string name;
    const plan::ParameterT *param;
    int role;
  };
  std::vector<StateTensor> stateTensors(bool moments) const;
  /// The whole tensor assembled from the ranks' blocks, or scattered back
  /// (into every copy of a parameter tied across pipeline chunks).
  Result<std::vector<float>> gather(const StateTensor &t) const;
  /// gather() in a multi-process job: every rank's blocks to rank 0 (the
  /// others get an empty vector).
  Result<std::vector<float>> gatherToRoot(const StateTensor &t) const;
  /// The job's communicator when this is one process of a job.
  Communicator *processComm() const { return options_.processComm; }
  Status scatter(const StateTensor &t, const std::vector<float> &whole);
  std::vector<int64_t> blockOffset(const plan::ParameterT &p,
                                   const plan::PlanT &owner,
                                   const Rank &rank) const;
  /// A global batch: per feedNames_ entry, [global batch, seq] int32.
  using Feeds = std::vector<const int32_t *>;
  /// Uploads global microbatch `global` of every input `part` takes.
  Status uploadFeeds(Part &part, const Feeds &feeds, int64_t global);
  Result<StepMetrics> stepFeeds(const Feeds &feeds);
  Status runPipelineRank(Rank &rank, const Feeds &feeds, StepParams params);
  /// The tracer when the step `step` is traced, else null.
  Tracer *tracerFor(int64_t step) const;
  Status runRank(Rank &rank, const Feeds &feeds, StepParams params);
  Status zeroGradients();
  /// Evaluate.cpp: each part's forward-only range, checked once; a rank's
  /// forward of one evaluation batch; every rank run (threads, or this
  /// process's one).
  Status prepareEvaluation();
  Status evaluateRank(Rank &rank, const Feeds &feeds, const StepParams &params);
  Status evaluatePipelineRank(Rank &rank, const Feeds &feeds,
                              const StepParams &params);
  /// A global batch of `data`, samples first.., one vector per feedNames_
  /// entry.
  Status readBatch(const SampleSource &data, int64_t first,
                   std::vector<std::vector<int32_t>> &fields) const;
  /// Runs `run` on every rank this session runs (each a thread when there
  /// are several); the first to fail aborts the others' collectives, and
  /// its error, naming the rank, is the result.
  Status runEveryRank(const std::function<Status(Rank &)> &run);

  std::unique_ptr<plan::PlanT> plan_;
  std::vector<Rank> ranks_;
  MeshShape mesh_;
  std::unique_ptr<LocalCommunicatorGroup> comm_;
  /// Set when a step failed on some rank of a multi-rank session.
  std::string broken_;
  /// Evaluation's ranges are computed at the first evaluate(); why this
  /// plan cannot be evaluated, if it cannot.
  bool evalPrepared_ = false;
  std::string evalError_;
  SessionOptions options_;
  std::string planPath_;
  int64_t step_ = 0, optimizerSteps_ = 0, dataPosition_ = 0;
  double lossScale_ = 1;
  int64_t goodSteps_ = 0;
  std::vector<std::string> feedNames_;
  std::vector<std::vector<int32_t>> batch_; // per feedNames_ entry
  /// The global batch's counted tokens (labels other than ignore_index)
  /// or microbatches: what the step's loss is divided by.
  double normalizer_ = 0;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_SESSION_H
