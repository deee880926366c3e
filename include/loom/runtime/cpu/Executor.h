//===- Executor.h - the CPU backend: runs a plan's programs -----*- C++ -*-===//
//
// Allocates a plan's two arenas and turns each instruction into a prepared
// call of the CPU reference kernels (runtime/cpu/Kernels.cpp), with its
// buffers' addresses, shapes and attributes resolved once, at load. A plan
// with an instruction this backend does not know, or one missing an
// attribute, is refused then, not in the middle of a step.
//
// f32 buffers are used in place. bf16 and f16 buffers are stored as 16 bits;
// an instruction reading one widens it into an f32 shadow first and one
// writing one rounds its result back (runtime/cpu/Float16.h).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_EXECUTOR_H
#define LOOM_RUNTIME_CPU_EXECUTOR_H

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/cpu/Optimizer.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <vector>

namespace loom {
namespace runtime {
namespace cpu {

/// What one step's instructions read and write beyond the buffers.
struct StepState {
  uint64_t seed = 0;
  /// The step being run, from 1: it keys the dropout masks.
  int64_t step = 1;
  /// The microbatch being run: its tensors' elements start at global index
  /// microbatch · (elements per microbatch), for dropout.
  int64_t microbatch = 0;
  /// The optimizer updates made so far, plus this one: AdamW's bias
  /// correction (a skipped step makes no update).
  int64_t optimizerStep = 1;
  /// The loss gradient's seed (1, or the f16 loss scale).
  double lossScale = 1;
  /// 1 / (the loss normaliser · the loss scale): turns the accumulated
  /// gradients into the gradients of the global-batch mean.
  double gradScale = 1;
  double clipGrad = 0, lr = 0, weightDecay = 0;
  AdamW adam;
  /// Written by grad_norm: the global norm of the true gradients, and
  /// whether it is inf or nan (then the optimizer leaves everything as is).
  double gradNorm = 0;
  bool nonFinite = false;
  /// A pipeline chunk's grad_norm adds its squares here (the runtime then
  /// sums over stages and sets gradNorm and nonFinite).
  double gradSquares = 0;
};

/// Which rank of the plan's mesh an executor runs, and how it reaches the
/// others. A single-rank plan needs neither.
struct RankContext {
  /// The rank's coordinate on each of the plan's mesh axes (empty: all 0).
  std::vector<int64_t> coords;
  /// The collectives' transport; null for a plan without collectives.
  Communicator *comm = nullptr;
};

class CpuExecutor {
public:
  /// Allocates the arenas (zeroed) and prepares every instruction for the
  /// rank `rank` (its blocks of partitioned tensors, its collectives).
  static Result<std::unique_ptr<CpuExecutor>>
  create(const plan::PlanT &plan, RankContext rank = {});

  /// Runs a program of the plan, or its instructions [begin, end) (a
  /// pipeline chunk's forward, an optimizer's norm). An error (a token id
  /// outside the vocabulary, say) names the instruction and its model
  /// source position.
  Status run(const plan::ProgramT &program, StepState &state,
             size_t end = SIZE_MAX, size_t begin = 0);

  /// A buffer's storage.
  void *data(int32_t buffer);
  template <typename T> T *as(int32_t buffer) {
    return static_cast<T *>(data(buffer));
  }

  /// With LOOM_PROFILE=1 in the environment, the executor times every
  /// instruction and prints the seconds per op kind to stderr when it is
  /// destroyed.
  ~CpuExecutor();

private:
  explicit CpuExecutor(const plan::PlanT &plan) : plan(plan) {}
  /// The size of mesh axis `axis` and this rank's coordinate on it.
  int64_t axisSize(int64_t axis) const;
  int64_t coord(int64_t axis) const;
  using Prepared = std::function<Status(StepState &)>;
  Status prepare(const plan::ProgramT &program);

  const plan::PlanT &plan;
  RankContext rank;
  std::vector<uint8_t *> arenaBase;
  std::vector<std::unique_ptr<uint8_t[]>> arenas;
  std::vector<std::vector<float>> shadows; // per 16-bit buffer
  /// Prepared instructions per program, keyed by the program's address.
  std::vector<std::pair<const plan::ProgramT *, std::vector<Prepared>>>
      prepared;
  bool profiling = false;
  std::map<std::string, double> profile; // op -> seconds
};

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_EXECUTOR_H
