//===- BindKernel.cpp - the CUDA backend's generated kernels --------------===//
//
// A `kernel` instruction launches its generated CUDA C++ (compiled at load
// by the device: NVRTC on a GPU, the host compiler under emulation) as the
// plan's launch rule says, after zeroing the outputs its atomics add into.
// Its arguments follow the generated signature (docs/codegen.md): the
// buffers, the device arrays of its runtime scalars (`long long` dropout
// keys, offsets and counts; `double` step values), then the status word,
// which is this instruction's status flag: a failed check is reported when
// the step ends, naming the check.
//
// The runtime scalars are read from the instruction's step slots in device
// memory (Bind.h): filled on the host for each run, except the clip
// coefficient and the skip flag of the fused optimizer, which depend on the
// gradient norm on the device and are written there by a one-thread kernel
// before the kernel, so the host never waits for the norm. The reference
// form runs instead when the plan's kernels are not loaded.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/cpu/Kernels.h"

#include <cmath>
#include <cstring>

namespace loom {
namespace runtime {
namespace cuda {

namespace {

Result<Work> bindReference(const KernelInstr &r, Binder &b) {
  std::vector<Work> steps;
  for (const Instruction &ref : r.reference) {
    Result<Work> w = b.bindReferenceInstruction(ref);
    if (!w.ok())
      return Status::error(ref.where + ": " + w.message());
    steps.push_back(std::move(*w));
  }
  return Work([steps = std::move(steps)](const StepParams &params) {
    for (const Work &step : steps)
      if (Status s = step(params); !s.ok())
        return s;
    return Status::success();
  });
}

} // namespace

Result<Work> bind(const KernelInstr &r, const Instruction &inst, Binder &b) {
  if (!b.planKernelsLoaded())
    return bindReference(r, b);
  if (r.kernel < 0 || size_t(r.kernel) >= b.planKernels().size())
    return Status::error("no kernel " + std::to_string(r.kernel));
  const plan::KernelT &k = *b.planKernels()[size_t(r.kernel)];
  if (k.grid < 1 || k.block < 1 || k.block > 1024 || k.grid > 0x7fffffff)
    return Status::error("kernel " + r.name + " has a launch of " +
                         std::to_string(k.grid) + " blocks of " +
                         std::to_string(k.block) + " threads");
  Launch base;
  base.kernel = r.name;
  base.grid = Dim3{unsigned(k.grid), 1, 1};
  base.block = Dim3{unsigned(k.block), 1, 1};
  for (BufferId id : r.args)
    base.args.push_back(KernelArg(b.storage(id)));
  std::vector<std::pair<void *, size_t>> zeroed;
  for (int a : k.zero_args) {
    if (a < 0 || size_t(a) >= r.args.size())
      return Status::error("kernel " + r.name + " zeroes argument " +
                           std::to_string(a) + " of " +
                           std::to_string(r.args.size()));
    zeroed.push_back({b.storage(r.args[size_t(a)]), b.bytes(r.args[size_t(a)])});
  }
  std::vector<std::string> checks = r.checks;
  int *status = b.statusFlag(inst, [checks](int code) {
    return code >= 1 && size_t(code) <= checks.size()
               ? checks[size_t(code) - 1]
               : "the generated kernel failed with status " +
                     std::to_string(code);
  });
  if (!status)
    return Status::error("too many instructions report status flags");
  // The runtime scalars in the instruction's step slots, in the emitter's
  // slot order (ints, reals: lib/Codegen/Emit.cpp, ParamSlots).
  std::vector<KernelParamInstr> params = r.params;
  size_t ints = 0, reals = 0;
  std::vector<std::pair<size_t, StepValue>> normReals; // slot, value
  for (const KernelParamInstr &p : params) {
    if (!isRealParam(p.kind)) {
      ++ints;
      continue;
    }
    if (p.kind != KernelParamKind::Real) {
      ++reals;
      continue;
    }
    if (p.value == StepValue::GradCoef || p.value == StepValue::Skipped)
      normReals.push_back({reals, p.value});
    ++reals;
  }
  // One real more when the clip coefficient is computed on the device: the
  // step's maximum norm, which its kernel reads there.
  size_t clipSlot = reals;
  bool needsClip = false;
  for (auto [slot, value] : normReals)
    needsClip |= value == StepValue::GradCoef;
  Result<StepSlots> slots = b.stepSlots(
      ints, reals + (needsClip ? 1 : 0),
      [params, clipSlot, needsClip](const StepParams &step, int64_t *intSlots,
                                    double *realSlots) {
        size_t i = 0, q = 0;
        for (const KernelParamInstr &p : params) {
          switch (p.kind) {
          case KernelParamKind::DropoutKey: {
            uint64_t key =
                cpu::dropoutKey(step.seed, p.site, uint64_t(step.step));
            std::memcpy(&intSlots[i++], &key, sizeof(key));
            break;
          }
          case KernelParamKind::DropoutOffset:
            intSlots[i++] = step.microbatch * p.elements;
            break;
          case KernelParamKind::Count:
            intSlots[i++] = p.elements;
            break;
          case KernelParamKind::Real:
            // GradCoef: the step's gradScale, which the device multiplies
            // by the clip coefficient (below); Skipped: set on the device.
            realSlots[q++] = p.value == StepValue::GradCoef
                                 ? step.gradScale
                                 : stepValueOf(p.value, step, 0, false);
            break;
          case KernelParamKind::DropoutRate:
          case KernelParamKind::DropoutScale:
            realSlots[q++] = dropoutParamValue(p, step.training);
            break;
          }
        }
        if (needsClip)
          realSlots[clipSlot] = step.clipGrad;
      });
  if (!slots.ok())
    return Status::error(slots.message());
  base.args.push_back(KernelArg(slots->ints));
  base.args.push_back(KernelArg(slots->reals));
  base.args.push_back(KernelArg(status));
  // The clip coefficient and the skip flag depend on the gradient norm,
  // which is on the device: a one-thread kernel writes them into the slots
  // from the step values before the kernel reads them (every input in
  // device memory, so nothing is baked into a captured graph).
  std::vector<Launch> normLaunches;
  DeviceStepValues *values = b.stepValues();
  for (auto [slot, value] : normReals)
    normLaunches.push_back(launchOf(
        "loom_optimizer_norm_scalar", Dim3{1, 1, 1}, 32,
        {&values->gradNorm, &values->nonFinite, slots->reals + slot,
         KernelArg::i32v(value == StepValue::Skipped ? 1 : 0),
         slots->reals + clipSlot}));
  Device *d = &b.device();
  Launch l = base;
  return Work([=, &inst](const StepParams &) -> Status {
    for (const Launch &n : normLaunches)
      if (Status s = enqueue(*d, inst, n); !s.ok())
        return s;
    for (auto [p, n] : zeroed)
      if (Status s = d->clear(p, n); !s.ok())
        return runError(inst, s.message());
    return enqueue(*d, inst, l);
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
