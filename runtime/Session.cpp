//===- Session.cpp - Loom's runtime API: train a compiled plan ------------===//

#include "loom/runtime/Session.h"
#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/cpu/Executor.h"

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

Result<std::unique_ptr<Session>> Session::open(const std::string &planPath,
                                               const SessionOptions &options) {
  Result<std::unique_ptr<plan::PlanT>> read = readPlan(planPath);
  if (!read.ok())
    return Status::error(read.message());
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
  std::string meshText;
  for (size_t a = 0; a < p.mesh.size(); ++a)
    meshText += (a ? "," : "") + p.mesh[a]->name + "=" +
                std::to_string(p.mesh[a]->size);
  // Every rank is a thread of this process, with its own arenas.
  if (numRanks > kMaxLocalRanks)
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
  bool sawTokens = false, sawLabels = false;
  for (const plan::PlanT *piece : pieces)
    for (size_t i = 0; i < piece->inputs.size(); ++i) {
      const plan::InputT &input = *piece->inputs[i];
      const plan::BufferT &b = *piece->buffers[input.buffer];
      if (input.name == "activation" || input.name == "output_grad")
        continue; // a pipeline chunk's, from its neighbours
      if (input.name != "tokens" && input.name != "labels")
        return Status::error("the model of '" + planPath + "' takes input '" +
                             input.name +
                             "'; a session feeds the inputs tokens and labels");
      if (b.dtype != plan::DType::I32 || b.shape.size() != 2 ||
          b.shape[0] != p.micro_batch_size || b.shape[1] != p.seq_length)
        return Status::error("input '" + input.name + "' of '" + planPath +
                             "' must be i32[micro-batch, seq]");
      (input.name == "tokens" ? sawTokens : sawLabels) = true;
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
  if (numRanks > 1)
    s->comm_ = std::make_unique<LocalCommunicatorGroup>(
        s->mesh_, options.collectiveTimeoutSeconds);
  int ppAxis = s->mesh_.axisIndex("pp");
  int64_t stages = ppAxis >= 0 ? s->mesh_.sizes[size_t(ppAxis)] : 1;
  for (int64_t r = 0; r < numRanks; ++r) {
    Rank rank;
    rank.coords = s->mesh_.coordinates(r);
    cpu::RankContext context;
    context.coords = rank.coords;
    context.comm = s->comm_ ? &s->comm_->forRank(r) : nullptr;
    int64_t stage = ppAxis >= 0 ? rank.coords[size_t(ppAxis)] : 0;
    for (const plan::PlanT *piece : pieces) {
      if (!p.chunks.empty() && piece->chunk_index % stages != stage)
        continue;
      Part part;
      part.plan = piece;
      part.chunk = piece->chunk_index;
      for (size_t i = 0; i < piece->inputs.size(); ++i) {
        if (piece->inputs[i]->name == "tokens")
          part.tokens = int32_t(i);
        if (piece->inputs[i]->name == "labels")
          part.labels = int32_t(i);
      }
      const auto &opt = piece->optimizer->instructions;
      for (size_t k = 0; k < opt.size(); ++k)
        if (opt[k]->op == "grad_norm")
          part.normEnd = k + 1;
      Result<std::unique_ptr<cpu::CpuExecutor>> executor =
          cpu::CpuExecutor::create(*piece, context);
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

std::vector<int64_t> Session::blockOffset(const plan::ParameterT &p,
                                          const plan::PlanT &owner,
                                          const Rank &rank) const {
  const plan::BufferT &b = *owner.buffers[p.value];
  std::vector<int64_t> offset(b.shape.size(), 0);
  for (size_t d = 0; d < p.shard_axis.size() && d < offset.size(); ++d)
    if (p.shard_axis[d] >= 0)
      offset[d] = rank.coords[size_t(p.shard_axis[d])] * b.shape[d];
  return offset;
}

void Session::initializeParameters() {
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts)
      for (const auto &param : part.plan->parameters) {
        const plan::BufferT &b = *part.plan->buffers[param->value];
        float *data = part.executor->as<float>(param->value);
        int64_t n = b.bytes / 4;
        if (param->init == "normal") {
          // Keyed by the global element index: every mesh draws one model
          // (and a parameter tied across pipeline chunks one value).
          TensorBlock block{param->global_shape,
                            blockOffset(*param, *part.plan, rank), b.shape};
          initNormal(data, block, param->std,
                     parameterKey(options_.seed, param->name));
        } else {
          float value = param->init == "zeros"  ? 0.0f
                        : param->init == "ones" ? 1.0f
                                                : float(param->constant);
          std::fill(data, data + n, value);
        }
        for (int32_t id : {param->grad, param->moment1, param->moment2})
          std::memset(part.executor->data(id), 0,
                      size_t(part.plan->buffers[id]->bytes));
      }
  step_ = optimizerSteps_ = dataPosition_ = goodSteps_ = 0;
  lossScale_ = plan_->precision->dynamic_loss_scaling
                   ? plan_->precision->initial_loss_scale
                   : 1.0;
}

Result<StepMetrics> Session::step(const TokenDataset &data) {
  const plan::PlanT &p = *plan_;
  // A checkpoint records at most kMaxCheckpointCount samples: stop before
  // a position it could not hold (or one that overflows).
  if (dataPosition_ > kMaxCheckpointCount - p.global_batch_size)
    return Status::error("the run has consumed " +
                         std::to_string(dataPosition_) +
                         " samples; another global batch would pass the "
                         "2^53 a checkpoint records");
  int64_t seq = p.seq_length;
  batchTokens_.resize(size_t(p.global_batch_size * seq));
  batchLabels_.resize(batchTokens_.size());
  for (int64_t i = 0; i < p.global_batch_size; ++i)
    data.sample(dataPosition_ + i, batchTokens_.data() + i * seq,
                batchLabels_.data() + i * seq);
  Result<StepMetrics> metrics = step(batchTokens_.data(), batchLabels_.data());
  if (metrics.ok())
    dataPosition_ += p.global_batch_size;
  return metrics;
}

Result<StepMetrics> Session::step(const int32_t *tokens,
                                  const int32_t *labels) {
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
  cpu::StepState state;
  state.seed = options_.seed;
  state.step = step_ + 1;
  state.optimizerStep = optimizerSteps_ + 1;
  state.lossScale = lossScale_;
  state.clipGrad = options_.clipGrad.value_or(d.clip_grad);
  state.weightDecay = options_.weightDecay.value_or(d.weight_decay);
  state.adam = {options_.beta1.value_or(d.beta1),
                options_.beta2.value_or(d.beta2), options_.eps.value_or(d.eps)};
  cpu::LearningRateSchedule schedule;
  schedule.maxLr = options_.lr.value_or(d.lr);
  schedule.minLr = options_.minLr.value_or(d.min_lr);
  schedule.warmupSteps = options_.warmupSteps.value_or(d.warmup_steps);
  schedule.decaySteps = options_.decaySteps.value_or(d.decay_steps);
  std::string style = options_.decayStyle.value_or(d.decay_style);
  schedule.decay = style == "linear"     ? cpu::LearningRateSchedule::Decay::Linear
                   : style == "constant" ? cpu::LearningRateSchedule::Decay::Constant
                                         : cpu::LearningRateSchedule::Decay::Cosine;
  state.lr = schedule.at(state.step);

  std::vector<Status> results(ranks_.size());
  bool pipelined = !plan_->chunks.empty();
  if (ranks_.size() == 1) {
    results[0] = runRank(ranks_[0], tokens, labels, state);
  } else {
    // Every rank a thread; the first to fail aborts the others' collectives.
    std::mutex mutex;
    bool failed = false;
    std::vector<std::thread> threads;
    auto fail = [&](size_t r, Status s) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!failed) {
        failed = true;
        comm_->forRank(int64_t(r)).abort(s.message());
        results[r] = s;
      }
    };
    for (size_t r = 0; r < ranks_.size(); ++r) try {
      threads.emplace_back([&, r] {
#ifdef _OPENMP
        omp_set_num_threads(std::max(
            1, omp_get_num_procs() / int(ranks_.size())));
#endif
        Status s = pipelined
                       ? runPipelineRank(ranks_[r], tokens, labels, state)
                       : runRank(ranks_[r], tokens, labels, state);
        if (!s.ok())
          fail(r, Status::error(mesh_.describe(int64_t(r)) + ": " +
                                s.message()));
      });
    } catch (const std::system_error &e) {
      // Out of threads: the ranks already started are stopped, not left
      // waiting for this one.
      fail(r, Status::error("cannot start a thread for " +
                            mesh_.describe(int64_t(r)) + ": " + e.what()));
      break;
    }
    for (std::thread &t : threads)
      t.join();
  }
  for (const Status &s : results)
    if (!s.ok()) {
      zeroGradients(); // nothing of a failed step may leak into the next
      // The ranks' collectives gave up mid-step: the job cannot go on.
      if (comm_)
        broken_ = s.message();
      return s;
    }
  const Rank &first = ranks_[0];
  double normalizer = first.normalizer;
  state.gradNorm = first.gradNorm;
  state.nonFinite = first.nonFinite;
  double lossSum = first.lossSum;

  StepMetrics m;
  m.step = state.step;
  m.loss = lossSum / normalizer;
  m.gradNorm = state.gradNorm;
  m.lr = state.lr;
  m.lossScale = lossScale_;
  m.skipped = state.nonFinite;
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

Status Session::runRank(Rank &rank, const int32_t *tokens,
                        const int32_t *labels, cpu::StepState state) {
  const plan::PlanT &p = *plan_;
  Part &part = rank.parts.front();
  cpu::CpuExecutor &ex = *part.executor;
  int dpAxis = mesh_.axisIndex("dp");
  int64_t dp = dpAxis >= 0 ? mesh_.sizes[size_t(dpAxis)] : 1;
  int64_t d = dpAxis >= 0 ? rank.coords[size_t(dpAxis)] : 0;
  int64_t perMicrobatch = p.micro_batch_size * p.seq_length;
  int32_t *tokenBuffer = ex.as<int32_t>(p.inputs[size_t(part.tokens)]->buffer);
  int32_t *labelBuffer = ex.as<int32_t>(p.inputs[size_t(part.labels)]->buffer);
  const float *loss = ex.as<float>(p.loss);
  double lossSum = 0, counted = 0;
  for (int64_t mb = 0; mb < p.num_microbatches; ++mb) {
    // Data parallelism assigns samples by their global index: microbatch mb
    // of dp rank d is the global batch's microbatch mb·dp + d, so every mesh
    // trains on the same sequences, and dropout draws by that index.
    int64_t global = mb * dp + d;
    const int32_t *mbLabels = labels + global * perMicrobatch;
    std::copy_n(tokens + global * perMicrobatch, perMicrobatch, tokenBuffer);
    std::copy_n(mbLabels, perMicrobatch, labelBuffer);
    state.microbatch = global;
    if (Status s = ex.run(*p.microbatch, state); !s.ok())
      return Status::error("step " + std::to_string(state.step) +
                           ", microbatch " + std::to_string(global) + ": " +
                           s.message());
    lossSum += *loss;
    // From the caller's labels: the input buffer's workspace is reused once
    // the program has read it.
    counted += double(std::count_if(mbLabels, mbLabels + perMicrobatch,
                                    [&](int32_t l) {
                                      return l != p.ignore_index;
                                    }));
  }
  // The loss and the tokens counted, over the data-parallel ranks (every
  // tensor-parallel rank holds the same).
  double totals[2] = {lossSum, counted};
  if (dp > 1)
    if (Status s = comm_->forRank(mesh_.rankOf(rank.coords))
                       .allReduce(dpAxis, totals, totals, 2, CommDType::F64,
                                  ReduceKind::Sum, "the step's loss and tokens");
        !s.ok())
      return Status::error("step " + std::to_string(state.step) + ": " +
                           s.message());
  rank.lossSum = totals[0];
  rank.normalizer = p.loss_normalizer == "tokens"
                        ? totals[1]
                        : double(p.num_microbatches * dp);
  if (rank.normalizer == 0)
    return Status::error("step " + std::to_string(state.step) +
                         ": every label of the global batch is ignore_index " +
                         std::to_string(p.ignore_index) +
                         "; there is no loss to train on");
  state.gradScale = 1.0 / (rank.normalizer * state.lossScale);
  if (Status s = ex.run(*p.optimizer, state); !s.ok())
    return Status::error("step " + std::to_string(state.step) + ": " +
                         s.message());
  rank.gradNorm = state.gradNorm;
  rank.nonFinite = state.nonFinite;
  return Status::success();
}

Status Session::runPipelineRank(Rank &rank, const int32_t *tokens,
                                const int32_t *labels, cpu::StepState state) {
  const plan::PlanT &p = *plan_;
  int ppAxis = mesh_.axisIndex("pp"), dpAxis = mesh_.axisIndex("dp");
  int64_t stages = mesh_.sizes[size_t(ppAxis)];
  int64_t dp = mesh_.sizes[size_t(dpAxis)], d = rank.coords[size_t(dpAxis)];
  int64_t stage = rank.coords[size_t(ppAxis)];
  int64_t chunks = int64_t(p.chunks.size());
  Communicator &comm = comm_->forRank(mesh_.rankOf(rank.coords));
  int64_t perMicrobatch = p.micro_batch_size * p.seq_length;
  auto partOf = [&](int64_t chunk) -> Part & {
    for (Part &part : rank.parts)
      if (part.chunk == chunk)
        return part;
    return rank.parts.front(); // the schedule is validated: not reached
  };
  auto where = [&](const std::string &what) {
    return "step " + std::to_string(state.step) + ", " + what;
  };
  // A message between chunks: tagged by (microbatch, receiving chunk,
  // direction). Activations travel as raw storage (16-bit ones too).
  auto bufferBytes = [](const Part &part, int32_t buffer) {
    return std::make_pair(part.executor->data(buffer),
                          size_t(part.plan->buffers[buffer]->bytes));
  };
  auto tag = [&](int64_t mb, int64_t chunk, bool backward) {
    return (mb * chunks + chunk) * 2 + (backward ? 1 : 0);
  };
  auto transfer = [&](bool send, int64_t peerChunk, void *data, size_t bytes,
                      int64_t t, const std::string &what) -> Status {
    if (bytes % 4)
      return Status::error("an activation of " + std::to_string(bytes) +
                           " bytes does not travel as 4-byte words");
    int64_t peer = peerChunk % stages;
    return send ? comm.send(ppAxis, peer, data, bytes / 4, CommDType::F32, t,
                            what)
                : comm.recv(ppAxis, peer, data, bytes / 4, CommDType::F32, t,
                            what);
  };
  // Each in-flight (microbatch, chunk) keeps its input activation until its
  // backward, which recomputes the forward from it.
  std::map<std::pair<int64_t, int64_t>, std::vector<uint8_t>> stash;
  double lossSum = 0, counted = 0;
  for (const auto &step : p.stage_schedules[size_t(stage)]->steps) {
    Part &part = partOf(step->chunk);
    const plan::PlanT &cp = *part.plan;
    cpu::CpuExecutor &ex = *part.executor;
    int64_t mb = step->microbatch, c = step->chunk;
    int64_t global = mb * dp + d;
    state.microbatch = global;
    std::string what = (step->backward ? "backward of microbatch "
                                       : "forward of microbatch ") +
                       std::to_string(global) + ", chunk " + std::to_string(c);
    const int32_t *mbLabels = labels + global * perMicrobatch;
    if (part.tokens >= 0)
      std::copy_n(tokens + global * perMicrobatch, perMicrobatch,
                  ex.as<int32_t>(cp.inputs[size_t(part.tokens)]->buffer));
    if (part.labels >= 0)
      std::copy_n(mbLabels, perMicrobatch,
                  ex.as<int32_t>(cp.inputs[size_t(part.labels)]->buffer));
    auto [in, inBytes] = cp.activation_in >= 0
                             ? bufferBytes(part, cp.inputs[size_t(cp.activation_in)]->buffer)
                             : std::make_pair(static_cast<void *>(nullptr), size_t(0));
    if (!step->backward) {
      if (in) {
        if (Status s = transfer(false, c - 1, in, inBytes, tag(mb, c, false),
                                "the activation for " + what);
            !s.ok())
          return Status::error(where(what) + ": " + s.message());
        auto *bytes = static_cast<uint8_t *>(in);
        stash[{mb, c}].assign(bytes, bytes + inBytes);
      }
      // The last chunk's forward has nothing to send: its backward step
      // computes the loss.
      if (cp.loss < 0)
        if (Status s = ex.run(*cp.microbatch, state, size_t(cp.forward_end));
            !s.ok())
          return Status::error(where(what) + ": " + s.message());
      if (cp.activation_out >= 0) {
        auto [out, outBytes] = bufferBytes(part, cp.activation_out);
        if (Status s = transfer(true, c + 1, out, outBytes,
                                tag(mb, c + 1, false),
                                "the activation of " + what);
            !s.ok())
          return Status::error(where(what) + ": " + s.message());
      }
      continue;
    }
    if (in) {
      auto it = stash.find({mb, c});
      if (it == stash.end())
        return Status::error(where(what) + ": its forward has not run");
      std::memcpy(in, it->second.data(), inBytes);
      stash.erase(it);
    }
    if (cp.output_grad >= 0) {
      auto [grad, gradBytes] =
          bufferBytes(part, cp.inputs[size_t(cp.output_grad)]->buffer);
      if (Status s = transfer(false, c + 1, grad, gradBytes,
                              tag(mb, c, true), "the gradient for " + what);
          !s.ok())
        return Status::error(where(what) + ": " + s.message());
    }
    if (Status s = ex.run(*cp.microbatch, state); !s.ok())
      return Status::error(where(what) + ": " + s.message());
    if (cp.loss >= 0) {
      lossSum += *ex.as<float>(cp.loss);
      counted += double(std::count_if(
          mbLabels, mbLabels + perMicrobatch,
          [&](int32_t l) { return l != p.ignore_index; }));
    }
    if (cp.input_grad >= 0) {
      auto [grad, gradBytes] = bufferBytes(part, cp.input_grad);
      if (Status s = transfer(true, c - 1, grad, gradBytes,
                              tag(mb, c - 1, true), "the gradient of " + what);
          !s.ok())
        return Status::error(where(what) + ": " + s.message());
    }
  }

  // A parameter tied across chunks (the token embedding and the LM head;
  // the compiler allows two chunks on different stages): the two stages
  // swap gradients and both add them, in one order. Ties go by name, each
  // with its own tag.
  std::map<std::string, std::vector<int64_t>> holdersOf; // sorted by name
  for (const auto &chunk : p.chunks)
    for (const auto &param : chunk->parameters)
      holdersOf[param->name].push_back(chunk->chunk_index);
  int64_t tie = -1;
  for (const auto &[name, holders] : holdersOf) {
    if (holders.size() != 2)
      continue;
    ++tie;
    for (Part &mine : rank.parts) {
      if (mine.chunk != holders[0] && mine.chunk != holders[1])
        continue;
      int64_t other = mine.chunk == holders[0] ? holders[1] : holders[0];
      const plan::ParameterT *param = nullptr;
      for (const auto &q : mine.plan->parameters)
        if (q->name == name)
          param = q.get();
      auto [g, bytes] = bufferBytes(mine, param->grad);
      std::vector<float> theirs(bytes / 4);
      int64_t t = -1 - tie;
      std::string what = "the gradient of tied parameter '" + name + "'";
      // Sends are buffered, so both sides send first.
      if (Status s = transfer(true, other, g, bytes, t, what); !s.ok())
        return Status::error(where(what) + ": " + s.message());
      if (Status s = transfer(false, other, theirs.data(), bytes, t, what);
          !s.ok())
        return Status::error(where(what) + ": " + s.message());
      float *mineG = static_cast<float *>(g);
      bool first = mine.chunk < other;
      for (size_t k = 0; k < theirs.size(); ++k)
        mineG[k] = first ? mineG[k] + theirs[k] : theirs[k] + mineG[k];
    }
  }

  // The loss and tokens live on the last stage: summed over pp, then dp.
  double totals[2] = {lossSum, counted};
  if (Status s = comm.allReduce(ppAxis, totals, totals, 2, CommDType::F64,
                                ReduceKind::Sum, "the step's loss and tokens (pp)");
      !s.ok())
    return Status::error(where("the loss") + ": " + s.message());
  if (dp > 1)
    if (Status s = comm.allReduce(dpAxis, totals, totals, 2, CommDType::F64,
                                  ReduceKind::Sum,
                                  "the step's loss and tokens (dp)");
        !s.ok())
      return Status::error(where("the loss") + ": " + s.message());
  rank.lossSum = totals[0];
  rank.normalizer = p.loss_normalizer == "tokens"
                        ? totals[1]
                        : double(p.num_microbatches * dp);
  if (rank.normalizer == 0)
    return Status::error(where("") + "every label of the global batch is "
                         "ignore_index " + std::to_string(p.ignore_index) +
                         "; there is no loss to train on");
  state.gradScale = 1.0 / (rank.normalizer * state.lossScale);
  // Every chunk's squares, then the norm over the stages, then the updates.
  state.gradSquares = 0;
  for (Part &part : rank.parts)
    if (Status s = part.executor->run(*part.plan->optimizer, state,
                                      part.normEnd);
        !s.ok())
      return Status::error(where("") + s.message());
  if (Status s = comm.allReduce(ppAxis, &state.gradSquares, &state.gradSquares,
                                1, CommDType::F64, ReduceKind::Sum,
                                "the gradient norm (pp)");
      !s.ok())
    return Status::error(where("the gradient norm") + ": " + s.message());
  state.gradNorm = std::sqrt(state.gradSquares) * state.gradScale;
  state.nonFinite = !std::isfinite(state.gradNorm);
  for (Part &part : rank.parts)
    if (Status s = part.executor->run(*part.plan->optimizer, state, SIZE_MAX,
                                      part.normEnd);
        !s.ok())
      return Status::error(where("") + s.message());
  rank.gradNorm = state.gradNorm;
  rank.nonFinite = state.nonFinite;
  return Status::success();
}

void Session::zeroGradients() {
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts)
      for (const auto &param : part.plan->parameters)
        std::memset(part.executor->data(param->grad), 0,
                    size_t(part.plan->buffers[param->grad]->bytes));
}

std::vector<Session::StateTensor> Session::stateTensors(bool moments) const {
  // Every parameter once, in chunk order (a tied one where it first
  // appears).
  std::vector<StateTensor> tensors;
  std::vector<const plan::PlanT *> pieces;
  if (plan_->chunks.empty())
    pieces.push_back(plan_.get());
  for (const auto &chunk : plan_->chunks)
    pieces.push_back(chunk.get());
  std::vector<std::string> seen;
  for (const plan::PlanT *piece : pieces)
    for (const auto &param : piece->parameters) {
      if (std::find(seen.begin(), seen.end(), param->name) != seen.end())
        continue;
      seen.push_back(param->name);
      tensors.push_back({param->name, param.get(), 0});
      if (moments) {
        tensors.push_back({"adam_m." + param->name, param.get(), 1});
        tensors.push_back({"adam_v." + param->name, param.get(), 2});
      }
    }
  return tensors;
}

namespace {
/// Copies a block (`local`, at `offset` in a tensor of shape `global`)
/// into the whole tensor, or out of it.
void copyBlock(float *local, const std::vector<int64_t> &shape,
               float *whole, const std::vector<int64_t> &global,
               const std::vector<int64_t> &offset, bool toWhole) {
  size_t rank = shape.size();
  if (rank == 0) {
    toWhole ? *whole = *local : *local = *whole;
    return;
  }
  int64_t inner = shape.back(), rows = 1;
  for (size_t d = 0; d + 1 < rank; ++d)
    rows *= shape[d];
  std::vector<int64_t> index(rank, 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t g = 0;
    for (size_t d = 0; d < rank; ++d)
      g = g * global[d] + offset[d] + index[d];
    float *src = local + r * inner, *dst = whole + g;
    if (toWhole)
      std::copy_n(src, inner, dst);
    else
      std::copy_n(dst, inner, src);
    for (size_t d = rank - 1; d-- > 0;) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
}

int64_t elements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// A number as a message shows it: the shortest text that reads back as
/// the same double (1e+300, not 1.0000000000000001e+300).
std::string numberText(double v) {
  char text[32];
  auto [end, error] = std::to_chars(text, text + sizeof(text), v);
  return error == std::errc() ? std::string(text, end) : std::to_string(v);
}
} // namespace

namespace {
/// A rank's copy of a parameter (by name) in one of its parts, if any.
template <typename PartT>
const plan::ParameterT *findParameter(PartT &part, const std::string &name) {
  for (const auto &param : part.plan->parameters)
    if (param->name == name)
      return param.get();
  return nullptr;
}
int32_t roleBuffer(const plan::ParameterT &p, int role) {
  return role == 0 ? p.value : role == 1 ? p.moment1 : p.moment2;
}
} // namespace

std::vector<float> Session::gather(const StateTensor &t) const {
  const plan::ParameterT &info = *t.param;
  std::vector<float> whole(size_t(elements(info.global_shape)), 0.0f);
  int ppAxis = mesh_.axisIndex("pp");
  for (const Rank &rank : ranks_) {
    // One rank per block: coordinate 0 on every axis the tensor is not
    // split over (the others hold copies); a pipeline stage holds its
    // chunks' parameters.
    bool representative = true;
    for (size_t a = 0; a < rank.coords.size(); ++a)
      if (rank.coords[a] != 0 && int(a) != ppAxis &&
          std::find(info.shard_axis.begin(), info.shard_axis.end(),
                    int32_t(a)) == info.shard_axis.end())
        representative = false;
    if (!representative)
      continue;
    for (const Part &part : rank.parts)
      if (const plan::ParameterT *p = findParameter(part, info.name)) {
        int32_t buffer = roleBuffer(*p, t.role);
        copyBlock(part.executor->template as<float>(buffer),
                  part.plan->buffers[buffer]->shape, whole.data(),
                  info.global_shape, blockOffset(*p, *part.plan, rank), true);
        break; // a tied copy holds the same values
      }
  }
  return whole;
}

void Session::scatter(const StateTensor &t, const std::vector<float> &whole) {
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts)
      if (const plan::ParameterT *p = findParameter(part, t.param->name)) {
        int32_t buffer = roleBuffer(*p, t.role);
        copyBlock(part.executor->as<float>(buffer),
                  part.plan->buffers[buffer]->shape,
                  const_cast<float *>(whole.data()), p->global_shape,
                  blockOffset(*p, *part.plan, rank), false);
      }
}

Status Session::save(const std::string &directory) const {
  if (!broken_.empty())
    return Status::error("not saving: a step failed and left the ranks out "
                         "of step (" + broken_ + ")");
  Checkpoint c;
  c.step = step_;
  c.dataPosition = dataPosition_;
  c.seed = options_.seed;
  c.scalars = {{"optimizer_steps", double(optimizerSteps_)},
               {"loss_scale", lossScale_},
               {"good_steps", double(goodSteps_)}};
  // Whole tensors: a checkpoint does not depend on the mesh.
  for (const StateTensor &t : stateTensors(true))
    c.tensors.push_back({t.name, t.param->global_shape, gather(t)});
  return saveCheckpoint(directory, c);
}

Status Session::load(const std::string &directory) {
  std::vector<StateTensor> wanted = stateTensors(true);
  // The most this plan's checkpoint can hold: its tensors (name, rank,
  // dims, data each) and room for the header and scalars.
  uint64_t maxBytes = uint64_t(1) << 16;
  for (const StateTensor &w : wanted)
    maxBytes += 8 + w.name.size() + 8 * w.param->global_shape.size() +
                4 * uint64_t(elements(w.param->global_shape));
  Result<Checkpoint> read = loadCheckpoint(directory, maxBytes);
  if (!read.ok())
    return Status::error(read.message());
  const Checkpoint &c = *read;
  std::string where = "the checkpoint in '" + directory + "'";
  if (c.tensors.size() != wanted.size())
    return Status::error(where + " has " + std::to_string(c.tensors.size()) +
                         " tensors; the plan '" + planPath_ + "' needs " +
                         std::to_string(wanted.size()) +
                         " (parameters and AdamW moments): was it saved "
                         "from another model?");
  // Check everything before changing anything. Tensors match by name: a
  // pipeline's chunks list their parameters in another order.
  std::vector<const CheckpointTensor *> found;
  for (const StateTensor &w : wanted) {
    const CheckpointTensor *t = nullptr;
    for (const CheckpointTensor &candidate : c.tensors)
      if (candidate.name == w.name)
        t = &candidate;
    if (!t)
      return Status::error(where + " has no '" + w.name + "', which the plan '" +
                           planPath_ + "' needs: was it saved from another "
                           "model?");
    if (t->shape != w.param->global_shape)
      return Status::error(where + " has '" + t->name +
                           "' with another shape than the plan's");
    // A non-finite value (or a negative second moment, whose square root
    // is NaN) would turn every parameter into NaN at the first update.
    bool second = wanted[found.size()].role == 2;
    for (size_t e = 0; e < t->data.size(); ++e)
      if (!std::isfinite(t->data[e]) || (second && t->data[e] < 0))
        return Status::error(where + " holds an impossible value: '" + t->name +
                             "' element " + std::to_string(e) + " is " +
                             numberText(t->data[e]) +
                             (second ? " (second moments are finite and >= 0)"
                                     : " (values are finite)") +
                             "; load another checkpoint");
    found.push_back(t);
  }
  // The training-state scalars: each known one exactly once, in its range.
  // The checksum matched, so a value out of range was written that way (or
  // edited) and would make the run go wrong later instead of failing here.
  std::optional<double> optimizerSteps, lossScale, goodSteps;
  for (const auto &[name, value] : c.scalars) {
    std::optional<double> *slot = name == "optimizer_steps" ? &optimizerSteps
                                  : name == "loss_scale"    ? &lossScale
                                  : name == "good_steps"    ? &goodSteps
                                                            : nullptr;
    if (!slot)
      return Status::error(where + " holds the scalar '" + name +
                           "', which this build does not know: was it "
                           "saved by another version of Loom?");
    *slot = value;
  }
  for (auto [name, slot] : {std::pair{"optimizer_steps", &optimizerSteps},
                            std::pair{"loss_scale", &lossScale},
                            std::pair{"good_steps", &goodSteps}})
    if (!*slot)
      return Status::error(where + " lacks the scalar '" + name +
                           "': was it saved by another version of Loom?");
  auto isCount = [](double v, double most) {
    return v >= 0 && v <= most && v == std::floor(v); // false for NaN
  };
  auto impossible = [&](const std::string &what) {
    return Status::error(where + " holds an impossible value: " + what +
                         "; load another checkpoint");
  };
  if (!isCount(*optimizerSteps, double(c.step)))
    return impossible("optimizer_steps " + numberText(*optimizerSteps) +
                      " (a whole number of updates, at most the step " +
                      std::to_string(c.step) + ")");
  if (!isCount(*goodSteps, *optimizerSteps))
    return impossible("good_steps " + numberText(*goodSteps) +
                      " (a whole number, at most optimizer_steps)");
  if (!(std::isfinite(*lossScale) && *lossScale > 0))
    return impossible("loss_scale " + numberText(*lossScale) +
                      " (a finite number > 0)");

  for (size_t i = 0; i < wanted.size(); ++i)
    scatter(wanted[i], found[i]->data);
  zeroGradients();
  step_ = c.step;
  dataPosition_ = c.dataPosition;
  options_.seed = c.seed;
  optimizerSteps_ = int64_t(*optimizerSteps);
  lossScale_ = plan_->precision->dynamic_loss_scaling ? *lossScale : 1.0;
  goodSteps_ = int64_t(*goodSteps);
  return Status::success();
}

Result<std::vector<float>> Session::parameter(const std::string &name) {
  if (!broken_.empty())
    return Status::error("a step failed and left the ranks out of step (" +
                         broken_ + ")");
  for (const StateTensor &t : stateTensors(false))
    if (t.name == name)
      return gather(t);
  return Status::error("the plan has no parameter '" + name + "'");
}

} // namespace runtime
} // namespace loom
