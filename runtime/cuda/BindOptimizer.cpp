//===- BindOptimizer.cpp - the CUDA backend's gradient norm and AdamW -----===//
//
// As the CPU backend's runtime/cpu/BindOptimizer.cpp, onto
// runtime/cuda/kernels/Optimizer.cu: grad_norm leaves the global norm and
// the non-finite flag in the executor's DeviceStepValues, and adamw reads
// them there, so the norm never reaches the host within a step. The one
// exception is a norm all-reduced over a mesh axis through the rank's
// communicator, a host API: the sum of squares is downloaded (a wait),
// all-reduced and uploaded before the norm is taken; with device
// collectives (nccl) it is all-reduced on the comm stream instead.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"

#include <algorithm>
#include <cmath>

namespace loom {
namespace runtime {
namespace cuda {

namespace {
KernelArg i64(int64_t v) { return KernelArg::i64v(v); }
KernelArg i32(int32_t v) { return KernelArg::i32v(v); }
KernelArg f32(float v) { return KernelArg::f32v(v); }
KernelArg f64(double v) { return KernelArg::f64v(v); }

/// Blocks per gradient of the sums of squares: enough to fill a GPU on a
/// large one, and a fixed number for each size, so the partials (and so
/// the sum) are the same on every run.
constexpr int64_t kMaxSquaresBlocks = 512;
/// The sum's threads (one block).
constexpr unsigned kNormThreads = 256;
} // namespace

Result<Work> bind(const GradNormInstr &r, const Instruction &inst, Binder &b) {
  // The axes the squares are summed over: with the distributed optimizer
  // dp first (each rank holds its shard), then tp.
  std::vector<int> axes;
  for (int a : {r.shardAxis, r.axis})
    if (a >= 0) {
      if (Status s = needsComm(inst, b, a); !s.ok())
        return s;
      axes.push_back(a);
    }
  std::vector<Launch> squares;
  int64_t partials = 0;
  for (size_t i = 0; i < r.counted.size(); ++i) {
    BufferId id = r.counted[i];
    int64_t begin = r.ranges.empty() ? 0 : r.ranges[i].first;
    int64_t n =
        r.ranges.empty() ? int64_t(b.bytes(id) / 4) : r.ranges[i].second;
    if (n == 0)
      continue; // a shard without this gradient
    int64_t blocks = std::min<int64_t>(
        kMaxSquaresBlocks,
        std::max<int64_t>(1, (n + kBlockThreads - 1) / kBlockThreads));
    squares.push_back(launchOf("loom_optimizer_squares",
                               Dim3{unsigned(blocks), 1, 1}, kBlockThreads,
                               {b.as<float>(id) + begin, i64(n), nullptr}));
    partials += blocks;
  }
  // The partials, then one slot for the sum the communicator all-reduces.
  Result<void *> scratch = b.scratch(size_t(partials + 1) * sizeof(double),
                                     "gradient norm partials of " + inst.label);
  if (!scratch.ok())
    return Status::error(scratch.message());
  double *partial = static_cast<double *>(*scratch);
  double *sum = partial + partials;
  int64_t at = 0;
  for (Launch &l : squares) {
    l.args[2] = KernelArg(partial + at);
    at += l.grid.x;
  }
  DeviceStepValues *values = b.stepValues();
  Communicator *comm = !axes.empty() ? b.comm() : nullptr;
  int mode = r.partial ? 1 : 2;
  auto norm = [&](const double *from, int64_t count, int m) {
    return launchOf("loom_optimizer_norm", Dim3{1, 1, 1}, kNormThreads,
                    {from, i64(count), i32(m), f64(1.0), sum,
                     &values->gradSquares, &values->gradNorm,
                     &values->nonFinite});
  };
  // Without a communicator the partials are summed straight into the step
  // values; with one the sum goes through the host first.
  Launch finish =
      comm ? norm(partial, partials, 0) : norm(partial, partials, mode);
  Launch afterComm = norm(sum, 1, mode);
  Device &d = b.device();
  DeviceCollectives *dc = comm ? b.deviceCollectives() : nullptr;
  return Work([&d, &inst, squares, finish, afterComm, comm, dc, axes,
               sum](const StepParams &params) -> Status {
    for (const Launch &l : squares)
      if (Status s = enqueue(d, inst, l); !s.ok())
        return s;
    Launch last = comm ? afterComm : finish;
    last.args[3] = f64(params.gradScale);
    if (dc) {
      if (Status s = enqueue(d, inst, finish); !s.ok())
        return s;
      for (int axis : axes)
        if (Status s = onCommStream(d, inst,
                                    [&](void *stream) {
                                      return dc->allReduce(
                                          axis, sum, sum, 1, CommDType::F64,
                                          ReduceKind::Sum, stream, inst.label);
                                    });
            !s.ok())
          return s;
    } else if (comm) {
      if (Status s = enqueue(d, inst, finish); !s.ok())
        return s;
      double host = 0;
      if (Status s = d.download(&host, sum, sizeof(double)); !s.ok())
        return runError(inst, s.message());
      for (int axis : axes)
        if (Status s = comm->allReduce(axis, &host, &host, 1, CommDType::F64,
                                       ReduceKind::Sum, inst.label);
            !s.ok())
          return runError(inst, s.message());
      if (Status s = d.upload(sum, &host, sizeof(double)); !s.ok())
        return runError(inst, s.message());
    }
    return enqueue(d, inst, last);
  });
}

Result<Work> bind(const AdamWInstr &r, const Instruction &inst, Binder &b) {
  DeviceStepValues *values = b.stepValues();
  if (r.n == 0) // a distributed optimizer's shard without this parameter
    return Work([](const StepParams &) { return Status::success(); });
  Launch l = launchOf(
      "loom_optimizer_adamw", gridFor(r.n), kBlockThreads,
      {b.as<float>(r.param) + r.offset, b.as<float>(r.grad) + r.offset,
       b.as<float>(r.m) + r.momentOffset, b.as<float>(r.v) + r.momentOffset,
       i64(r.n), &values->gradNorm, &values->nonFinite, f64(1), f64(0), f32(0),
       f32(0), f32(0), f32(0), f32(0), f32(0), f32(0), f32(0), f32(0)});
  bool decay = r.decay;
  Device &d = b.device();
  return Work([&d, &inst, l, decay](const StepParams &params) {
    // adamwStep's constants (runtime/cpu/Optimizer.cpp), computed and
    // rounded as it does: in double, then to float once.
    const AdamW &c = params.adam;
    int64_t step = std::max<int64_t>(params.optimizerStep, 1);
    const double correction1 = 1.0 - std::pow(c.beta1, double(step));
    const double correction2 = 1.0 - std::pow(c.beta2, double(step));
    Launch s = l;
    s.args[7] = f64(params.gradScale);
    s.args[8] = f64(params.clipGrad);
    s.args[9] = f32(float(c.beta1));
    s.args[10] = f32(float(c.beta2));
    s.args[11] = f32(float(1.0 - c.beta1));
    s.args[12] = f32(float(1.0 - c.beta2));
    s.args[13] = f32(float(1.0 / correction1));
    s.args[14] = f32(float(1.0 / correction2));
    s.args[15] = f32(float(c.eps));
    s.args[16] = f32(float(params.lr));
    s.args[17] = f32(float(decay ? params.weightDecay : 0.0));
    return enqueue(d, inst, s);
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
