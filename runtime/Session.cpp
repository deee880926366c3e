//===- Session.cpp - Loom's runtime API: opening a plan, the step loop ----===//
//
// Session::open prepares an executor of the options' backend per rank and
// pipeline chunk; step() runs every rank (threads) through its microbatches
// and optimizer, then turns the step outputs into metrics and the f16 loss
// scale. A pipeline stage's schedule is PipelineRunner.cpp's; the whole
// state tensors are StateTensors.cpp's.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Session.h"
#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Backend.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/Trace.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace loom {
namespace runtime {

Session::~Session() = default;

std::vector<Session::RankMemory> Session::memoryUse() const {
  std::vector<RankMemory> out;
  int ppAxis = mesh_.axisIndex("pp");
  for (const Rank &rank : ranks_) {
    RankMemory m;
    m.rank = rank.id;
    m.stage = ppAxis >= 0 && size_t(ppAxis) < rank.coords.size()
                  ? rank.coords[size_t(ppAxis)]
                  : 0;
    for (const Part &part : rank.parts) {
      Executor::MemoryUse use = part.executor->memoryUse();
      m.arenas += use.arenas;
      m.runtime += use.runtime;
    }
    out.push_back(m);
  }
  return out;
}

Tracer *Session::tracerFor(int64_t step) const {
  return options_.tracer && options_.tracer->tracesStep(step) ? options_.tracer
                                                              : nullptr;
}

Result<std::unique_ptr<Session>> Session::open(const std::string &planPath,
                                               const SessionOptions &options) {
  Tracer *tracer = options.tracer;
  Result<std::unique_ptr<plan::PlanT>> read = [&] {
    TraceScope scope(tracer, Tracer::kHostTrack, "load plan", "load");
    if (scope)
      scope.args().add("path", planPath);
    return readPlan(planPath);
  }();
  if (!read.ok())
    return Status::error(read.message());
  std::vector<std::string> backends = backendNames();
  if (std::find(backends.begin(), backends.end(), options.backend) ==
      backends.end()) {
    std::string known;
    for (const std::string &b : backends)
      known += (known.empty() ? "" : ", ") + b;
    return Status::error("there is no backend '" + options.backend +
                         "'; this build has: " + known);
  }
  std::unique_ptr<Session> s(new Session());
  s->plan_ = std::move(*read);
  s->options_ = options;
  s->planPath_ = planPath;
  const plan::PlanT &p = *s->plan_;
  for (const auto &axis : p.mesh) {
    s->mesh_.names.push_back(axis->name);
    s->mesh_.sizes.push_back(axis->size);
  }
  if (Status m = s->mesh_.verify(); !m.ok())
    return Status::error("the plan '" + planPath + "' has a bad mesh: " +
                         m.message());
  int64_t numRanks = s->mesh_.numRanks();
  if (tracer && (options.processComm || numRanks <= kMaxLocalRanks)) {
    tracer->nameTrack(Tracer::kHostTrack, "host");
    // A job's process traces its own rank.
    int64_t first = options.processComm ? options.processComm->rank() : 0;
    int64_t end = options.processComm ? first + 1 : numRanks;
    for (int64_t r = first; r < end; ++r)
      tracer->nameTrack(Tracer::rankTrack(r), s->mesh_.describe(r));
  }
  std::string meshText;
  for (size_t a = 0; a < p.mesh.size(); ++a)
    meshText += (a ? "," : "") + p.mesh[a]->name + "=" +
                std::to_string(p.mesh[a]->size);
  Communicator *processComm = options.processComm;
  if (processComm) {
    const MeshShape &given = processComm->mesh();
    if (given.names != s->mesh_.names || given.sizes != s->mesh_.sizes)
      return Status::error("the plan '" + planPath + "' is for a mesh of " +
                           std::to_string(numRanks) + " ranks (" + meshText +
                           "); the job's communicator has another mesh (" +
                           std::to_string(given.numRanks()) + " ranks)");
  }
  // Every rank is a thread of this process, with its own arenas (or, in a
  // multi-process job, this process runs one).
  if (!processComm && numRanks > kMaxLocalRanks)
    return Status::error(
        "the plan '" + planPath + "' is for a mesh of " +
        std::to_string(numRanks) + " ranks (" + meshText + "); a session "
        "runs every rank as a thread of one process, at most " +
        std::to_string(kMaxLocalRanks) + ". Recompile with a smaller --mesh");
  if (options.ranks && *options.ranks != numRanks)
    return Status::error(
        "the plan '" + planPath + "' is for a mesh of " +
        std::to_string(numRanks) + " ranks (" + meshText + "); the launcher "
        "gives " + std::to_string(*options.ranks) + ". Launch " +
        std::to_string(numRanks) + " ranks, or recompile with a --mesh of " +
        std::to_string(*options.ranks) + " ranks");
  // The plans a rank runs: the plan, or the pipeline chunks of its stage.
  std::vector<const plan::PlanT *> pieces;
  if (p.chunks.empty())
    pieces.push_back(&p);
  else
    for (const auto &chunk : p.chunks)
      pieces.push_back(chunk.get());
  // The model inputs a step feeds: tokens and labels first, then the
  // others in the order the pieces declare them.
  s->feedNames_ = {"tokens", "labels"};
  bool sawTokens = false, sawLabels = false;
  for (const plan::PlanT *piece : pieces)
    for (size_t i = 0; i < piece->inputs.size(); ++i) {
      const plan::InputT &input = *piece->inputs[i];
      const plan::BufferT &b = *piece->buffers[input.buffer];
      if (input.name == "activation" || input.name == "output_grad")
        continue; // a pipeline chunk's, from its neighbours
      if ((b.dtype != plan::DType::I32 && b.dtype != plan::DType::I1) ||
          b.shape.size() != 2 || b.shape[0] != p.micro_batch_size ||
          b.shape[1] != p.seq_length)
        return Status::error("input '" + input.name + "' of '" + planPath +
                             "' must be i32[micro-batch, seq] or "
                             "i1[micro-batch, seq]: a session feeds "
                             "per-token inputs");
      if ((input.name == "tokens" || input.name == "labels") &&
          b.dtype != plan::DType::I32)
        return Status::error("input '" + input.name + "' of '" + planPath +
                             "' must be i32[micro-batch, seq]");
      if (input.name == "tokens")
        sawTokens = true;
      else if (input.name == "labels")
        sawLabels = true;
      else if (std::find(s->feedNames_.begin(), s->feedNames_.end(),
                         input.name) == s->feedNames_.end())
        s->feedNames_.push_back(input.name);
      if (piece->loss >= 0 && piece->loss_normalizer == "tokens" &&
          input.name == "labels" && piece->labels_input != int32_t(i))
        return Status::error("the plan '" + planPath +
                             "' normalises the loss by the tokens of an "
                             "input other than 'labels'; a session feeds "
                             "tokens and labels");
    }
  if (!sawTokens || !sawLabels)
    return Status::error("the model of '" + planPath +
                         "' must take the inputs tokens and labels");
  // (validatePlan has checked the decay style and every other enum.)
  // The settings a step will use: the plan's defaults, overridden.
  const plan::OptimizerDefaultsT &d = *p.optimizer_defaults;
  double lr = options.lr.value_or(d.lr), minLr = options.minLr.value_or(d.min_lr);
  double beta1 = options.beta1.value_or(d.beta1),
         beta2 = options.beta2.value_or(d.beta2), eps = options.eps.value_or(d.eps);
  if (!(lr > 0) || !(minLr >= 0 && minLr <= lr) || !(eps > 0) ||
      !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) ||
      options.weightDecay.value_or(d.weight_decay) < 0 ||
      options.clipGrad.value_or(d.clip_grad) < 0)
    return Status::error(
        "optimizer settings out of range (plan defaults with the options "
        "given): need lr > 0 (" + std::to_string(lr) + "), 0 <= min-lr <= lr (" +
        std::to_string(minLr) + "), adam-eps > 0, betas in [0, 1), "
        "weight-decay and clip-grad >= 0");
  if (numRanks > 1 && !processComm)
    s->comm_ = std::make_unique<LocalCommunicatorGroup>(
        s->mesh_, options.collectiveTimeoutSeconds);
  int ppAxis = s->mesh_.axisIndex("pp");
  int64_t stages = ppAxis >= 0 ? s->mesh_.sizes[size_t(ppAxis)] : 1;
  // A parameter tied across pipeline chunks has its gradient summed by the
  // pipeline runner after the schedule: its bucket is not overlapped.
  std::map<std::string, int> holders;
  for (const plan::PlanT *piece : pieces)
    for (const auto &param : piece->parameters)
      ++holders[param->name];
  // One communication thread per executor, each issuing dp collectives in
  // its own order: a stage with more than one chunk (interleaved) would
  // have two threads racing on the dp axis, so its ranks do not overlap.
  bool overlap = options.overlapGradReduce &&
                 (p.chunks.empty() || int64_t(p.chunks.size()) == stages);
  int dpAxis = s->mesh_.axisIndex("dp");
  int64_t firstRank = processComm ? processComm->rank() : 0;
  int64_t endRank = processComm ? firstRank + 1 : numRanks;
  if (tracer && overlap && dpAxis >= 0 && s->mesh_.sizes[size_t(dpAxis)] > 1 &&
      endRank - firstRank <= kMaxLocalRanks)
    for (int64_t r = firstRank; r < endRank; ++r)
      tracer->nameTrack(Tracer::commTrack(r), s->mesh_.describe(r) + " comm");
  for (int64_t r = firstRank; r < endRank; ++r) {
    Rank rank;
    rank.id = r;
    rank.comm = processComm ? processComm
                : s->comm_  ? &s->comm_->forRank(r)
                            : nullptr;
    rank.coords = s->mesh_.coordinates(r);
    RankContext context;
    context.coords = rank.coords;
    context.comm = rank.comm;
    context.generatedKernels = options.generatedKernels;
    context.device = options.device;
    context.cudaGraphs = options.cudaGraphs;
    context.tracer = tracer;
    context.traceTrack = Tracer::rankTrack(r);
    context.overlapGradReduce = overlap;
    context.commTraceTrack = Tracer::commTrack(r);
    int64_t stage = ppAxis >= 0 ? rank.coords[size_t(ppAxis)] : 0;
    for (const plan::PlanT *piece : pieces) {
      if (!p.chunks.empty() && piece->chunk_index % stages != stage)
        continue;
      Part part;
      part.plan = piece;
      part.chunk = piece->chunk_index;
      for (const auto &input : piece->inputs) {
        auto field =
            std::find(s->feedNames_.begin(), s->feedNames_.end(), input->name);
        if (field != s->feedNames_.end())
          part.feeds.emplace_back(input->buffer,
                                  size_t(field - s->feedNames_.begin()));
      }
      const auto &opt = piece->optimizer->instructions;
      for (size_t k = 0; k < opt.size(); ++k)
        if (opt[k]->op == "grad_norm")
          part.normEnd = k + 1;
      context.writtenAfterMicrobatches.clear();
      for (const auto &param : piece->parameters)
        if (holders[param->name] > 1)
          context.writtenAfterMicrobatches.push_back(param->grad);
      Result<std::unique_ptr<Executor>> executor = [&] {
        TraceScope scope(tracer, context.traceTrack, "create executor", "load");
        if (scope) {
          scope.args().add("backend", options.backend);
          if (!p.chunks.empty())
            scope.args().add("chunk", part.chunk);
        }
        return createExecutor(options.backend, *piece, context);
      }();
      if (!executor.ok())
        return Status::error(numRanks > 1 ? s->mesh_.describe(r) + ": " +
                                                executor.message()
                                          : executor.message());
      part.executor = std::move(*executor);
      rank.parts.push_back(std::move(part));
    }
    s->ranks_.push_back(std::move(rank));
  }
  s->lossScale_ = p.precision->dynamic_loss_scaling
                      ? p.precision->initial_loss_scale
                      : 1.0;
  return s;
}

