//===- BindCollectives.cpp - the CUDA backend's collectives and zero ------===//
//
// all_reduce, all_gather and reduce_scatter through the rank's communicator.
// The local communicator moves host memory, so the operands are staged
// through the host on the communication stream: the comm stream waits for
// the compute stream's work (an event), copies out, the host runs the
// collective, the comm stream copies in, and the compute stream waits for
// that (an event). A communicator with device collectives (nccl:
// Communicator::deviceCollectives) is called on the comm stream instead,
// with the same two events and no host copy; an all-gather or
// reduce-scatter along an inner dim (outer > 1) goes through a temporary
// in NCCL's layout, one member's block after another, and a device
// transpose (loom_coll_interleave after the gather, loom_coll_deinterleave
// before the reduce-scatter). A rank alone on the axis copies on the device;
// all_slice keeps the rank's block with a kernel. zero clears buffers.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"

#include <memory>

namespace loom {
namespace runtime {
namespace cuda {

namespace {

/// Runs `collective` on host copies of x (in) and y (out).
Status staged(Device &d, const Instruction &inst, const void *x, size_t inBytes,
              void *y, size_t outBytes, std::vector<float> &in,
              std::vector<float> &out,
              const std::function<Status(const float *, float *)> &collective) {
  in.resize(inBytes / 4);
  out.resize(outBytes / 4);
  if (Status s = d.order(Stream::Compute, Stream::Comm); !s.ok())
    return runError(inst, s.message());
  if (Status s = d.download(in.data(), x, inBytes, Stream::Comm); !s.ok())
    return runError(inst, s.message());
  if (Status s = collective(in.data(), out.data()); !s.ok())
    return runError(inst, s.message());
  if (Status s = d.upload(y, out.data(), outBytes, Stream::Comm); !s.ok())
    return runError(inst, s.message());
  if (Status s = d.order(Stream::Comm, Stream::Compute); !s.ok())
    return runError(inst, s.message());
  return Status::success();
}

/// all_gather or reduce_scatter of f32 views through device collectives.
Result<Work> deviceGatherScatter(DeviceCollectives &dc, Binder &b,
                                 const Instruction &inst, bool gather,
                                 int axis, float *x, float *y, size_t outer,
                                 size_t inner, size_t inBytes,
                                 size_t outBytes) {
  Device *d = &b.device();
  DeviceCollectives *c = &dc;
  std::string label = inst.label;
  int64_t parts = b.axisSize(axis);
  // One member's block per row of NCCL's layout when outer is 1: no
  // temporary, no transpose.
  float *temp = nullptr;
  Launch transpose;
  if (outer > 1) {
    Result<void *> t = b.scratch(gather ? outBytes : inBytes,
                                 "NCCL's layout of " + inst.label);
    if (!t.ok())
      return Status::error(t.message());
    temp = static_cast<float *>(*t);
    int64_t bytes = int64_t(inner * 4);
    int64_t total = parts * int64_t(outer) * bytes;
    transpose = launchOf(
        gather ? "loom_coll_interleave" : "loom_coll_deinterleave",
        gridFor(total), kBlockThreads,
        {gather ? static_cast<const void *>(temp) : x,
         gather ? static_cast<void *>(y) : temp,
         KernelArg::i64v(int64_t(outer)), KernelArg::i64v(bytes),
         KernelArg::i64v(parts)});
  }
  size_t count = outer * inner;
  return Work([=, &inst](const StepParams &) -> Status {
    if (gather) {
      if (Status s = onCommStream(*d, inst,
                                  [&](void *stream) {
                                    return c->allGather(axis, x,
                                                        temp ? temp : y, count,
                                                        CommDType::F32, stream,
                                                        label);
                                  });
          !s.ok())
        return s;
      return temp ? enqueue(*d, inst, transpose) : Status::success();
    }
    if (temp)
      if (Status s = enqueue(*d, inst, transpose); !s.ok())
        return s;
    return onCommStream(*d, inst, [&](void *stream) {
      return c->reduceScatter(axis, temp ? temp : x, y, count, CommDType::F32,
                              stream, label);
    });
  });
}

} // namespace

Result<Work> bind(const AllReduceInstr &r, const Instruction &inst,
                  Binder &b) {
  if (Status s = needsComm(inst, b, r.axis); !s.ok())
    return s;
  float *x = b.f32(r.x), *y = b.f32(r.y);
  size_t count = r.count;
  int axis = r.axis;
  ReduceKind kind = r.kind;
  // Alone on the axis: nothing to exchange (the CPU's communicator copies).
  Communicator *comm = b.axisSize(axis) > 1 ? b.comm() : nullptr;
  DeviceCollectives *dc = comm ? b.deviceCollectives() : nullptr;
  std::string label = inst.label;
  Device *d = &b.device();
  if (dc)
    return Work([=, &inst](const StepParams &) -> Status {
      return onCommStream(*d, inst, [&](void *stream) {
        return dc->allReduce(axis, x, y, count, CommDType::F32, kind, stream,
                             label);
      });
    });
  auto in = std::make_shared<std::vector<float>>();
  auto out = std::make_shared<std::vector<float>>();
  return Work([=, &inst](const StepParams &) -> Status {
    if (!comm) {
      if (x == y)
        return Status::success();
      Status s = d->copy(y, x, count * 4);
      return s.ok() ? s : runError(inst, s.message());
    }
    return staged(*d, inst, x, count * 4, y, count * 4, *in, *out,
                  [&](const float *hx, float *hy) {
                    return comm->allReduce(axis, hx, hy, count,
                                           CommDType::F32, kind, label);
                  });
  });
}

Result<Work> bind(const GatherScatterInstr &r, const Instruction &inst,
                  Binder &b) {
  size_t outer = r.outer, inner = r.inner;
  Device *d = &b.device();
  if (r.op == Op::AllSlice) {
    int64_t bytes = int64_t(inner * r.elementBytes);
    Launch l = launchOf(
        "loom_coll_slice", gridFor(int64_t(outer) * bytes), kBlockThreads,
        {b.storage(r.x), b.storage(r.y), KernelArg::i64v(int64_t(outer)),
         KernelArg::i64v(bytes), KernelArg::i64v(r.parts),
         KernelArg::i64v(r.coord)});
    return launchWork(*d, inst, std::move(l));
  }
  if (Status s = needsComm(inst, b, r.axis); !s.ok())
    return s;
  float *x = b.f32(r.x), *y = b.f32(r.y);
  bool gather = r.op == Op::AllGather;
  int axis = r.axis;
  Communicator *comm = b.axisSize(axis) > 1 ? b.comm() : nullptr;
  std::string label = inst.label;
  auto in = std::make_shared<std::vector<float>>();
  auto out = std::make_shared<std::vector<float>>();
  // The f32 views' sizes (a 16-bit buffer's shadow is twice its storage).
  auto viewBytes = [&](BufferId id) {
    return b.dtype(id) == plan::DType::F32 ? b.bytes(id) : b.bytes(id) * 2;
  };
  size_t inBytes = viewBytes(r.x), outBytes = viewBytes(r.y);
  if (DeviceCollectives *dc = comm ? b.deviceCollectives() : nullptr)
    return deviceGatherScatter(*dc, b, inst, gather, axis, x, y, outer, inner,
                               inBytes, outBytes);
  return Work([=, &inst](const StepParams &) -> Status {
    if (!comm) { // alone on the axis
      Status s = d->copy(y, x, outer * inner * 4);
      return s.ok() ? s : runError(inst, s.message());
    }
    return staged(*d, inst, x, inBytes, y, outBytes, *in, *out,
                  [&](const float *hx, float *hy) {
                    return gather ? comm->allGather(axis, hx, hy, outer, inner,
                                                    CommDType::F32, label)
                                  : comm->reduceScatter(axis, hx, hy, outer,
                                                        inner, CommDType::F32,
                                                        label);
                  });
  });
}

Result<Work> bind(const BucketShardInstr &r, const Instruction &inst,
                  Binder &b) {
  if (Status s = needsComm(inst, b, r.axis); !s.ok())
    return s;
  // The bucket's span in place: the rank's shard is its coord-th block (the
  // in-place form NCCL's all-gather and reduce-scatter accept).
  float *span = b.as<float>(r.first), *mine = span + size_t(r.coord) * r.shard;
  bool gather = r.op == Op::AllGather;
  int axis = r.axis;
  size_t shardBytes = r.shard * 4, spanBytes = shardBytes * size_t(r.parts);
  Communicator *comm = b.axisSize(axis) > 1 ? b.comm() : nullptr;
  if (!comm) // alone on the axis: the shard is the span
    return Work([](const StepParams &) { return Status::success(); });
  float *x = gather ? mine : span, *y = gather ? span : mine;
  size_t inBytes = gather ? shardBytes : spanBytes,
         outBytes = gather ? spanBytes : shardBytes, shard = r.shard;
  if (DeviceCollectives *dc = b.deviceCollectives())
    return deviceGatherScatter(*dc, b, inst, gather, axis, x, y, 1, shard,
                               inBytes, outBytes);
  Device *d = &b.device();
  std::string label = inst.label;
  auto in = std::make_shared<std::vector<float>>();
  auto out = std::make_shared<std::vector<float>>();
  return Work([=, &inst](const StepParams &) -> Status {
    return staged(*d, inst, x, inBytes, y, outBytes, *in, *out,
                  [&](const float *hx, float *hy) {
                    return gather ? comm->allGather(axis, hx, hy, 1, shard,
                                                    CommDType::F32, label)
                                  : comm->reduceScatter(axis, hx, hy, 1, shard,
                                                        CommDType::F32, label);
                  });
  });
}

Result<Work> bind(const ZeroInstr &r, const Instruction &inst, Binder &b) {
  std::vector<std::pair<void *, size_t>> spans;
  for (BufferId id : r.buffers)
    spans.push_back({b.storage(id), b.bytes(id)});
  Device *d = &b.device();
  return Work([spans, d, &inst](const StepParams &) -> Status {
    for (auto [p, n] : spans)
      if (Status s = d->clear(p, n); !s.ok())
        return runError(inst, s.message());
    return Status::success();
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
