//===- Bind.h - the CUDA backend binds decoded records to launches -*- C++ -*-===//
//
// Internal to the CUDA backend, the counterpart of runtime/cpu/Bind.h.
// CudaExecutor (CudaExecutor.cpp) decodes a plan and, for each record, calls
// the bind() of its kernel family, one file each: BindGemm.cpp (cuBLASLt),
// BindElementwise.cpp, BindSoftmax.cpp, BindNorm.cpp, BindEmbedding.cpp
// (embeddings and cross-entropy), BindDataMovement.cpp, BindCollectives.cpp,
// BindOptimizer.cpp, BindKernel.cpp (generated kernels). A bind() resolves
// buffers to device addresses through the Binder and returns the work: a
// function that enqueues launches on the Device (Device.h) when the
// instruction runs. It checks nothing the decoder checked, and never waits
// for the device: step values the kernels need (the gradient norm, the
// non-finite flag, the loss sum) live in device memory (DeviceStepValues).
//
// Hand-written kernels are in runtime/cuda/kernels/*.cu, f32 only: a 16-bit
// operand is widened into an f32 shadow before the work and rounded back
// after (the executor does it, as the CPU backend does); GEMMs read and
// write 16-bit storage as it is.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_BIND_H
#define LOOM_RUNTIME_CUDA_BIND_H

#include "Device.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/cuda/DeviceCollectives.h"

#include <functional>
#include <string>