Result<StepMetrics> Session::step(const SampleSource &data) {
  const plan::PlanT &p = *plan_;
  // A checkpoint records at most kMaxCheckpointCount samples: stop before
  // a position it could not hold (or one that overflows).
  if (dataPosition_ > kMaxCheckpointCount - p.global_batch_size)
    return Status::error("the run has consumed " +
                         std::to_string(dataPosition_) +
                         " samples; another global batch would pass the "
                         "2^53 a checkpoint records");
  if (Status s = readBatch(data, dataPosition_, batch_); !s.ok())
    return s;
  Feeds feeds;
  for (const std::vector<int32_t> &field : batch_)
    feeds.push_back(field.data());
  Result<StepMetrics> metrics = stepFeeds(feeds);
  if (metrics.ok())
    dataPosition_ += p.global_batch_size;
  return metrics;
}

Result<StepMetrics> Session::step(const int32_t *tokens,
                                  const int32_t *labels) {
  if (feedNames_.size() > 2)
    return Status::error("the model of '" + planPath_ + "' takes the input '" +
                         feedNames_[2] +
                         "' besides tokens and labels; step it on a "
                         "SampleSource that gives it");
  return stepFeeds({tokens, labels});
}

Status Session::uploadFeeds(Part &part, const Feeds &feeds, int64_t global) {
  // (A pipeline chunk's plan leaves the batch sizes to the top plan.)
  const plan::PlanT &p = *part.plan;
  int64_t perMicrobatch = plan_->micro_batch_size * plan_->seq_length;
  for (auto [buffer, field] : part.feeds) {
    const int32_t *data = feeds[field] + global * perMicrobatch;
    if (p.buffers[size_t(buffer)]->dtype != plan::DType::I1) {
      if (Status s = part.executor->upload(
              buffer, data, size_t(perMicrobatch) * sizeof(int32_t));
          !s.ok())
        return s;
      continue;
    }
    // i1 is one byte per element.
    std::vector<uint8_t> bytes(static_cast<size_t>(perMicrobatch));
    for (int64_t e = 0; e < perMicrobatch; ++e)
      bytes[size_t(e)] = data[e] != 0;
    if (Status s = part.executor->upload(buffer, bytes.data(), bytes.size());
        !s.ok())
      return s;
  }
  return Status::success();
}

