//===- PlanKernels.h - a plan's generated kernels, compiled -----*- C++ -*-===//
//
// The CPU backend's load step for generated kernels: the plan's host C++
// (its prelude and every kernel's source, one translation unit) compiled
// through the kernel cache (HostCompiler.h) once per process, whatever the
// number of ranks, with one line on stderr saying what ran.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_PLANKERNELS_H
#define LOOM_RUNTIME_CPU_PLANKERNELS_H

#include "loom/runtime/Plan.h"
#include "loom/runtime/Status.h"
#include "loom/runtime/cpu/HostCompiler.h"

#include <memory>
#include <string>

namespace loom {
namespace runtime {
namespace cpu {

/// One translation unit of the plan's kernels (empty for a plan without).
std::string planHostSource(const plan::PlanT &plan);

/// The compiled kernels of `plan`, shared by every executor of the process
/// that asks for the same source. Prints, once per source, how long the
/// compile or the cache load took, or why the reference kernels run instead
/// (the returned error).
/// `report` (may be null) says whether the cache (on disk, or this
/// process's) had them and how long the load took.
Result<std::shared_ptr<HostModule>>
loadPlanKernels(const plan::PlanT &plan, HostCompileReport *report = nullptr);

/// With generated kernels off: the line saying so, once per process.
void noteReferenceKernels(const plan::PlanT &plan, const std::string &why);

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_PLANKERNELS_H
