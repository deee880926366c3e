//===- BindOptimizer.cpp - the CPU backend's gradient norm and AdamW ------===//
//
// grad_norm leaves the global norm in the step outputs; adamw reads it
// there (clipping, and skipping a step whose norm is not finite), so the
// norm never leaves the backend within a step.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Optimizer.h"

#include <cmath>

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const GradNormInstr &r, const Instruction &inst,
                    Binder &b) {
  if (r.axis >= 0)
    if (Status s = needsComm(inst, b, r.axis); !s.ok())
      return s;
  std::vector<std::pair<const float *, int64_t>> grads;
  for (BufferId id : r.counted)
    grads.push_back({b.as<float>(id), int64_t(b.bytes(id) / 4)});
  Communicator *comm = r.axis >= 0 ? b.comm() : nullptr;
  int axis = r.axis;
  bool partial = r.partial;
  std::string label = inst.label;
  return Kernel([=, &inst](const StepParams &params,
                           StepOutputs &outputs) -> Status {
    double sum = 0;
    for (auto [g, n] : grads)
      sum += sumOfSquares(g, n);
    if (comm)
      if (Status s = comm->allReduce(axis, &sum, &sum, 1, CommDType::F64,
                                     ReduceKind::Sum, label);
          !s.ok())
        return runError(inst, s.message());
    if (partial) {
      outputs.gradSquares += sum;
      return Status::success();
    }
    outputs.gradNorm = std::sqrt(sum) * params.gradScale;
    outputs.nonFinite = !std::isfinite(outputs.gradNorm);
    return Status::success();
  });
}

Result<Kernel> bind(const AdamWInstr &r, const Instruction &, Binder &b) {
  float *p = b.as<float>(r.param), *g = b.as<float>(r.grad),
        *m = b.as<float>(r.m), *v = b.as<float>(r.v);
  int64_t n = r.n;
  bool decay = r.decay;
  return Kernel([=](const StepParams &params, StepOutputs &outputs) {
    if (outputs.nonFinite)
      return Status::success(); // a skipped step changes nothing
    double scale =
        params.gradScale * clipCoefficient(outputs.gradNorm, params.clipGrad);
    adamwStep(params.adam, params.lr, decay ? params.weightDecay : 0.0,
              params.optimizerStep, p, g, m, v, n, scale);
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
