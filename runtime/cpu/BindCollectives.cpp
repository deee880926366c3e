//===- BindCollectives.cpp - the CPU backend's collectives ----------------===//
//
// all_reduce, all_gather, reduce_scatter through the rank's communicator
// on host buffers; all_slice keeps the rank's block without communication.
// A rank alone on the axis (no communicator) copies. The distributed
// optimizer's bucket collectives work on the bucket's span in place.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>

namespace loom {
namespace runtime {
namespace cpu {

Result<Kernel> bind(const AllReduceInstr &r, const Instruction &inst,
                    Binder &b) {
  if (Status s = needsComm(inst, b, r.axis); !s.ok())
    return s;
  float *x = b.f32(r.x), *y = b.f32(r.y);
  size_t count = r.count;
  int axis = r.axis;
  ReduceKind kind = r.kind;
  Communicator *comm = b.comm();
  std::string label = inst.label;
  return Kernel([=, &inst](const StepParams &, StepOutputs &) -> Status {
    if (!comm) {
      if (x != y)
        std::copy_n(x, count, y);
      return Status::success();
    }
    Status s = comm->allReduce(axis, x, y, count, CommDType::F32, kind, label);
    return s.ok() ? s : runError(inst, s.message());
  });
}

Result<Kernel> bind(const GatherScatterInstr &r, const Instruction &inst,
                    Binder &b) {
  size_t outer = r.outer, inner = r.inner;
  if (r.op == Op::AllSlice) {
    // Raw storage of any element type, and no communicator needed: the
    // rank keeps its block of what every rank holds.
    size_t bytes = inner * r.elementBytes, n = size_t(r.parts),
           g = size_t(r.coord);
    const void *x = b.storage(r.x);
    void *y = b.storage(r.y);
    return Kernel([=](const StepParams &, StepOutputs &) {
      sliceBlock(x, y, outer, bytes, n, g);
      return Status::success();
    });
  }
  if (Status s = needsComm(inst, b, r.axis); !s.ok())
    return s;
  float *x = b.f32(r.x), *y = b.f32(r.y);
  bool gather = r.op == Op::AllGather;
  int axis = r.axis;
  Communicator *comm = b.comm();
  std::string label = inst.label;
  return Kernel([=, &inst](const StepParams &, StepOutputs &) -> Status {
    if (!comm) { // alone on the axis
      std::copy_n(x, outer * inner, y);
      return Status::success();
    }
    Status s = gather ? comm->allGather(axis, x, y, outer, inner,
                                        CommDType::F32, label)
                      : comm->reduceScatter(axis, x, y, outer, inner,
                                            CommDType::F32, label);
    return s.ok() ? s : runError(inst, s.message());
  });
}

Result<Kernel> bind(const BucketShardInstr &r, const Instruction &inst,
                    Binder &b) {
  if (Status s = needsComm(inst, b, r.axis); !s.ok())
    return s;
  float *span = b.as<float>(r.first), *mine = span + size_t(r.coord) * r.shard;
  size_t shard = r.shard;
  bool gather = r.op == Op::AllGather;
  int axis = r.axis;
  Communicator *comm = b.comm();
  std::string label = inst.label;
  return Kernel([=, &inst](const StepParams &, StepOutputs &) -> Status {
    if (!comm) // alone on the axis: the shard is the span
      return Status::success();
    // In place: the communicators take a private copy where the output
    // overlaps the rank's own input.
    Status s = gather ? comm->allGather(axis, mine, span, 1, shard,
                                        CommDType::F32, label)
                      : comm->reduceScatter(axis, span, mine, 1, shard,
                                            CommDType::F32, label);
    return s.ok() ? s : runError(inst, s.message());
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
