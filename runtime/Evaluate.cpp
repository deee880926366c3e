//===- Evaluate.cpp - Session::evaluate: the validation loss, forward only ===//
//
// Evaluation runs the training plan itself, not a program of its own, as
// Megatron runs the same model under no_grad and eval(): each microbatch
// runs the microbatch program only through the instruction that writes the
// loss (a pipeline chunk: through its forward), with StepParams::training
// false so that dropout passes its input through. The range is checked
// once: nothing in it may write the Persistent arena (parameters,
// gradients, moments) or run a collective of the backward, so an
// evaluation cannot change what training does next. A pipeline runs a
// forward-only pass: each stage takes every microbatch through its chunks
// in order, in stash slot 0 (no backward reads it), with message tags no
// training step uses.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/InstructionSet.h"
#include "loom/runtime/Session.h"

#include <algorithm>
#include <chrono>
#include <set>

namespace loom {
namespace runtime {

namespace {

bool isCollective(const std::string &op) {
  for (Op c : {Op::AllReduce, Op::AllGather, Op::ReduceScatter, Op::AllSlice})
    if (op == opName(c))
      return true;
  return false;
}

/// The end of evaluation's range of `piece`'s microbatch program, or why
/// the plan cannot be evaluated. `what` names the plan or the chunk.
Result<size_t> evaluationEnd(const plan::PlanT &piece, bool chunk,
                             bool generatedKernels, const std::string &what) {
  const auto &program = piece.microbatch->instructions;
  size_t end = 0;
  if (piece.loss >= 0) {
    // Through the last instruction writing the loss (a fused kernel may
    // compute its gradient too: that writes only workspace, checked below).
    bool found = false;
    for (size_t k = 0; k < program.size(); ++k)
      for (int32_t out : program[k]->outputs)
        if (out == piece.loss) {
          end = k + 1;
          found = true;
        }
    if (!found)
      return Status::error(what + ": no instruction of the microbatch "
                                  "program writes the loss");
  } else if (chunk) {
    end = size_t(std::max<int64_t>(0, piece.forward_end));
  } else {
    return Status::error(what + " has no loss to evaluate");
  }
  end = std::min(end, program.size());
  // What the backward computes: the loss gradient's seed and a chunk's
  // incoming gradient, and everything computed from them.
  std::set<int32_t> backward;
  if (piece.output_grad >= 0 && size_t(piece.output_grad) < piece.inputs.size())
    backward.insert(piece.inputs[size_t(piece.output_grad)]->buffer);
  for (size_t k = 0; k < end; ++k) {
    const plan::InstructionT &inst = *program[k];
    std::string at = what + ": microbatch instruction " + std::to_string(k) +
                     " (" + inst.op +
                     (inst.location.empty() ? "" : ", from " + inst.location) +
                     ")";
    bool fromBackward = inst.op == opName(Op::LossGradSeed);
    for (int32_t in : inst.inputs)
      fromBackward |= backward.count(in) > 0;
    if (fromBackward && isCollective(inst.op))
      return Status::error(at + " is a collective of the backward, scheduled "
                                "before the loss; evaluation runs the forward "
                                "only and cannot run this plan");
    for (int32_t out : inst.outputs) {
      if (out < 0 || size_t(out) >= piece.buffers.size())
        continue; // validatePlan has checked every index
      const plan::BufferT &b = *piece.buffers[size_t(out)];
      if (b.arena == plan::Arena::Persistent)
        return Status::error(at + " writes '" + b.name +
                             "' (the training state) before the loss; "
                             "evaluation runs the forward only and cannot "
                             "run this plan");
      if (fromBackward)
        backward.insert(out);
    }
    // A kernel from before dropout's rate was a run-time scalar applies
    // dropout whatever the step says.
    if (generatedKernels && inst.op == opName(Op::Kernel)) {
      const plan::AttributeT *index = findAttr(inst, attrName(Attr::Kernel));
      if (index && !index->ints.empty() && index->ints[0] >= 0 &&
          size_t(index->ints[0]) < piece.kernels.size()) {
        const plan::KernelT &kernel = *piece.kernels[size_t(index->ints[0])];
        bool key = false, rate = false;
        for (const auto &p : kernel.params) {
          key |= p->kind == "dropout_key";
          rate |= p->kind == "dropout_rate";
        }
        if (key && !rate)
          return Status::error(
              at + ": its generated kernel '" + kernel.name +
              "' has its dropout rate built in (a plan from an older loomc), "
              "so it cannot run without dropout; recompile the plan, or "
              "evaluate with its reference kernels (loom-run --no-jit)");
      }
    }
  }
  return end;
}

} // namespace

Status Session::prepareEvaluation() {
  if (evalPrepared_)
    return evalError_.empty() ? Status::success() : Status::error(evalError_);
  evalPrepared_ = true;
  for (Rank &rank : ranks_)
    for (Part &part : rank.parts) {
      std::string what = plan_->chunks.empty()
                             ? "the plan '" + planPath_ + "'"
                             : "chunk " + std::to_string(part.chunk) + " of '" +
                                   planPath_ + "'";
      Result<size_t> end = evaluationEnd(*part.plan, !plan_->chunks.empty(),
                                         options_.generatedKernels, what);
      if (!end.ok()) {
        evalError_ = "cannot evaluate: " + end.message();
        return Status::error(evalError_);
      }
      part.evalEnd = *end;
    }
  return Status::success();
}

Result<EvalMetrics> Session::evaluate(const SampleSource &valid,
                                      int64_t iters) {
  if (!broken_.empty())
    return Status::error("an earlier step failed and left the ranks out of "
                         "step (" +
                         broken_ +
                         "); open the plan again and "
                         "load a checkpoint");
  const plan::PlanT &p = *plan_;
  if (iters < 1 || iters > kMaxCheckpointCount / p.global_batch_size)
    return Status::error(
        "evaluation runs 1 to " +
        std::to_string(kMaxCheckpointCount / p.global_batch_size) +
        " global batches, not " + std::to_string(iters));
  if (Status s = prepareEvaluation(); !s.ok())
    return s;
  auto start = std::chrono::steady_clock::now();
  int64_t seq = p.seq_length, batch = p.global_batch_size;
  std::vector<std::vector<int32_t>> fields;
  int dpAxis = mesh_.axisIndex("dp");
  int64_t dp = dpAxis >= 0 ? mesh_.sizes[size_t(dpAxis)] : 1;
  double lossSum = 0, normalizer = 0;
  bool pipelined = !p.chunks.empty();
  for (int64_t it = 0; it < iters; ++it) {
    // Every evaluation reads the same samples: batch `it` from sample 0.
    if (Status s = readBatch(valid, it * p.global_batch_size, fields); !s.ok())
      return Status::error("evaluation: " + s.message());
    Feeds feeds;
    for (const std::vector<int32_t> &field : fields)
      feeds.push_back(field.data());
    const std::vector<int32_t> &labels = fields[1];
    normalizer += p.loss_normalizer == "tokens"
                      ? double(std::count_if(
                            labels.begin(), labels.end(),
                            [&](int32_t l) { return l != p.ignore_index; }))
                      : double(p.num_microbatches * dp);
    StepParams state;
    state.seed = options_.seed;
    state.step = 0; // no step: never traced, and dropout is off
    state.training = false;
    state.lossScale = lossScale_;
    Status s = runEveryRank([&](Rank &rank) {
      return pipelined ? evaluatePipelineRank(rank, feeds, state)
                       : evaluateRank(rank, feeds, state);
    });
    if (!s.ok()) {
      // The ranks' collectives gave up midway: the job cannot go on.
      if (comm_ || processComm())
        broken_ = s.message();
      return s;
    }
    lossSum += ranks_[0].evalLossSum;
  }
  if (normalizer == 0)
    return Status::error(
        "evaluation: every label of the " + std::to_string(iters * batch) +
        " validation samples is ignore_index " +
        std::to_string(p.ignore_index) + "; there is no loss to evaluate");
  EvalMetrics m;
  m.loss = lossSum / normalizer;
  m.tokens = iters * batch * seq;
  m.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return m;
}

Status Session::evaluateRank(Rank &rank, const Feeds &feeds,
                             const StepParams &params) {
  const plan::PlanT &p = *plan_;
  Part &part = rank.parts.front();
  Executor &ex = *part.executor;
  int dpAxis = mesh_.axisIndex("dp");
  int64_t dp = dpAxis >= 0 ? mesh_.sizes[size_t(dpAxis)] : 1;
  int64_t d = dpAxis >= 0 ? rank.coords[size_t(dpAxis)] : 0;
  StepParams state = params;
  ex.beginStep();
  for (int64_t mb = 0; mb < p.num_microbatches; ++mb) {
    // Samples by global index, as step() assigns them.
    int64_t global = mb * dp + d;
    state.microbatch = global;
    Status s = uploadFeeds(part, feeds, global);
    if (s.ok())
      s = ex.run(ProgramKind::Microbatch, state, 0, part.evalEnd);
    if (s.ok())
      s = ex.accumulateLoss(p.loss);
    if (!s.ok())
      return Status::error("evaluation, microbatch " + std::to_string(global) +
                           ": " + s.message());
  }
  Result<StepOutputs> outputs = ex.readStepOutputs();
  if (!outputs.ok())
    return Status::error("evaluation: " + outputs.message());
  double lossSum = outputs->lossSum;
  if (dp > 1)
    if (Status s =
            rank.comm->allReduce(dpAxis, &lossSum, &lossSum, 1, CommDType::F64,
                                 ReduceKind::Sum, "the validation loss");
        !s.ok())
      return Status::error("evaluation: " + s.message());
  rank.evalLossSum = lossSum;
  return Status::success();
}

Status Session::evaluatePipelineRank(Rank &rank, const Feeds &feeds,
                                     const StepParams &params) {
  const plan::PlanT &p = *plan_;
  int ppAxis = mesh_.axisIndex("pp"), dpAxis = mesh_.axisIndex("dp");
  int64_t stages = mesh_.sizes[size_t(ppAxis)];
  int64_t dp = dpAxis >= 0 ? mesh_.sizes[size_t(dpAxis)] : 1;
  int64_t d = dpAxis >= 0 ? rank.coords[size_t(dpAxis)] : 0;
  int64_t chunks = int64_t(p.chunks.size());
  // Tags below every training step's: a step's are >= 0, its tied
  // gradients' from -1 down, at most one per parameter name.
  std::set<std::string> names;
  for (const auto &chunk : p.chunks)
    for (const auto &param : chunk->parameters)
      names.insert(param->name);
  int64_t firstTag = -1 - int64_t(names.size());
  auto tag = [&](int64_t mb, int64_t chunk) {
    return firstTag - (mb * chunks + chunk);
  };
  StepParams state = params;
  for (Part &part : rank.parts)
    part.executor->beginStep();
  // Each microbatch through this stage's chunks in order (rank.parts is in
  // chunk order): chunk c waits only for chunk c - 1 of the same
  // microbatch, and sends are buffered, so no stage waits on a later one.
  for (int64_t mb = 0; mb < p.num_microbatches; ++mb) {
    int64_t global = mb * dp + d;
    state.microbatch = global;
    for (Part &part : rank.parts) {
      const plan::PlanT &cp = *part.plan;
      Executor &ex = *part.executor;
      int64_t c = part.chunk;
      std::string what = "evaluation of microbatch " + std::to_string(global) +
                         ", chunk " + std::to_string(c);
      auto failed = [&](const Status &s) {
        return Status::error(what + ": " + s.message());
      };
      if (Status s = ex.selectStashSlot(0); !s.ok())
        return failed(s);
      if (Status s = uploadFeeds(part, feeds, global); !s.ok())
        return failed(s);
      if (cp.activation_in >= 0)
        if (Status s = ex.recv(cp.inputs[size_t(cp.activation_in)]->buffer,
                               ppAxis, (c - 1) % stages, tag(mb, c),
                               "the activation for " + what);
            !s.ok())
          return failed(s);
      if (Status s = ex.run(ProgramKind::Microbatch, state, 0, part.evalEnd);
          !s.ok())
        return failed(s);
      if (cp.loss >= 0)
        if (Status s = ex.accumulateLoss(cp.loss); !s.ok())
          return failed(s);
      if (cp.activation_out >= 0)
        if (Status s = ex.send(cp.activation_out, ppAxis, (c + 1) % stages,
                               tag(mb, c + 1), "the activation of " + what);
            !s.ok())
          return failed(s);
    }
  }
  double lossSum = 0;
  for (Part &part : rank.parts) {
    Result<StepOutputs> outputs = part.executor->readStepOutputs();
    if (!outputs.ok())
      return Status::error("evaluation: " + outputs.message());
    lossSum += outputs->lossSum;
  }
  // The loss lives on the last stage: summed over pp, then dp.
  Communicator &comm = *rank.comm;
  if (Status s = comm.allReduce(ppAxis, &lossSum, &lossSum, 1, CommDType::F64,
                                ReduceKind::Sum, "the validation loss (pp)");
      !s.ok())
    return Status::error("evaluation: " + s.message());
  if (dp > 1)
    if (Status s = comm.allReduce(dpAxis, &lossSum, &lossSum, 1, CommDType::F64,
                                  ReduceKind::Sum, "the validation loss (dp)");
        !s.ok())
      return Status::error("evaluation: " + s.message());
  rank.evalLossSum = lossSum;
  return Status::success();
}

} // namespace runtime
} // namespace loom