Result<StepMetrics> Session::stepFeeds(const Feeds &feeds) {
  const int32_t *labels = feeds[1];
  if (!broken_.empty())
    return Status::error("an earlier step failed and left the ranks out of "
                         "step (" + broken_ + "); open the plan again and "
                         "load a checkpoint");
  if (step_ >= kMaxCheckpointCount)
    return Status::error("the run is at step " + std::to_string(step_) +
                         ", the last a checkpoint records (2^53)");
  auto start = std::chrono::steady_clock::now();
  const plan::PlanT &p = *plan_;
  const plan::OptimizerDefaultsT &d = *p.optimizer_defaults;
  StepParams state;
  state.seed = options_.seed;
  state.step = step_ + 1;
  state.optimizerStep = optimizerSteps_ + 1;
  state.lossScale = lossScale_;
  state.clipGrad = options_.clipGrad.value_or(d.clip_grad);
  state.weightDecay = options_.weightDecay.value_or(d.weight_decay);
  state.adam = {options_.beta1.value_or(d.beta1),
                options_.beta2.value_or(d.beta2), options_.eps.value_or(d.eps)};
  LearningRateSchedule schedule;
  schedule.maxLr = options_.lr.value_or(d.lr);
  schedule.minLr = options_.minLr.value_or(d.min_lr);
  schedule.warmupSteps = options_.warmupSteps.value_or(d.warmup_steps);
  schedule.decaySteps = options_.decaySteps.value_or(d.decay_steps);
  std::string style = options_.decayStyle.value_or(d.decay_style);
  schedule.decay = style == "linear"     ? LearningRateSchedule::Decay::Linear
                   : style == "constant" ? LearningRateSchedule::Decay::Constant
                                         : LearningRateSchedule::Decay::Cosine;
  state.lr = schedule.at(state.step);

  // The loss is divided by the global batch's counted tokens (from the
  // caller's labels, the same on every rank) or by its microbatches.
  int64_t batchTokens = p.global_batch_size * p.seq_length;
  normalizer_ =
      p.loss_normalizer == "tokens"
          ? double(std::count_if(labels, labels + batchTokens,
                                 [&](int32_t l) { return l != p.ignore_index; }))
          : double(p.num_microbatches *
                   (mesh_.axisIndex("dp") >= 0
                        ? mesh_.sizes[size_t(mesh_.axisIndex("dp"))]
                        : 1));
  if (normalizer_ == 0)
    return Status::error("step " + std::to_string(state.step) +
                         ": every label of the global batch is ignore_index " +
                         std::to_string(p.ignore_index) +
                         "; there is no loss to train on");
  state.gradScale = 1.0 / (normalizer_ * state.lossScale);

  bool pipelined = !plan_->chunks.empty();
  Tracer *tracer = tracerFor(state.step);
  std::string stepName =
      tracer ? "step " + std::to_string(state.step) : std::string();
  // A rank's step, as one slice on its track when the step is traced.
  Status result = runEveryRank([&](Rank &rank) {
    TraceScope scope(tracer, Tracer::rankTrack(rank.id), stepName, "step");
    if (scope)
      scope.args().add("step", state.step);
    return pipelined ? runPipelineRank(rank, feeds, state)
                     : runRank(rank, feeds, state);
  });
  if (!result.ok()) {
    (void)zeroGradients(); // nothing of a failed step may leak into the next
    // The ranks' collectives gave up mid-step: the job cannot go on.
    if (comm_ || processComm())
      broken_ = result.message();
    return result;
  }
  const Rank &first = ranks_[0];
  StepMetrics m;
  m.step = state.step;
  m.loss = first.lossSum / normalizer_;
  m.gradNorm = first.gradNorm;
  m.lr = state.lr;
  m.lossScale = lossScale_;
  m.skipped = first.nonFinite;
  m.tokens = p.global_batch_size * p.seq_length;
  if (p.precision->dynamic_loss_scaling) {
    // As Megatron's DynamicGradScaler (hysteresis 1): halve on overflow,
    // double after a window of clean steps.
    if (m.skipped) {
      lossScale_ = std::max(lossScale_ / 2, p.precision->min_loss_scale);
      goodSteps_ = 0;
    } else if (++goodSteps_ % p.precision->loss_scale_window == 0) {
      lossScale_ *= 2;
    }
  }
  if (!m.skipped)
    ++optimizerSteps_;
  ++step_;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                            start)
                  .count();
  return m;
}

