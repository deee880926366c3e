//===- BindKernel.cpp - the CPU backend's generated kernels ---------------===//
//
// A `kernel` instruction runs its generated host C++ (compiled at load by
// CpuExecutor through HostCompiler.h) with the step's scalars it asks for;
// a nonzero status is the kernel's failed check, named. Without the compiled
// kernels (no compiler on the machine, --no-jit) it runs its reference
// form: the region's ops on the reference kernels, one after another.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

namespace loom {
namespace runtime {
namespace cpu {

namespace {

using HostEntry = int (*)(void *const *, const long long *, const double *);

Result<Kernel> bindReference(const KernelInstr &r, Binder &b) {
  std::vector<Kernel> steps;
  for (const Instruction &ref : r.reference) {
    Result<Kernel> k = b.bindReferenceInstruction(ref);
    if (!k.ok())
      return Status::error(ref.where + ": " + k.message());
    steps.push_back(std::move(*k));
  }
  return Kernel([steps = std::move(steps)](const StepParams &params,
                                           StepOutputs &outputs) {
    for (const Kernel &step : steps)
      if (Status s = step(params, outputs); !s.ok())
        return s;
    return Status::success();
  });
}

} // namespace

Result<Kernel> bind(const KernelInstr &r, const Instruction &inst, Binder &b) {
  void *entry = b.kernelEntry(r.name);
  if (!entry)
    return bindReference(r, b);
  std::vector<void *> args;
  for (BufferId id : r.args)
    args.push_back(b.storage(id));
  std::vector<KernelParamInstr> params = r.params;
  std::vector<std::string> checks = r.checks;
  auto fn = reinterpret_cast<HostEntry>(entry);
  return Kernel([=](const StepParams &step, StepOutputs &outputs) {
    long long ints[16] = {};
    double reals[16] = {};
    std::vector<long long> moreInts;
    std::vector<double> moreReals;
    size_t ni = 0, nr = 0;
    for (const KernelParamInstr &p : params)
      (isRealParam(p.kind) ? nr : ni)++;
    long long *intSlots = ints;
    double *realSlots = reals;
    if (ni > 16) {
      moreInts.resize(ni);
      intSlots = moreInts.data();
    }
    if (nr > 16) {
      moreReals.resize(nr);
      realSlots = moreReals.data();
    }
    size_t i = 0, q = 0;
    for (const KernelParamInstr &p : params) {
      switch (p.kind) {
      case KernelParamKind::DropoutKey: {
        uint64_t key = dropoutKey(step.seed, p.site, uint64_t(step.step));
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
        realSlots[q++] = stepValueOf(p.value, step, outputs.gradNorm, outputs.nonFinite);
        break;
      case KernelParamKind::DropoutRate:
      case KernelParamKind::DropoutScale:
        realSlots[q++] = dropoutParamValue(p, step.training);
        break;
      }
    }
    int status = fn(args.data(), intSlots, realSlots);
    if (status == 0)
      return Status::success();
    return runError(inst, size_t(status) <= checks.size()
                              ? checks[size_t(status) - 1]
                              : "the generated kernel failed with status " +
                                    std::to_string(status));
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
