//===- Session.cpp - Loom's runtime API: train a compiled plan ------------===//

#include "loom/runtime/Session.h"
#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/cpu/Executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

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
  if (int a = s->mesh_.axisIndex("pp"); a >= 0 && s->mesh_.sizes[a] > 1)
    return Status::error("the plan '" + planPath + "' is for a mesh with " +
                         meshText + "; this runtime runs pp=1 plans "
                         "(pipeline parallelism is not built yet)");
  if (options.ranks && *options.ranks != numRanks)
    return Status::error(
        "the plan '" + planPath + "' is for a mesh of " +
        std::to_string(numRanks) + " ranks (" + meshText + "); the launcher "
        "gives " + std::to_string(*options.ranks) + ". Launch " +
        std::to_string(numRanks) + " ranks, or recompile with a --mesh of " +
        std::to_string(*options.ranks) + " ranks");
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    const plan::InputT &input = *p.inputs[i];
    const plan::BufferT &b = *p.buffers[input.buffer];
    int32_t *slot = input.name == "tokens"   ? &s->tokensInput_
                    : input.name == "labels" ? &s->labelsInput_
                                             : nullptr;
    if (!slot)
      return Status::error("the model of '" + planPath + "' takes input '" +
                           input.name +
                           "'; a session feeds the inputs tokens and labels");
    if (b.dtype != plan::DType::I32 || b.shape.size() != 2 ||
        b.shape[0] != p.micro_batch_size || b.shape[1] != p.seq_length)
      return Status::error("input '" + input.name + "' of '" + planPath +
                           "' must be i32[micro-batch, seq]");
    *slot = int32_t(i);
  }
  if (p.loss_normalizer == "tokens" && p.labels_input != s->labelsInput_)
    return Status::error("the plan '" + planPath +
                         "' normalises the loss by the tokens of an input "
                         "other than 'labels'; a session feeds tokens and "
                         "labels");
  if (s->tokensInput_ < 0 || s->labelsInput_ < 0)
    return Status::error("the model of '" + planPath +
                         "' must take the inputs tokens and labels");
  if (p.optimizer_defaults->decay_style != "cosine" &&
      p.optimizer_defaults->decay_style != "linear" &&
      p.optimizer_defaults->decay_style != "constant")
    return Status::error("the plan '" + planPath +
                         "' has an unknown decay style");
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
  for (int64_t r = 0; r < numRanks; ++r) {
    Rank rank;
    rank.coords = s->mesh_.coordinates(r);
    cpu::RankContext context;
    context.coords = rank.coords;
    context.comm = s->comm_ ? &s->comm_->forRank(r) : nullptr;
    Result<std::unique_ptr<cpu::CpuExecutor>> executor =
        cpu::CpuExecutor::create(p, context);
    if (!executor.ok())
      return Status::error(numRanks > 1 ? s->mesh_.describe(r) + ": " +
                                              executor.message()
                                        : executor.message());
    rank.executor = std::move(*executor);
    s->ranks_.push_back(std::move(rank));
  }
  s->lossScale_ = p.precision->dynamic_loss_scaling
                      ? p.precision->initial_loss_scale
                      : 1.0;
  return s;
}

std::vector<int64_t> Session::blockOffset(const plan::ParameterT &p,
                                          const Rank &rank) const {
  const plan::BufferT &b = *plan_->buffers[p.value];
  std::vector<int64_t> offset(b.shape.size(), 0);
  for (size_t d = 0; d < p.shard_axis.size() && d < offset.size(); ++d)
    if (p.shard_axis[d] >= 0)
      offset[d] = rank.coords[size_t(p.shard_axis[d])] * b.shape[d];
  return offset;
}

void Session::initializeParameters() {
  for (Rank &rank : ranks_)
    for (const auto &param : plan_->parameters) {
      const plan::BufferT &b = *plan_->buffers[param->value];
      float *data = rank.executor->as<float>(param->value);
      int64_t n = b.bytes / 4;
      if (param->init == "normal") {
        // Keyed by the global element index: every mesh draws one model.
        TensorBlock block{param->global_shape, blockOffset(*param, rank),
                          b.shape};
        initNormal(data, block, param->std,
                   parameterKey(options_.seed, param->name));
      } else {
        float value = param->init == "zeros"  ? 0.0f
                      : param->init == "ones" ? 1.0f
                                              : float(param->constant);
        std::fill(data, data + n, value);
      }
      for (int32_t id : {param->grad, param->moment1, param->moment2})
        std::memset(rank.executor->data(id), 0,
                    size_t(plan_->buffers[id]->bytes));
    }
  step_ = optimizerSteps_ = dataPosition_ = goodSteps_ = 0;
  lossScale_ = plan_->precision->dynamic_loss_scaling
                   ? plan_->precision->initial_loss_scale
                   : 1.0;
}