namespace loom {
namespace runtime {
namespace cuda {

/// The step values kept on the device, one block per executor. Kernels
/// read and write them through the pointer the Binder gives.
struct DeviceStepValues {
  double lossSum;     // accumulateLoss adds here
  double gradSquares; // a chunk's grad_norm (partial) adds here
  double gradNorm;    // grad_norm's global norm (or setGradNorm's)
  int nonFinite;      // 1 when gradNorm is inf or nan: adamw skips
  int pad;
};

/// A prepared instruction: enqueues its work with the step's parameters.
using Work = std::function<Status(const StepParams &)>;

/// An instruction's step-dependent kernel arguments (dropout keys and
/// offsets, the loss scale, a generated kernel's runtime scalars) in device
/// memory: kernels read them through these pointers, never by value, so a
/// CUDA graph captured once replays with each run's values.
struct StepSlots {
  int64_t *ints = nullptr;
  double *reals = nullptr;
};
/// Writes an instruction's slot values for a run, on the host.
using SlotFiller =
    std::function<void(const StepParams &, int64_t *ints, double *reals)>;

/// Threads per block of the hand-written kernels' launches, and the grid of
/// a grid-stride loop over n elements.
constexpr unsigned kBlockThreads = 256;
inline Dim3 gridFor(int64_t n, unsigned threads = kBlockThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1)
    blocks = 1;
  if (blocks > 65535 * 8)
    blocks = 65535 * 8; // grid-stride loops cover the rest
  return Dim3{unsigned(blocks), 1, 1};
}
/// A launch of `kernel` with 1-D grid and block.
inline Launch launchOf(std::string kernel, Dim3 grid, unsigned threads,
                       std::vector<KernelArg> args, size_t sharedBytes = 0) {
  Launch l;
  l.kernel = std::move(kernel);
  l.grid = grid;
  l.block = Dim3{threads, 1, 1};
  l.sharedBytes = sharedBytes;
  l.args = std::move(args);
  return l;
}

/// What a bind() needs of the executor.
class Binder {
public:
  virtual ~Binder() = default;
  virtual Device &device() = 0;
  /// The device address of a float buffer's f32 view: its storage for f32;
  /// for bf16 and f16 an f32 shadow the executor widens before the work
  /// and rounds after.
  virtual float *f32(BufferId id) = 0;
  /// A buffer's device storage, as it is.
  virtual void *storage(BufferId id) = 0;
  template <typename T> T *as(BufferId id) {
    return static_cast<T *>(storage(id));
  }
  virtual size_t bytes(BufferId id) = 0;
  virtual plan::DType dtype(BufferId id) = 0;
  /// Device memory that lives as long as the executor, for a kernel's
  /// partial results (per-block sums of a deterministic reduction, say);
  /// not shared with any other instruction.
  virtual Result<void *> scratch(size_t bytes, const std::string &what) = 0;
  /// The executor's DeviceStepValues, in device memory.
  virtual DeviceStepValues *stepValues() = 0;
  /// A device int for the instruction's kernels to report a bad input
  /// (a token id outside the vocabulary, say): 0 means fine; a kernel that
  /// finds a problem sets it (atomicCAS(flag, 0, code)) and goes on. The
  /// executor reads every flag once, when the step ends (readStepOutputs),
  /// clears them, and fails with `inst.where: describe(code)` for the first
  /// one set: the device never waits inside a step for a check.
  virtual int *statusFlag(const Instruction &inst,
                          std::function<std::string(int code)> describe) = 0;
  /// Binds one instruction of a kernel's reference form, with the 16-bit
  /// conversions around it that the executor puts around every
  /// instruction (each reference op widens what it reads and rounds what
  /// it writes, so the next one reads storage that is up to date).
  virtual Result<Work> bindReferenceInstruction(const Instruction &ref) = 0;
  /// `ints` and `reals` slots for the instruction's step-dependent
  /// arguments: at the start of every run() of its program the executor
  /// calls `fill` for every instruction of the program and uploads the
  /// values (stream-ordered: work enqueued before still reads the old
  /// ones), so kernels read them on the device. An instruction may ask for
  /// at most 2 + (a kernel instruction's params) ints and as many reals,
  /// each of its reference instructions as much again.
  virtual Result<StepSlots> stepSlots(size_t ints, size_t reals,
                                      SlotFiller fill) = 0;
  /// The rank's communicator, or null (a single-rank plan).
  virtual Communicator *comm() = 0;
  /// The communicator's collectives on device buffers (the nccl one's), or
  /// null: then collectives stage through the host.
  DeviceCollectives *deviceCollectives() {
    return comm() ? comm()->deviceCollectives() : nullptr;
  }
  /// The size of one of the plan's mesh axes.
  virtual int64_t axisSize(int axis) = 0;
  /// Whether the plan's generated kernels are loaded on the device (false:
  /// kernel instructions run their reference forms).
  virtual bool planKernelsLoaded() = 0;
  /// The plan's (or chunk's) generated kernels: launch rules.
  virtual const std::vector<std::unique_ptr<plan::KernelT>> &planKernels() = 0;
};

/// An error of a running instruction, naming it.
inline Status runError(const Instruction &inst, const std::string &why) {
  return Status::error(inst.where + ": " + why);
}

/// Binds the instruction, or says why this backend cannot run it.
Result<Work> bind(const MatmulInstr &, const Instruction &, Binder &);
Result<Work> bind(const BinaryInstr &, const Instruction &, Binder &);
Result<Work> bind(const ScaleInstr &, const Instruction &, Binder &);
Result<Work> bind(const CastInstr &, const Instruction &, Binder &);
Result<Work> bind(const ActivationInstr &, const Instruction &, Binder &);
Result<Work> bind(const ActivationGradInstr &, const Instruction &, Binder &);
Result<Work> bind(const BroadcastInstr &, const Instruction &, Binder &);
Result<Work> bind(const FillInstr &, const Instruction &, Binder &);
Result<Work> bind(const DropoutInstr &, const Instruction &, Binder &);
Result<Work> bind(const SoftmaxInstr &, const Instruction &, Binder &);
Result<Work> bind(const SoftmaxGradInstr &, const Instruction &, Binder &);
Result<Work> bind(const NormInstr &, const Instruction &, Binder &);
Result<Work> bind(const NormGradInstr &, const Instruction &, Binder &);
Result<Work> bind(const EmbeddingInstr &, const Instruction &, Binder &);
Result<Work> bind(const CrossEntropyInstr &, const Instruction &, Binder &);
Result<Work> bind(const CrossEntropyMaxInstr &, const Instruction &, Binder &);
Result<Work> bind(const CrossEntropyPartialsInstr &, const Instruction &,
                  Binder &);
Result<Work> bind(const CrossEntropyCombineInstr &, const Instruction &,
                  Binder &);
Result<Work> bind(const ReduceInstr &, const Instruction &, Binder &);
Result<Work> bind(const TransposeInstr &, const Instruction &, Binder &);
Result<Work> bind(const SplitConcatInstr &, const Instruction &, Binder &);
Result<Work> bind(const ZeroInstr &, const Instruction &, Binder &);
Result<Work> bind(const AllReduceInstr &, const Instruction &, Binder &);
Result<Work> bind(const GatherScatterInstr &, const Instruction &, Binder &);
Result<Work> bind(const BucketShardInstr &, const Instruction &, Binder &);
Result<Work> bind(const GradNormInstr &, const Instruction &, Binder &);
Result<Work> bind(const AdamWInstr &, const Instruction &, Binder &);
/// A generated kernel; `binder` binds its reference instructions when the
/// plan's kernels are not loaded.
Result<Work> bind(const KernelInstr &, const Instruction &, Binder &);

/// Binds any decoded instruction (the visit over its record).
Result<Work> bindInstruction(const Instruction &inst, Binder &b);

/// A collective on mesh axis `axis` needs a communicator unless the rank
/// is alone on it.
inline Status needsComm(const Instruction &inst, Binder &b, int axis) {
  if (b.comm() || b.axisSize(axis) == 1)
    return Status::success();
  return Status::error("the collective's axis has " +
                       std::to_string(b.axisSize(axis)) +
                       " ranks and the executor has no communicator (" +
                       inst.label + ")");
}

/// Enqueues `call` (NCCL's, through DeviceCollectives) on the comm stream,
/// ordered as the host staging is: after the compute stream's work so far,
/// and before the compute stream's next work. Errors name the instruction.
inline Status onCommStream(Device &d, const Instruction &inst,
                           const std::function<Status(void *stream)> &call) {
  if (Status s = d.order(Stream::Compute, Stream::Comm); !s.ok())
    return runError(inst, s.message());
  if (Status s = call(d.nativeStream(Stream::Comm)); !s.ok())
    return runError(inst, s.message());
  if (Status s = d.order(Stream::Comm, Stream::Compute); !s.ok())
    return runError(inst, s.message());
  return Status::success();
}

/// The launch, enqueued; an error names the instruction.
inline Status enqueue(Device &d, const Instruction &inst, const Launch &l) {
  Status s = d.launch(l);
  return s.ok() ? s : runError(inst, "kernel " + l.kernel + ": " + s.message());
}

/// Work that is one launch, the same every run (its step-dependent
/// arguments, if any, in step slots).
inline Work launchWork(Device &d, const Instruction &inst, Launch l) {
  return [&d, &inst, l = std::move(l)](const StepParams &) {
    return enqueue(d, inst, l);
  };
}

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_BIND_H
