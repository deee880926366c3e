//===- Plan.h - the plan bundle: reading, writing, checking -----*- C++ -*-===//
//
// A plan is one rank's compiled training step (runtime/Plan.fbs): buffers
// with arena offsets and the programs that run on them. The in-memory form
// is FlatBuffers' object API (loom::plan::PlanT); loomc builds one and
// writes it, the runtime reads and checks it before anything runs.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_PLAN_H
#define LOOM_RUNTIME_PLAN_H

#include "loom/Pipeline/Schedule.h"
#include "loom/runtime/Status.h"
#include "runtime/Plan_generated.h"

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loom {
namespace runtime {

/// The on-disk format version. An older or newer runtime refuses the file
/// with a message naming both versions.
/// 5: generated CUDA kernels read their runtime scalars from device arrays.
/// 6: the Stash arena (pipeline chunks keep their in-flight activations),
///    model_flops and the recompute choice.
/// 7: the model's configs (model_config); generated kernels read dropout's
///    rate and scale as run-time values (evaluation turns dropout off).
constexpr uint32_t kPlanFormatVersion = 7;

/// Bytes per element of a buffer type (i1 is stored as one byte).
int64_t dtypeBytes(plan::DType dtype);
const char *dtypeName(plan::DType dtype);

/// Writes `plan` to `path` (through a temporary name and a rename).
Status writePlan(const plan::PlanT &plan, const std::string &path);

/// Reads and checks the plan at `path`. Fails, naming the file, when it is
/// missing, not a plan, of another format version, truncated or damaged,
/// or internally inconsistent (see validatePlan).
Result<std::unique_ptr<plan::PlanT>> readPlan(const std::string &path);

/// Reads and checks a plan from its FlatBuffers payload (the file's frame
/// already stripped): FlatBuffers' verifier, then validatePlan. readPlan
/// uses it; so does the plan fuzzer. `what` names the plan in messages.
Result<std::unique_ptr<plan::PlanT>>
readPlanPayload(const uint8_t *data, size_t size, const std::string &what);

/// Checks everything an executor relies on, for any backend, before any
/// instruction is prepared: buffers (known type, kind and arena; shape,
/// bytes and offset alignment; inside an arena of a sane size; no two live
/// at once sharing bytes), instructions (known ops with their operand
/// counts and attributes, the ranks and nonzero dimensions they index and
/// divide by, known attribute values), parameters (known initializers), the
/// mesh (at most kMaxRanks ranks), batch sizes without overflow, and for a
/// pipeline a schedule that cannot deadlock. `what` names the plan in
/// messages.
Status validatePlan(const plan::PlanT &plan, const std::string &what);

/// A pipeline plan's schedule (its stage_schedules) as schedule data: what
/// validatePlan proves deadlock-free and loomc's --explain reports.
pipeline::Schedule scheduleOfPlan(const plan::PlanT &plan);

/// Bounds that keep a crafted plan from asking for absurd resources: one
/// rank's arena, one buffer's elements, the mesh's ranks, one global
/// batch's tokens.
constexpr int64_t kMaxArenaBytes = int64_t(1) << 50;
constexpr int64_t kMaxBufferElements = int64_t(1) << 48;
constexpr int64_t kMaxRanks = int64_t(1) << 20;
constexpr int64_t kMaxBatchTokens = int64_t(1) << 40;

/// a * b into `out`; false when it overflows int64 or either is negative.
inline bool checkedMul(int64_t a, int64_t b, int64_t &out) {
  return a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, &out);
}
/// a + b into `out`; false when it overflows int64 or either is negative.
inline bool checkedAdd(int64_t a, int64_t b, int64_t &out) {
  return a >= 0 && b >= 0 && !__builtin_add_overflow(a, b, &out);
}
/// The product of `dims` into `out`; false on a negative dimension or
/// overflow.
inline bool checkedProduct(const std::vector<int64_t> &dims, int64_t &out) {
  out = 1;
  for (int64_t d : dims)
    if (!checkedMul(out, d, out))
      return false;
  return true;
}

/// The readable dump (`loomc --emit=plan-text`, `loom-run --dump`).
void printPlanText(const plan::PlanT &plan, std::ostream &os);

/// The model config `name` the plan records (Plan.model_config), or null.
const plan::ModelConfigT *findModelConfig(const plan::PlanT &plan,
                                          std::string_view name);

/// Every buffer an instruction touches: its inputs, its outputs, and for a
/// kernel its reference form's buffers and scratch (all live while it runs).
template <typename Fn>
void forEachBufferOf(const plan::InstructionT &inst, Fn &&fn) {
  for (int32_t id : inst.inputs)
    fn(id);
  for (int32_t id : inst.outputs)
    fn(id);
  for (int32_t id : inst.scratch)
    fn(id);
  for (const auto &ref : inst.reference)
    forEachBufferOf(*ref, fn);
}
/// The same, for rewriting the buffer indices.
template <typename Fn>
void forEachBufferOf(plan::InstructionT &inst, Fn &&fn) {
  for (int32_t &id : inst.inputs)
    fn(id);
  for (int32_t &id : inst.outputs)
    fn(id);
  for (int32_t &id : inst.scratch)
    fn(id);
  for (auto &ref : inst.reference)
    forEachBufferOf(*ref, fn);
}

/// The plan's generated kernels, for `loomc --emit=kernels`: each one's
/// arguments, runtime scalars, launch rule and checks, its host C++ and CUDA
/// C++, then the preludes they share.
void printKernelsText(const plan::PlanT &plan, std::ostream &os);

/// The attribute `name` of an instruction, or null.
const plan::AttributeT *findAttr(const plan::InstructionT &inst,
                                 const std::string &name);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_PLAN_H
