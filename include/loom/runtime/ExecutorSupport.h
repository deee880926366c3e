//===- ExecutorSupport.h - what every backend's executor shares -*- C++ -*-===//
//
// Small pieces the CPU and CUDA executors both need, kept in one place so
// the backends agree: the checks of a transfer, the 16-bit shadows' plan
// (which operands a backend that computes in f32 widens and rounds), and
// the step values a generated kernel reads.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_EXECUTORSUPPORT_H
#define LOOM_RUNTIME_EXECUTORSUPPORT_H

#include "loom/runtime/Decoder.h"
#include "loom/runtime/Executor.h"

#include <cstddef>

namespace loom {
namespace runtime {

bool isFloat16(plan::DType type);

/// The backends' one-line notes on stderr ("loom: 15 generated kernels
/// (host C++) loaded from the kernel cache"): on by default; a job's
/// processes other than rank 0 turn them off (Job::join), so a job of 8
/// processes prints each note once. Warnings and errors always print.
void setRuntimeNotes(bool on);
bool runtimeNotes();

/// Why `bytes` cannot be uploaded into (what = "upload") or downloaded from
/// buffer `buffer` of `plan`: no such buffer, or not its size.
Status checkTransfer(const plan::PlanT &plan, int32_t buffer, size_t bytes,
                     const char *what);

/// The bytes of one f32 shadow of a 16-bit buffer, rounded up to `align`.
size_t shadowBytes(const plan::BufferT &buffer, size_t align);
/// The most any one instruction of `decoded` needs for the f32 shadows of
/// its 16-bit operands, a kernel's reference form's included (each rounded
/// up to `align`): the size of the one scratch region every instruction's
/// shadows share.
size_t shadowScratchBytes(const plan::PlanT &plan, const DecodedPlan &decoded,
                          size_t align);
/// Whether the instruction adds into its output (so a 16-bit output's
/// shadow is widened before it, not only rounded after).
bool accumulatesIntoOutput(const Instruction &inst);

/// A step value a generated kernel reads (the kernel rounds it to float
/// once, as the reference adamwStep does), given the step's gradient norm
/// and whether it is not finite.
double stepValueOf(StepValue value, const StepParams &step, double gradNorm,
                   bool nonFinite);

/// The copies of a plan's Stash arena an executor holds: one per microbatch
/// in flight (plan.stash_slots), at least one.
int64_t stashSlotsOf(const plan::PlanT &plan);
/// Executor::selectStashSlot's rule for an executor that bound its
/// microbatch program `bindings` times (once per slot, or once for an
/// empty stash): the binding to run for `slot`, or an error naming it.
Result<int64_t> stashBindingFor(const plan::PlanT &plan, int64_t slot,
                                size_t bindings);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_EXECUTORSUPPORT_H
