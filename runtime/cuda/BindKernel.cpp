//===- BindKernel.cpp - the CUDA backend's generated kernels --------------===//
//
// A `kernel` instruction launches its generated CUDA C++ (compiled at load
// by the device: NVRTC on a GPU, the host compiler under emulation) as the
// plan's launch rule says, after zeroing the outputs its atomics add into.
// Its arguments follow the generated signature (docs/codegen.md): the
// buffers, then each runtime scalar in order (`long long` for dropout keys,
// offsets and counts; `double` for step values), then the status word,
// which is this instruction's status flag: a failed check is reported when
// the step ends, naming the check.
//
// The reference form runs instead when the plan's kernels are not loaded,
// and for a kernel that reads the clip coefficient or the skip flag by value
// (the fused optimizer): those depend on the gradient norm, which stays on
// the device, so the hand-written adamw (which reads it there) runs rather
// than the host waiting for the norm inside the step.
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

bool readsTheNorm(const KernelInstr &r) {
  for (const KernelParamInstr &p : r.params)
    if (p.kind == KernelParamKind::Real &&
        (p.value == StepValue::GradCoef || p.value == StepValue::Skipped))
      return true;
  return false;
}

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
  if (!b.planKernelsLoaded() || readsTheNorm(r))
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
  std::vector<KernelParamInstr> params = r.params;
  Device *d = &b.device();
  return Work([=, &inst](const StepParams &step) -> Status {
    Launch l = base;
    for (const KernelParamInstr &p : params) {
      switch (p.kind) {
      case KernelParamKind::DropoutKey: {
        uint64_t key =
            cpu::dropoutKey(step.seed, p.site, uint64_t(step.step));
        int64_t bits;
        std::memcpy(&bits, &key, sizeof(bits));
        l.args.push_back(KernelArg::i64v(bits));
        break;
      }
      case KernelParamKind::DropoutOffset:
        l.args.push_back(KernelArg::i64v(step.microbatch * p.elements));
        break;
      case KernelParamKind::Count:
        l.args.push_back(KernelArg::i64v(p.elements));
        break;
      case KernelParamKind::Real:
        l.args.push_back(KernelArg::f64v(
            stepValueOf(p.value, step, /*gradNorm=*/0, /*nonFinite=*/false)));
        break;
      }
    }
    l.args.push_back(KernelArg(status));
    for (auto [p, n] : zeroed)
      if (Status s = d->clear(p, n); !s.ok())
        return runError(inst, s.message());
    return enqueue(*d, inst, l);
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