Result<StepMetrics> Session::step(const TokenDataset &data) {
  const plan::PlanT &p = *plan_;
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
  if (ranks_.size() == 1) {
    results[0] = runRank(ranks_[0], tokens, labels, state);
  } else {
    // Every rank a thread; the first to fail aborts the others' collectives.
    std::mutex mutex;
    bool failed = false;
    std::vector<std::thread> threads;
    for (size_t r = 0; r < ranks_.size(); ++r)
      threads.emplace_back([&, r] {
#ifdef _OPENMP
        omp_set_num_threads(std::max(
            1, omp_get_num_procs() / int(ranks_.size())));
#endif
        Status s = runRank(ranks_[r], tokens, labels, state);
        if (!s.ok()) {
          s = Status::error(mesh_.describe(int64_t(r)) + ": " + s.message());
          std::lock_guard<std::mutex> lock(mutex);
          if (!failed) {
            failed = true;
            comm_->forRank(int64_t(r)).abort(s.message());
            results[r] = s;
          }
        }
      });
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
  cpu::CpuExecutor &ex = *rank.executor;
  int dpAxis = mesh_.axisIndex("dp");
  int64_t dp = dpAxis >= 0 ? mesh_.sizes[size_t(dpAxis)] : 1;
  int64_t d = dpAxis >= 0 ? rank.coords[size_t(dpAxis)] : 0;
  int64_t perMicrobatch = p.micro_batch_size * p.seq_length;
  int32_t *tokenBuffer = ex.as<int32_t>(p.inputs[size_t(tokensInput_)]->buffer);
  int32_t *labelBuffer = ex.as<int32_t>(p.inputs[size_t(labelsInput_)]->buffer);
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

void Session::zeroGradients() {
  for (Rank &rank : ranks_)
    for (const auto &param : plan_->parameters)
      std::memset(rank.executor->data(param->grad), 0,
                  size_t(plan_->buffers[param->grad]->bytes));
}

std::vector<Session::StateTensor> Session::stateTensors(bool moments) const {
  std::vector<StateTensor> tensors;
  for (const auto &param : plan_->parameters) {
    tensors.push_back({param->name, param.get(), param->value});
    if (moments) {
      tensors.push_back({"adam_m." + param->name, param.get(), param->moment1});
      tensors.push_back({"adam_v." + param->name, param.get(), param->moment2});
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
} // namespace

std::vector<float> Session::gather(const StateTensor &t) const {
  const plan::ParameterT &p = *t.param;
  std::vector<float> whole(size_t(elements(p.global_shape)), 0.0f);
  for (const Rank &rank : ranks_) {
    // One rank per block: coordinate 0 on every axis the tensor is not
    // split over (the others hold copies).
    bool representative = true;
    for (size_t a = 0; a < rank.coords.size(); ++a)
      if (rank.coords[a] != 0 &&
          std::find(p.shard_axis.begin(), p.shard_axis.end(), int32_t(a)) ==
              p.shard_axis.end())
        representative = false;
    if (!representative)
      continue;
    copyBlock(rank.executor->as<float>(t.buffer),
              plan_->buffers[t.buffer]->shape, whole.data(), p.global_shape,
              blockOffset(p, rank), true);
  }
  return whole;
}

void Session::scatter(const StateTensor &t, const std::vector<float> &whole) {
  const plan::ParameterT &p = *t.param;
  for (Rank &rank : ranks_)
    copyBlock(rank.executor->as<float>(t.buffer),
              plan_->buffers[t.buffer]->shape,
              const_cast<float *>(whole.data()), p.global_shape,
              blockOffset(p, rank), false);
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
  Result<Checkpoint> read = loadCheckpoint(directory);
  if (!read.ok())
    return Status::error(read.message());
  const Checkpoint &c = *read;
  std::string where = "the checkpoint in '" + directory + "'";
  std::vector<StateTensor> wanted = stateTensors(true);
  if (c.tensors.size() != wanted.size())
    return Status::error(where + " has " + std::to_string(c.tensors.size()) +
                         " tensors; the plan '" + planPath_ + "' needs " +
                         std::to_string(wanted.size()) +
                         " (parameters and AdamW moments): was it saved "
                         "from another model?");
  // Check everything before changing anything.
  for (size_t i = 0; i < wanted.size(); ++i) {
    const CheckpointTensor &t = c.tensors[i];
    if (t.name != wanted[i].name)
      return Status::error(where + " holds '" + t.name + "' where the plan '" +
                           planPath_ + "' expects '" + wanted[i].name +
                           "': was it saved from another model?");
    if (t.shape != wanted[i].param->global_shape)
      return Status::error(where + " has '" + t.name +
                           "' with another shape than the plan's");
  }
  for (size_t i = 0; i < wanted.size(); ++i)
    scatter(wanted[i], c.tensors[i].data);
  zeroGradients();
  step_ = c.step;
  dataPosition_ = c.dataPosition;
  options_.seed = c.seed;
  for (const auto &[name, value] : c.scalars) {
    if (name == "optimizer_steps")
      optimizerSteps_ = int64_t(value);
    else if (name == "loss_scale")
      lossScale_ = plan_->precision->dynamic_loss_scaling ? value : 1.0;
    else if (name == "good_steps")
      goodSteps_ = int64_t(value);
  }
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