Status Session::runEveryRank(const std::function<Status(Rank &)> &run) {
  if (ranks_.size() == 1) {
    Status s = run(ranks_[0]);
    // One rank of a job: say which (the other processes print theirs).
    if (!s.ok() && processComm())
      return Status::error(mesh_.describe(ranks_[0].id) + ": " + s.message());
    return s;
  }
  // Every rank a thread; the first to fail aborts the others' collectives.
  std::mutex mutex;
  Status result = Status::success();
  bool failed = false;
  std::vector<std::thread> threads;
  auto fail = [&](size_t r, Status s) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!failed) {
      failed = true;
      ranks_[r].comm->abort(s.message());
      result = s;
    }
  };
  for (size_t r = 0; r < ranks_.size(); ++r)
    try {
      threads.emplace_back([&, r] {
#ifdef _OPENMP
        omp_set_num_threads(
            std::max(1, omp_get_num_procs() / int(ranks_.size())));
#endif
        Status s = run(ranks_[r]);
        if (!s.ok())
          fail(r, Status::error(mesh_.describe(ranks_[r].id) + ": " +
                                s.message()));
      });
    } catch (const std::system_error &e) {
      fail(r, Status::error("cannot start a thread for " +
                            mesh_.describe(ranks_[r].id) + ": " + e.what()));
      break;
    }
  for (std::thread &t : threads)
    t.join();
  return result;
}

