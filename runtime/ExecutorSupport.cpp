//===- ExecutorSupport.cpp - what every backend's executor shares ---------===//

#include "loom/runtime/ExecutorSupport.h"

#include <algorithm>
#include <cmath>

#include <atomic>

namespace loom {
namespace runtime {

namespace {
std::atomic<bool> notesOn{true};
} // namespace

void setRuntimeNotes(bool on) { notesOn = on; }
bool runtimeNotes() { return notesOn; }

bool isFloat16(plan::DType t) {
  return t == plan::DType::BF16 || t == plan::DType::F16;
}

Status checkTransfer(const plan::PlanT &plan, int32_t buffer, size_t bytes,
                     const char *what) {
  if (buffer < 0 || size_t(buffer) >= plan.buffers.size())
    return Status::error(std::string("cannot ") + what + " buffer " +
                         std::to_string(buffer) + ": the plan has " +
                         std::to_string(plan.buffers.size()) + " buffers");
  const plan::BufferT &b = *plan.buffers[size_t(buffer)];
  if (bytes != size_t(b.bytes))
    return Status::error(std::string("cannot ") + what + " " +
                         std::to_string(bytes) + " bytes of buffer '" + b.name +
                         "', which holds " + std::to_string(b.bytes));
  return Status::success();
}

size_t shadowBytes(const plan::BufferT &b, size_t align) {
  return (size_t(numElements(b.shape)) * 4 + align - 1) / align * align;
}

namespace {
/// The operands an instruction's work may want f32 views of: its own, and
/// for a kernel its reference form's (which may use scratch temporaries).
void operandsOf(const Instruction &inst, std::vector<BufferId> &ids) {
  if (!inst.raw) {
    ids.insert(ids.end(), inst.inputs.begin(), inst.inputs.end());
    ids.insert(ids.end(), inst.outputs.begin(), inst.outputs.end());
  }
  if (const auto *k = std::get_if<KernelInstr>(&inst.record))
    for (const Instruction &ref : k->reference)
      operandsOf(ref, ids);
}
} // namespace

size_t shadowScratchBytes(const plan::PlanT &plan, const DecodedPlan &decoded,
                          size_t align) {
  size_t most = 0;
  for (const DecodedProgram *program : {&decoded.microbatch, &decoded.optimizer})
    for (const Instruction &inst : program->instructions) {
      std::vector<BufferId> ids;
      operandsOf(inst, ids);
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      size_t need = 0;
      for (BufferId id : ids)
        if (isFloat16(plan.buffers[size_t(id)]->dtype))
          need += shadowBytes(*plan.buffers[size_t(id)], align);
      most = std::max(most, need);
    }
  return most;
}

bool accumulatesIntoOutput(const Instruction &inst) {
  if (const auto *m = std::get_if<MatmulInstr>(&inst.record))
    return m->beta != 0;
  if (const auto *c = std::get_if<CastInstr>(&inst.record))
    return c->accumulate;
  if (const auto *e = std::get_if<EmbeddingInstr>(&inst.record))
    return !e->forward && e->accumulate;
  return inst.op == Op::Accumulate;
}

double stepValueOf(StepValue value, const StepParams &step, double gradNorm,
                   bool nonFinite) {
  int64_t t = std::max<int64_t>(step.optimizerStep, 1);
  switch (value) {
  case StepValue::Lr:
    return step.lr;
  case StepValue::LossScale:
    return step.lossScale;
  case StepValue::GradScale:
    return step.gradScale;
  case StepValue::WeightDecay:
    return step.weightDecay;
  case StepValue::GradCoef:
    return step.gradScale * clipCoefficient(gradNorm, step.clipGrad);
  case StepValue::Skipped:
    return nonFinite ? 1.0 : 0.0;
  case StepValue::AdamBeta1:
    return step.adam.beta1;
  case StepValue::AdamBeta2:
    return step.adam.beta2;
  case StepValue::AdamOneMinusBeta1:
    return 1.0 - step.adam.beta1;
  case StepValue::AdamOneMinusBeta2:
    return 1.0 - step.adam.beta2;
  case StepValue::AdamInvCorrection1:
    return 1.0 / (1.0 - std::pow(step.adam.beta1, double(t)));
  case StepValue::AdamInvCorrection2:
    return 1.0 / (1.0 - std::pow(step.adam.beta2, double(t)));
  case StepValue::AdamEps:
    return step.adam.eps;
  }
  return 0;
}

int64_t stashSlotsOf(const plan::PlanT &plan) {
  return std::max<int64_t>(1, plan.stash_slots);
}

Result<int64_t> stashBindingFor(const plan::PlanT &plan, int64_t slot,
                                size_t bindings) {
  if (slot < 0 || slot >= stashSlotsOf(plan))
    return Status::error("stash slot " + std::to_string(slot) +
                         " is not one of the plan's " +
                         std::to_string(stashSlotsOf(plan)));
  // An empty stash has one binding, whatever the slot.
  return bindings > 1 ? slot : int64_t(0);
}

} // namespace runtime
} // namespace loom
