//===- Session.h - Loom's runtime API: train a compiled plan ----*- C++ -*-===//
//
// What an application embeds (DESIGN.md, "Runtime"): open a plan, initialise
// or load the parameters, run training steps, read the loss and metrics,
// save. One Session is one rank; this release runs single-rank plans on the
// CPU backend.
//
//   auto session = loom::runtime::Session::open("gpt.plan", {});
//   (*session)->initializeParameters();
//   auto data = loom::runtime::TokenDataset::open(...);
//   auto metrics = (*session)->step(*data);   // metrics->loss, ->gradNorm
//   (*session)->save("checkpoints/step-100");
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SESSION_H
#define LOOM_RUNTIME_SESSION_H

#include "loom/runtime/Data.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

namespace cpu {
class CpuExecutor;
struct StepState;
} // namespace cpu

/// Run-time settings. Unset optimizer fields take the plan's defaults
/// (loomc's --lr, ...); loom-run's options of the same names set them.
struct SessionOptions {
  uint64_t seed = 1234;
  std::optional<double> lr, minLr, weightDecay, clipGrad, beta1, beta2, eps;
  std::optional<int64_t> warmupSteps, decaySteps;
  std::optional<std::string> decayStyle;
};

struct StepMetrics {
  int64_t step = 0;        // the step just run, from 1
  double loss = 0;         // mean over the global batch's counted tokens
  double gradNorm = 0;     // global norm before clipping
  double lr = 0;           // the learning rate this step used
  double lossScale = 1;    // f16's loss scale this step used
  bool skipped = false;    // inf/nan gradients: no update was made
  int64_t tokens = 0;      // tokens processed (global batch × sequence)
  double seconds = 0;      // wall time of the step
};

class Session {
public:
  /// Reads and checks the plan and prepares it on the CPU backend.
  static Result<std::unique_ptr<Session>> open(const std::string &planPath,
                                               const SessionOptions &options);
  ~Session();

  const plan::PlanT &plan() const { return *plan_; }
  /// Steps completed, and samples of the dataset consumed.
  int64_t step() const { return step_; }
  int64_t dataPosition() const { return dataPosition_; }
  uint64_t seed() const { return options_.seed; }

  /// The step at which the learning rate reaches its minimum (overrides
  /// the plan's and the options').
  void setDecaySteps(int64_t steps) { options_.decaySteps = steps; }

  /// Draws every parameter from its initializer keyed by (seed, name,
  /// global element index) and clears the optimizer state.
  void initializeParameters();

  /// One training step on the next global batch of `data` (samples
  /// dataPosition() onwards, by global index).
  Result<StepMetrics> step(const TokenDataset &data);
  /// One training step on a global batch given as [global batch, seq]
  /// tokens and labels.
  Result<StepMetrics> step(const int32_t *tokens, const int32_t *labels);

  /// Parameters, optimizer state, step, data position, seed and loss scale.
  Status save(const std::string &directory) const;
  /// Restores what save() wrote; the checkpoint's parameters must be the
  /// plan's (names and shapes). The session takes the checkpoint's seed.
  Status load(const std::string &directory);

  /// A parameter's values (f32), or an error naming the missing parameter.
  Result<std::vector<float>> parameter(const std::string &name);

private:
  Session() = default;
  std::vector<std::pair<std::string, float *>> stateTensors(bool moments);
  void zeroGradients();

  std::unique_ptr<plan::PlanT> plan_;
  std::unique_ptr<cpu::CpuExecutor> executor_;
  SessionOptions options_;
  std::string planPath_;
  int32_t tokensInput_ = -1, labelsInput_ = -1;
  int64_t step_ = 0, optimizerSteps_ = 0, dataPosition_ = 0;
  double lossScale_ = 1;
  int64_t goodSteps_ = 0;
  std::vector<int32_t> batchTokens_, batchLabels_;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_SESSION_H