Status Session::readBatch(const SampleSource &data, int64_t first,
                          std::vector<std::vector<int32_t>> &fields) const {
  // Each model input takes the sample's field of its name; the fields the
  // model does not take are read and dropped.
  const plan::PlanT &p = *plan_;
  std::vector<std::string> given = data.fields();
  std::vector<size_t> fieldOf;
  for (const std::string &name : feedNames_) {
    auto at = std::find(given.begin(), given.end(), name);
    if (at == given.end()) {
      std::string list;
      for (const std::string &g : given)
        list += (list.empty() ? "" : ", ") + g;
      return Status::error(
          "the model of '" + planPath_ + "' takes the input '" + name +
          "', which the data does not give (it gives " + list + ")" +
          (name == "padding_mask" || name == "token_types"
               ? "; train a masked-LM model on masked-LM samples "
                 "(loom-run --mlm)"
               : ""));
    }
    fieldOf.push_back(size_t(at - given.begin()));
  }
  int64_t seq = p.seq_length;
  fields.assign(feedNames_.size(),
                std::vector<int32_t>(size_t(p.global_batch_size * seq)));
  std::vector<std::vector<int32_t>> spare(given.size());
  std::vector<int32_t *> out(given.size());
  for (int64_t i = 0; i < p.global_batch_size; ++i) {
    for (size_t k = 0; k < given.size(); ++k) {
      auto used = std::find(fieldOf.begin(), fieldOf.end(), k);
      if (used != fieldOf.end()) {
        out[k] = fields[size_t(used - fieldOf.begin())].data() + i * seq;
      } else {
        spare[k].resize(size_t(seq));
        out[k] = spare[k].data();
      }
    }
    if (Status s = data.readFields(first + i, out.data()); !s.ok())
      return s;
  }
  return Status::success();
}

