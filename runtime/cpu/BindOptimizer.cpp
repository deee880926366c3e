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
  if (r.shardAxis >= 0)
    if (Status s = needsComm(inst, b, r.shardAxis); !s.ok())
      return s;
  std::vector<std::pair<const float *, int64_t>> grads;
  for (size_t i = 0; i < r.counted.size(); ++i) {
    const float *g = b.as<float>(r.counted[i]);
    if (r.ranges.empty())
      grads.push_back({g, int64_t(b.bytes(r.counted[i]) / 4)});
    else if (r.ranges[i].second > 0)
      grads.push_back({g + r.ranges[i].first, r.ranges[i].second});
  }
  Communicator *comm = r.axis >= 0 ? b.comm() : nullptr;
  Communicator *shardComm = r.shardAxis >= 0 ? b.comm() : nullptr;
  int axis = r.axis, shardAxis = r.shardAxis;
  bool partial = r.partial;
  std::string label = inst.label;
  return Kernel([=, &inst](const StepParams &params,
                           StepOutputs &outputs) -> Status {
    double sum = 0;
    for (auto [g, n] : grads)
      sum += sumOfSquares(g, n);
    // The distributed optimizer: the shards' squares over dp first.
    if (shardComm)
      if (Status s = shardComm->allReduce(
              shardAxis, &sum, &sum, 1, CommDType::F64, ReduceKind::Sum, label);
          !s.ok())
        return runError(inst, s.message());
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
  float *p = b.as<float>(r.param) + r.offset,
        *g = b.as<float>(r.grad) + r.offset,
        *m = b.as<float>(r.m) + r.momentOffset,
        *v = b.as<float>(r.v) + r.momentOffset;
  int64_t n = r.n;
  bool decay = r.decay;
  return Kernel([=](const StepParams &params, StepOutputs &outputs) {
    if (outputs.nonFinite || n == 0) // or a shard without this parameter
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
