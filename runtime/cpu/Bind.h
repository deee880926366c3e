//===- Bind.h - the CPU backend binds decoded records to kernels -*- C++ -*-===//
//
// Internal to the CPU backend. CpuExecutor (CpuExecutor.cpp) decodes a
// plan and, for each record, calls the bind() of its kernel family, one
// file each: BindGemm.cpp, BindElementwise.cpp, BindSoftmax.cpp,
// BindNorm.cpp, BindEmbedding.cpp (embeddings and cross-entropy),
// BindDataMovement.cpp, BindCollectives.cpp, BindOptimizer.cpp. A bind()
// resolves buffers to host addresses through the Binder and returns the
// kernel call; it checks nothing the decoder checked.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_BIND_H
#define LOOM_RUNTIME_CPU_BIND_H

#include "loom/runtime/Decoder.h"
#include "loom/runtime/Executor.h"

#include <functional>
#include <string>

namespace loom {
namespace runtime {
namespace cpu {

/// A prepared instruction: runs with the step's parameters, and may add to
/// the step's outputs (grad_norm) or read them (adamw).
using Kernel = std::function<Status(const StepParams &, StepOutputs &)>;

/// What a bind() needs of the executor.
class Binder {
public:
  virtual ~Binder() = default;
  /// The f32 view of a float buffer: in place for f32; for bf16 and f16 an
  /// f32 shadow the executor widens before the kernel and rounds after.
  virtual float *f32(BufferId id) = 0;
  /// A buffer's storage, as it is.
  virtual void *storage(BufferId id) = 0;
  /// A buffer's size in bytes.
  virtual size_t bytes(BufferId id) = 0;
  template <typename T> T *as(BufferId id) {
    return static_cast<T *>(storage(id));
  }
  /// Binds one instruction of a kernel's reference form, with the 16-bit
  /// conversions around it that the executor puts around every
  /// instruction (each reference op widens what it reads and rounds what
  /// it writes, so the next one reads storage that is up to date).
  virtual Result<Kernel> bindReferenceInstruction(const Instruction &ref) = 0;
  /// The rank's communicator, or null (a single-rank plan).
  virtual Communicator *comm() = 0;
  /// The size of one of the plan's mesh axes.
  virtual int64_t axisSize(int axis) = 0;
  /// A generated kernel's entry point in the plan's compiled kernels, or
  /// null when they are not compiled (no compiler, --no-jit).
  virtual void *kernelEntry(const std::string &name) = 0;
};

/// An error of a running instruction, naming it.
inline Status runError(const Instruction &inst, const std::string &why) {
  return Status::error(inst.where + ": " + why);
}

/// Binds the instruction, or says why this backend cannot run it.
Result<Kernel> bind(const MatmulInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const BinaryInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const ScaleInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const CastInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const ActivationInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const ActivationGradInstr &, const Instruction &,
                    Binder &);
Result<Kernel> bind(const BroadcastInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const FillInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const DropoutInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const SoftmaxInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const SoftmaxGradInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const NormInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const NormGradInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const EmbeddingInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const CrossEntropyInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const CrossEntropyMaxInstr &, const Instruction &,
                    Binder &);
Result<Kernel> bind(const CrossEntropyPartialsInstr &, const Instruction &,
                    Binder &);
Result<Kernel> bind(const CrossEntropyCombineInstr &, const Instruction &,
                    Binder &);
Result<Kernel> bind(const ReduceInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const TransposeInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const SplitConcatInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const ZeroInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const AllReduceInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const GatherScatterInstr &, const Instruction &,
                    Binder &);
Result<Kernel> bind(const BucketShardInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const GradNormInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const AdamWInstr &, const Instruction &, Binder &);
Result<Kernel> bind(const KernelInstr &, const Instruction &, Binder &);

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

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_BIND_H
