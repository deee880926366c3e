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

#include "loom/runtime/Status.h"
#include "runtime/Plan_generated.h"

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>

namespace loom {
namespace runtime {

/// The on-disk format version. An older or newer runtime refuses the file
/// with a message naming both versions.
constexpr uint32_t kPlanFormatVersion = 3;

/// Bytes per element of a buffer type (i1 is stored as one byte).
int64_t dtypeBytes(plan::DType dtype);
const char *dtypeName(plan::DType dtype);

/// Writes `plan` to `path` (through a temporary name and a rename).
Status writePlan(const plan::PlanT &plan, const std::string &path);

/// Reads and checks the plan at `path`. Fails, naming the file, when it is
/// missing, not a plan, of another format version, truncated or damaged,
/// or internally inconsistent (see validatePlan).
Result<std::unique_ptr<plan::PlanT>> readPlan(const std::string &path);

/// Checks what the executor relies on: buffer indices in range, shapes that
/// match their byte sizes, buffers inside their arena, every parameter's
/// buffers present. `what` names the plan in messages.
Status validatePlan(const plan::PlanT &plan, const std::string &what);

/// The readable dump (`loomc --emit=plan-text`, `loom-run --dump`).
void printPlanText(const plan::PlanT &plan, std::ostream &os);

/// The attribute `name` of an instruction, or null.
const plan::AttributeT *findAttr(const plan::InstructionT &inst,
                                 const std::string &name);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_PLAN_H
