//===- BindElementwise.cpp - the CUDA backend's elementwise kernels -------===//
//
// Arithmetic with broadcasting, scaling and accumulation, activations and
// their gradients, broadcasts, fills and dropout, as the CPU backend's
// runtime/cpu/BindElementwise.cpp, onto runtime/cuda/kernels/Elementwise.cu.
// Broadcast strides are collapsed and uploaded once, at bind time
// (KernelGeometry.h); casts are the lead's Cast.cu.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "KernelGeometry.h"
#include "loom/runtime/cpu/Kernels.h" // dropoutKey

namespace loom {
namespace runtime {
namespace cuda {

namespace {
KernelArg i64(int64_t v) { return KernelArg::i64v(v); }
KernelArg i32(int32_t v) { return KernelArg::i32v(v); }
KernelArg f32(float v) { return KernelArg::f32v(v); }

int binaryCode(BinaryKind kind) {
  switch (kind) {
  case BinaryKind::Add:
    return 0;
  case BinaryKind::Sub:
    return 1;
  case BinaryKind::Mul:
    return 2;
  case BinaryKind::Div:
    return 3;
  }
  return 0;
}

int activationCode(Activation kind) {
  switch (kind) {
  case Activation::Relu:
    return 0;
  case Activation::Silu:
    return 1;
  case Activation::Gelu:
    return 2;
  case Activation::GeluTanh:
    return 3;
  }
  return 0;
}
} // namespace

Result<Work> bind(const BinaryInstr &r, const Instruction &inst, Binder &b) {
  const float *x = b.f32(r.a), *w = b.f32(r.b);
  float *y = b.f32(r.y);
  int64_t n = numElements(r.yShape);
  StridedLoop loop = broadcastLoop(r.aShape, r.bShape, r.yShape);
  int rank = loop.contiguous() ? 0 : loop.rank();
  const long long *geometry = nullptr;
  if (rank > 0) {
    Result<const long long *> g =
        deviceGeometry(b, loop.flat(), "broadcast strides of " + inst.label);
    if (!g.ok())
      return Status::error(g.message());
    geometry = *g;
  }
  Device &d = b.device();
  Launch l =
      launchOf("loom_elementwise_binary", gridFor(n), kBlockThreads,
               {x, w, y, i64(n), i32(binaryCode(r.kind)), i32(rank), geometry});
  return launchWork(d, inst, std::move(l));
}

Result<Work> bind(const ScaleInstr &r, const Instruction &inst, Binder &b) {
  Device &d = b.device();
  Launch l = launchOf("loom_elementwise_scale", gridFor(r.n), kBlockThreads,
                      {b.f32(r.x), b.f32(r.y), i64(r.n), f32(r.factor),
                       i32(r.accumulate ? 1 : 0)});
  return launchWork(d, inst, std::move(l));
}

Result<Work> bind(const ActivationInstr &r, const Instruction &inst,
                  Binder &b) {
  Device &d = b.device();
  Launch l =
      launchOf("loom_elementwise_activation", gridFor(r.n), kBlockThreads,
               {b.f32(r.x), b.f32(r.y), i64(r.n), i32(activationCode(r.kind))});
  return launchWork(d, inst, std::move(l));
}

Result<Work> bind(const ActivationGradInstr &r, const Instruction &inst,
                  Binder &b) {
  Device &d = b.device();
  Launch l =
      launchOf("loom_elementwise_activation_grad", gridFor(r.n), kBlockThreads,
               {b.f32(r.x), b.f32(r.dy), b.f32(r.dx), i64(r.n),
                i32(activationCode(r.kind))});
  return launchWork(d, inst, std::move(l));
}

Result<Work> bind(const BroadcastInstr &r, const Instruction &inst, Binder &b) {
  return stridedGatherWork(b, inst, "loom_elementwise_broadcast",
                           broadcastLoop(r.xShape, r.yShape), b.f32(r.x),
                           b.f32(r.y), numElements(r.yShape),
                           "broadcast strides of " + inst.label);
}

Result<Work> bind(const FillInstr &r, const Instruction &inst, Binder &b) {
  Device &d = b.device();
  Launch l = launchOf("loom_elementwise_fill", gridFor(r.n), kBlockThreads,
                      {b.f32(r.y), i64(r.n), f32(r.value)});
  if (r.lossScale) {
    // The step's loss scale, read from a step slot (a captured graph
    // replays with each step's).
    Result<StepSlots> slot =
        b.stepSlots(0, 1, [](const StepParams &params, int64_t *, double *v) {
          v[0] = params.lossScale;
        });
    if (!slot.ok())
      return Status::error(slot.message());
    l = launchOf("loom_elementwise_fill_slot", gridFor(r.n), kBlockThreads,
                 {b.f32(r.y), i64(r.n), slot->reals});
  }
  return launchWork(d, inst, std::move(l));
}

Result<Work> bind(const DropoutInstr &r, const Instruction &inst, Binder &b) {
  const float *x = b.f32(r.x);
  float *y = b.f32(r.y);
  int64_t n = r.n;
  // The CPU's dropout: keep when uniform >= float(rate), kept elements
  // times float(1 / (1 - rate)).
  float rate = float(r.rate);
  float keepScale = float(1.0 / (1.0 - r.rate));
  // The microbatch's elements start at microbatch · (the whole tensor's
  // elements), as the CPU binder computes it; the block's own start is
  // added to that at each step.
  int64_t globalN = numElements(r.block.global);
  DropoutLoop dl = dropoutLoop(r.block, 0);
  int rank = dl.loop.contiguous() ? 0 : dl.loop.rank();
  const long long *geometry = nullptr;
  if (rank > 0) {
    Result<const long long *> g = deviceGeometry(
        b, dl.loop.flat(), "dropout block strides of " + inst.label);
    if (!g.ok())
      return Status::error(g.message());
    geometry = *g;
  }
  Device &d = b.device();
  std::string site = r.site;
  int64_t blockFirst = dl.first;
  // Contiguous: a thread per Philox block of four elements (n / 4 of
  // them, plus the partial ones at the ends).
  // The block's first element, the key and whether the run trains (else
  // x passes unchanged), per step and microbatch, in step slots the kernel
  // reads (a captured graph replays with each run's).
  Result<StepSlots> slots = b.stepSlots(
      3, 0,
      [site, globalN, blockFirst](const StepParams &params, int64_t *v,
                                  double *) {
        v[0] = params.microbatch * globalN + blockFirst;
        v[1] = int64_t(cpu::dropoutKey(params.seed, site, params.step));
        v[2] = params.training ? 1 : 0;
      });
  if (!slots.ok())
    return Status::error(slots.message());
  Launch l =
      rank == 0
          ? launchOf("loom_elementwise_dropout", gridFor(n / 4 + 2),
                     kBlockThreads,
                     {x, y, i64(n), slots->ints, f32(rate), f32(keepScale)})
          : launchOf("loom_elementwise_dropout_strided", gridFor(n),
                     kBlockThreads,
                     {x, y, i64(n), slots->ints, f32(rate), f32(keepScale),
                      i32(rank), geometry});
  return launchWork(d, inst, std::move(l));
}

} // namespace cuda
} // namespace runtime
} // namespace loom