Status Session::runRank(Rank &rank, const Feeds &feeds, StepParams state) {
  const plan::PlanT &p = *plan_;
  Part &part = rank.parts.front();
  Executor &ex = *part.executor;
  int dpAxis = mesh_.axisIndex("dp");
  int64_t dp = dpAxis >= 0 ? mesh_.sizes[size_t(dpAxis)] : 1;
  int64_t d = dpAxis >= 0 ? rank.coords[size_t(dpAxis)] : 0;
  auto where = [&](const std::string &what) {
    return "step " + std::to_string(state.step) + what + ": ";
  };
  Tracer *tracer = tracerFor(state.step);
  int track = Tracer::rankTrack(mesh_.rankOf(rank.coords));
  ex.beginStep();
  for (int64_t mb = 0; mb < p.num_microbatches; ++mb) {
    // Data parallelism assigns samples by their global index: microbatch mb
    // of dp rank d is the global batch's microbatch mb·dp + d, so every mesh
    // trains on the same sequences, and dropout draws by that index.
    int64_t global = mb * dp + d;
    std::string at = ", microbatch " + std::to_string(global);
    state.microbatch = global;
    state.lastMicrobatch = mb == p.num_microbatches - 1;
    TraceScope scope(tracer, track, "microbatch", "microbatch");
    if (scope)
      scope.args().add("microbatch", global).add("step", state.step);
    Status s = uploadFeeds(part, feeds, global);
    if (s.ok())
      s = ex.run(ProgramKind::Microbatch, state);
    if (s.ok())
      s = ex.accumulateLoss(p.loss);
    if (!s.ok())
      return Status::error(where(at) + s.message());
  }
  Result<StepOutputs> outputs = [&]() -> Result<StepOutputs> {
    TraceScope scope(tracer, track, "optimizer", "optimizer");
    if (scope)
      scope.args().add("step", state.step);
    if (Status s = ex.run(ProgramKind::Optimizer, state); !s.ok())
      return s;
    return ex.readStepOutputs();
  }();
  if (!outputs.ok())
    return Status::error(where("") + outputs.message());
  // The loss over the data-parallel ranks (every tensor-parallel rank
  // holds the same).
  double lossSum = outputs->lossSum;
  TraceScope lossScope(dp > 1 ? tracer : nullptr, track, "all_reduce",
                       "collective");
  if (lossScope)
    lossScope.args().add("what", "the step's loss").add("step", state.step);
  if (dp > 1)
    if (Status s =
            rank.comm->allReduce(dpAxis, &lossSum, &lossSum, 1, CommDType::F64,
                                 ReduceKind::Sum, "the step's loss");
        !s.ok())
      return Status::error(where("") + s.message());
  rank.lossSum = lossSum;
  rank.gradNorm = outputs->gradNorm;
  rank.nonFinite = outputs->nonFinite;
  return Status::success();
}

} // namespace runtime
} // namespace loom
