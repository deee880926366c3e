//===- CpuBackend.h - the CPU backend's entry point -------------*- C++ -*-===//
//
// The CPU backend (runtime/cpu/): host arenas, OpenBLAS GEMMs and the
// reference kernels (Kernels.h), the oracle every other backend is checked
// against. bf16 and f16 buffers are stored as 16 bits; an instruction
// reading one widens it into an f32 shadow first and one writing one
// rounds its result back (Float16.h). The shadows are planned with the
// plan: one scratch region, as large as the largest instruction's 16-bit
// operands, reused by every instruction.
//
// Applications create executors through loom/runtime/Backend.h, by name.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_CPUBACKEND_H
#define LOOM_RUNTIME_CPU_CPUBACKEND_H

#include "loom/runtime/Executor.h"

#include <memory>

namespace loom {
namespace runtime {
namespace cpu {

/// Allocates the arenas (zeroed), decodes the plan for the rank `rank`
/// and binds every instruction to a kernel. With LOOM_PROFILE=1 in the
/// environment, the executor times every instruction and prints the
/// seconds per op kind to stderr when it is destroyed.
Result<std::unique_ptr<Executor>> createCpuExecutor(const plan::PlanT &plan,
                                                    RankContext rank);

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_CPUBACKEND_H
