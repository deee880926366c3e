//===- Session.cpp - Loom's runtime API: train a compiled plan ------------===//

#include "loom/runtime/Session.h"
#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Init.h"
#include "loom/runtime/cpu/Executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>

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
  for (const auto &axis : p.mesh)
    if (axis->size != 1)
      return Status::error("the plan '" + planPath + "' is for a mesh with " +
                           axis->name + "=" + std::to_string(axis->size) +
                           "; this runtime runs single-rank plans");
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
  Result<std::unique_ptr<cpu::CpuExecutor>> executor =
      cpu::CpuExecutor::create(p);
  if (!executor.ok())
    return Status::error(executor.message());
  s->executor_ = std::move(*executor);
  s->lossScale_ = p.precision->dynamic_loss_scaling
                      ? p.precision->initial_loss_scale
                      : 1.0;
  return s;
}

void Session::initializeParameters() {
  for (const auto &param : plan_->parameters) {
    const plan::BufferT &b = *plan_->buffers[param->value];
    float *data = executor_->as<float>(param->value);
    int64_t n = b.bytes / 4;
    if (param->init == "normal") {
      TensorBlock block{param->global_shape, param->block_offset, b.shape};
      initNormal(data, block, param->std,
                 parameterKey(options_.seed, param->name));
    } else {
      float value = param->init == "zeros"  ? 0.0f
                    : param->init == "ones" ? 1.0f
                                            : float(param->constant);
      std::fill(data, data + n, value);
    }
    for (int32_t id : {param->grad, param->moment1, param->moment2})
      std::memset(executor_->data(id), 0, size_t(plan_->buffers[id]->bytes));
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

  int64_t perMicrobatch = p.micro_batch_size * p.seq_length;
  int32_t *tokenBuffer =
      executor_->as<int32_t>(p.inputs[size_t(tokensInput_)]->buffer);
  int32_t *labelBuffer =
      executor_->as<int32_t>(p.inputs[size_t(labelsInput_)]->buffer);
  const float *loss = executor_->as<float>(p.loss);
  double lossSum = 0;
  int64_t counted = 0;
  for (int64_t mb = 0; mb < p.num_microbatches; ++mb) {
    const int32_t *mbLabels = labels + mb * perMicrobatch;
    std::copy_n(tokens + mb * perMicrobatch, perMicrobatch, tokenBuffer);
    std::copy_n(mbLabels, perMicrobatch, labelBuffer);
    // Microbatch mb's tensors are elements [mb·n, (mb+1)·n) of the global
    // batch's: dropout draws by that global index.
    state.microbatch = mb;
    if (Status s = executor_->run(*p.microbatch, state); !s.ok()) {
      zeroGradients(); // nothing of a failed step may leak into the next
      return Status::error("step " + std::to_string(state.step) +
                           ", microbatch " + std::to_string(mb) + ": " +
                           s.message());
    }
    lossSum += *loss;
    // From the caller's labels: the input buffer's workspace is reused once
    // the program has read it.
    counted += std::count_if(mbLabels, mbLabels + perMicrobatch,
                             [&](int32_t l) { return l != p.ignore_index; });
  }
  double normalizer = p.loss_normalizer == "tokens" ? double(counted)
                                                    : double(p.num_microbatches);
  if (normalizer == 0) {
    zeroGradients();
    return Status::error("step " + std::to_string(state.step) +
                         ": every label of the global batch is ignore_index " +
                         std::to_string(p.ignore_index) +
                         "; there is no loss to train on");
  }
  state.gradScale = 1.0 / (normalizer * lossScale_);
  if (Status s = executor_->run(*p.optimizer, state); !s.ok()) {
    zeroGradients();
    return Status::error("step " + std::to_string(state.step) + ": " +
                         s.message());
  }

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

void Session::zeroGradients() {
  for (const auto &param : plan_->parameters)
    std::memset(executor_->data(param->grad), 0,
                size_t(plan_->buffers[param->grad]->bytes));
}

std::vector<std::pair<std::string, float *>>
Session::stateTensors(bool moments) {
  std::vector<std::pair<std::string, float *>> tensors;
  for (const auto &param : plan_->parameters) {
    tensors.push_back({param->name, executor_->as<float>(param->value)});
    if (moments) {
      tensors.push_back({"adam_m." + param->name,
                         executor_->as<float>(param->moment1)});
      tensors.push_back({"adam_v." + param->name,
                         executor_->as<float>(param->moment2)});
    }
  }
  return tensors;
}

Status Session::save(const std::string &directory) const {
  Checkpoint c;
  c.step = step_;
  c.dataPosition = dataPosition_;
  c.seed = options_.seed;
  c.scalars = {{"optimizer_steps", double(optimizerSteps_)},
               {"loss_scale", lossScale_},
               {"good_steps", double(goodSteps_)}};
  for (auto &[name, data] : const_cast<Session *>(this)->stateTensors(true)) {
    const std::string &param =
        name.rfind("adam_", 0) == 0 ? name.substr(7) : name;
    for (const auto &p : plan_->parameters)
      if (p->name == param) {
        const plan::BufferT &b = *plan_->buffers[p->value];
        c.tensors.push_back(
            {name, b.shape, std::vector<float>(data, data + b.bytes / 4)});
      }
  }
  return saveCheckpoint(directory, c);
}

Status Session::load(const std::string &directory) {
  Result<Checkpoint> read = loadCheckpoint(directory);
  if (!read.ok())
    return Status::error(read.message());
  const Checkpoint &c = *read;
  std::string where = "the checkpoint in '" + directory + "'";
  std::vector<std::pair<std::string, float *>> wanted = stateTensors(true);
  if (c.tensors.size() != wanted.size())
    return Status::error(where + " has " + std::to_string(c.tensors.size()) +
                         " tensors; the plan '" + planPath_ + "' needs " +
                         std::to_string(wanted.size()) +
                         " (parameters and AdamW moments): was it saved "
                         "from another model?");
  // Check everything before changing anything.
  for (size_t i = 0; i < wanted.size(); ++i) {
    const CheckpointTensor &t = c.tensors[i];
    const std::string &name = wanted[i].first;
    if (t.name != name)
      return Status::error(where + " holds '" + t.name + "' where the plan '" +
                           planPath_ + "' expects '" + name +
                           "': was it saved from another model?");
    const std::string &param =
        name.rfind("adam_", 0) == 0 ? name.substr(7) : name;
    for (const auto &p : plan_->parameters)
      if (p->name == param && t.shape != plan_->buffers[p->value]->shape)
        return Status::error(where + " has '" + name +
                             "' with another shape than the plan's");
  }
  for (size_t i = 0; i < wanted.size(); ++i)
    std::copy(c.tensors[i].data.begin(), c.tensors[i].data.end(),
              wanted[i].second);
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
  for (const auto &param : plan_->parameters)
    if (param->name == name) {
      const float *data = executor_->as<float>(param->value);
      return std::vector<float>(
          data, data + plan_->buffers[param->value]->bytes / 4);
    }
  return Status::error("the plan has no parameter '" + name + "'");
}

} // namespace runtime
} // namespace loom
