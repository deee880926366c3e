//===- Lowering.h - what the plan builder's files share ---------*- C++ -*-===//
//
// Internal to lib/Plan. The plan builder (include/loom/Plan/PlanBuilder.h) is
// split by job:
//
//   PlanBuilder.cpp       buildPlan: one function's plan, or a pipeline's
//   LowerToPlan.cpp       one function's ops to instructions on buffers
//   OptimizerProgram.cpp  the optimizer program (dp buckets, grad_norm, adamw)
//   PipelinePlan.cpp      a pipeline's plan: its chunks and stage schedules
//   MemoryPlanner.cpp     the arenas' layout
//
// This header is how they call each other. Opcodes and attribute names come
// from the instruction set (include/loom/runtime/Instructions.def), never
// string literals.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_LIB_PLAN_LOWERING_H
#define LOOM_LIB_PLAN_LOWERING_H

#include "loom/Codegen/Kernel.h"
#include "loom/Plan/PlanBuilder.h"
#include "loom/runtime/InstructionSet.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/SmallVector.h"

#include <memory>
#include <vector>

namespace loom::detail {

/// Builders for an instruction's attributes.
inline void setInts(plan::InstructionT &inst, runtime::Attr name,
                    std::vector<int64_t> values) {
  auto a = std::make_unique<plan::AttributeT>();
  a->name = runtime::attrName(name);
  a->ints = std::move(values);
  inst.attrs.push_back(std::move(a));
}
inline void setFloat(plan::InstructionT &inst, runtime::Attr name,
                     double value) {
  auto a = std::make_unique<plan::AttributeT>();
  a->name = runtime::attrName(name);
  a->f = value;
  inst.attrs.push_back(std::move(a));
}
inline void setString(plan::InstructionT &inst, runtime::Attr name,
                      llvm::StringRef value) {
  auto a = std::make_unique<plan::AttributeT>();
  a->name = runtime::attrName(name);
  a->s = value.str();
  inst.attrs.push_back(std::move(a));
}

/// The index in plan.mesh of a mesh axis name, or -1.
inline int64_t meshAxisIndex(const plan::PlanT &plan, llvm::StringRef axis) {
  for (size_t i = 0; i < plan.mesh.size(); ++i)
    if (plan.mesh[i]->name == axis)
      return int64_t(i);
  return -1;
}
/// The size of a mesh axis of the plan (1 for an axis it does not have).
inline int64_t meshAxisSize(const plan::PlanT &plan, llvm::StringRef axis) {
  int64_t i = meshAxisIndex(plan, axis);
  return i < 0 ? 1 : plan.mesh[i]->size;
}

/// LowerToPlan.cpp: the plan of one training function (a whole model, or
/// one pipeline chunk): its buffers, parameters, inputs, the microbatch
/// program and the optimizer program, with both arenas laid out. A chunk's
/// plan is validated with its pipeline's; any other is validated here.
mlir::FailureOr<std::unique_ptr<plan::PlanT>>
lowerFunction(mlir::func::FuncOp fn, const PlanOptions &options);

/// LowerToPlan.cpp: a kernel description printed into the plan's kernel
/// table (both sources, arguments, runtime scalars, checks, launch rule).
std::unique_ptr<plan::KernelT> kernelEntry(const codegen::KernelDesc &desc);

/// OptimizerProgram.cpp: the optimizer program of a plan whose parameters,
/// gradient buffers and mesh are set: the data-parallel all-reduces of the
/// gradients in buckets, the gradient norm, one adamw per parameter, and the
/// zeroing of the gradients for the next step; with options.fuseOptimizer,
/// each adamw and its gradient's zeroing one generated kernel (added to
/// plan.kernels).
std::unique_ptr<plan::ProgramT>
buildOptimizerProgram(plan::PlanT &plan, const PlanOptions &options);

/// PipelinePlan.cpp: a pipeline's plan, one plan per chunk function (each
/// marked `loom.pipeline_chunk`) and the schedule that runs them.
mlir::FailureOr<std::unique_ptr<plan::PlanT>>
buildPipelinePlan(mlir::ModuleOp module,
                  llvm::SmallVector<mlir::func::FuncOp> chunks,
                  const PlanOptions &options);

/// MemoryPlanner.cpp: offsets in the persistent arena for the parameters,
/// their gradients and AdamW's moments; returns the arena's size.
int64_t layoutPersistent(plan::PlanT &plan);

} // namespace loom::detail

#endif // LOOM_LIB_PLAN_LOWERING_H
