//===- PipelineRunner.cpp - a pipeline stage runs its schedule ------------===//
//
// One rank of a pipeline-parallel plan runs its stage's schedule (the
// plan's stage_schedules): the forward and backward of each (microbatch,
// chunk), receiving and sending activations and their gradients through
// the executors, tagged by (microbatch, receiving chunk, direction). Each
// in-flight (microbatch, chunk) holds a stash slot of its chunk's executor
// from its forward step to its backward step: what the forward left for
// the backward (what the backward recomputes instead is the compiler's
// choice, --recompute). Then the gradients of a
// parameter tied across chunks are exchanged, the loss and the gradient
// norm are summed over the stages, and the optimizer runs.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Executor.h"
#include "loom/runtime/Session.h"
#include "loom/runtime/Trace.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace loom {
namespace runtime {

Status Session::runPipelineRank(Rank &rank, const Feeds &feeds,
                                StepParams state) {
  const plan::PlanT &p = *plan_;
  int ppAxis = mesh_.axisIndex("pp"), dpAxis = mesh_.axisIndex("dp");
  int64_t stages = mesh_.sizes[size_t(ppAxis)];
  int64_t dp = mesh_.sizes[size_t(dpAxis)], d = rank.coords[size_t(dpAxis)];
  int64_t stage = rank.coords[size_t(ppAxis)];
  int64_t chunks = int64_t(p.chunks.size());
  Communicator &comm = *rank.comm;
  auto partOf = [&](int64_t chunk) -> Part & {
    for (Part &part : rank.parts)
      if (part.chunk == chunk)
        return part;
    return rank.parts.front(); // the schedule is validated: not reached
  };
  auto where = [&](const std::string &what) {
    return "step " + std::to_string(state.step) + ", " + what;
  };
  auto tag = [&](int64_t mb, int64_t chunk, bool backward) {
    return (mb * chunks + chunk) * 2 + (backward ? 1 : 0);
  };
  Tracer *tracer = tracerFor(state.step);
  int track = Tracer::rankTrack(mesh_.rankOf(rank.coords));
  // Activations travel as raw storage (16-bit ones too), between the
  // executors of neighbouring chunks (chunk c lives on stage c % stages).
  auto transfer = [&](Part &part, bool send, int64_t peerChunk,
                      int32_t buffer, int64_t t,
                      const std::string &what) -> Status {
    int64_t peer = peerChunk % stages;
    TraceScope scope(tracer, track, send ? "send" : "recv", "pipeline");
    if (scope)
      scope.args()
          .add("peer_stage", peer)
          .add("peer_chunk", peerChunk)
          .add("chunk", part.chunk)
          .add("what", what)
          .add("bytes", part.plan->buffers[size_t(buffer)]->bytes)
          .add("tag", t)
          .add("step", state.step);
    return send ? part.executor->send(buffer, ppAxis, peer, t, what)
                : part.executor->recv(buffer, ppAxis, peer, t, what);
  };
  for (Part &part : rank.parts)
    part.executor->beginStep();
  // Per chunk, which of its stash slots hold a microbatch in flight, and
  // the slot of each (microbatch, chunk) whose forward step has run.
  std::map<int64_t, std::vector<bool>> slotsBusy;
  for (Part &part : rank.parts)
    slotsBusy[part.chunk].assign(
        size_t(std::max<int64_t>(1, part.plan->stash_slots)), false);
  std::map<std::pair<int64_t, int64_t>, int64_t> slotOf;
  // Each chunk's last backward in the schedule: the run after which its
  // gradients are final (StepParams::lastMicrobatch).
  const auto &steps = p.stage_schedules[size_t(stage)]->steps;
  std::map<int64_t, const plan::ScheduleStepT *> lastBackward;
  for (const auto &step : steps)
    if (step->backward)
      lastBackward[step->chunk] = step.get();
  for (const auto &step : steps) {
    Part &part = partOf(step->chunk);
    const plan::PlanT &cp = *part.plan;
    Executor &ex = *part.executor;
    int64_t mb = step->microbatch, c = step->chunk;
    int64_t global = mb * dp + d;
    state.microbatch = global;
    state.lastMicrobatch = lastBackward[c] == step.get();
    std::string what = (step->backward ? "backward of microbatch "
                                       : "forward of microbatch ") +
                       std::to_string(global) + ", chunk " + std::to_string(c);
    auto failed = [&](const Status &s) {
      return Status::error(where(what) + ": " + s.message());
    };
    // The schedule's step: its receive, compute and send.
    TraceScope scope(tracer, track, step->backward ? "backward" : "forward",
                     "schedule");
    if (scope)
      scope.args()
          .add("microbatch", global)
          .add("chunk", c)
          .add("step", state.step);
    if (Status s = uploadFeeds(part, feeds, global); !s.ok())
      return failed(s);
    int32_t in = cp.activation_in >= 0
                     ? cp.inputs[size_t(cp.activation_in)]->buffer
                     : -1;
    // The stash slot of this (microbatch, chunk): taken by its forward
    // step, given back by its backward step.
    std::vector<bool> &busy = slotsBusy[c];
    int64_t slot = -1;
    if (!step->backward) {
      for (size_t k = 0; k < busy.size() && slot < 0; ++k)
        if (!busy[k])
          slot = int64_t(k);
      if (slot < 0) // validatePlan bounds the microbatches in flight
        return Status::error(where(what) + ": every stash slot is taken");
      busy[size_t(slot)] = true;
      slotOf[{mb, c}] = slot;
    } else {
      auto it = slotOf.find({mb, c});
      if (it == slotOf.end())
        return Status::error(where(what) + ": its forward has not run");
      slot = it->second;
      busy[size_t(slot)] = false;
      slotOf.erase(it);
    }
    if (Status s = ex.selectStashSlot(slot); !s.ok())
      return failed(s);
    if (!step->backward) {
      if (in >= 0)
        if (Status s = transfer(part, false, c - 1, in, tag(mb, c, false),
                                "the activation for " + what);
            !s.ok())
          return failed(s);
      // The last chunk's forward has nothing to send: its backward step
      // computes the loss.
      if (cp.loss < 0)
        if (Status s = ex.run(ProgramKind::Microbatch, state, 0,
                              size_t(cp.forward_end));
            !s.ok())
          return failed(s);
      if (cp.activation_out >= 0)
        if (Status s = transfer(part, true, c + 1, cp.activation_out,
                                tag(mb, c + 1, false),
                                "the activation of " + what);
            !s.ok())
          return failed(s);
      continue;
    }
    if (cp.output_grad >= 0)
      if (Status s = transfer(part, false, c + 1,
                              cp.inputs[size_t(cp.output_grad)]->buffer,
                              tag(mb, c, true), "the gradient for " + what);
          !s.ok())
        return failed(s);
    // The backward step: what the forward step stashed is in the slot; the
    // last chunk runs its whole program here.
    if (Status s = ex.run(ProgramKind::Microbatch, state,
                          cp.loss >= 0 ? 0 : size_t(cp.forward_end));
        !s.ok())
      return failed(s);
    if (cp.loss >= 0)
      if (Status s = ex.accumulateLoss(cp.loss); !s.ok())
        return failed(s);
    if (cp.input_grad >= 0)
      if (Status s = transfer(part, true, c - 1, cp.input_grad,
                              tag(mb, c - 1, true), "the gradient of " + what);
          !s.ok())
        return failed(s);
  }

  // A parameter tied across chunks (the token embedding and the LM head;
  // the compiler allows two chunks on different stages): the two stages
  // swap gradients and both add them, in one order. Ties go by name, each
  // with its own tag.
  std::map<std::string, std::vector<int64_t>> holdersOf; // sorted by name
  for (const auto &chunk : p.chunks)
    for (const auto &param : chunk->parameters)
      holdersOf[param->name].push_back(chunk->chunk_index);
  bool tied = std::any_of(holdersOf.begin(), holdersOf.end(),
                          [](const auto &h) { return h.second.size() == 2; });
  TraceScope tiedScope(tied ? tracer : nullptr, track, "tied gradients",
                       "schedule");
  int64_t tie = -1;
  for (const auto &[name, holders] : holdersOf) {
    if (holders.size() != 2)
      continue;
    ++tie;
    for (Part &mine : rank.parts) {
      if (mine.chunk != holders[0] && mine.chunk != holders[1])
        continue;
      int64_t other = mine.chunk == holders[0] ? holders[1] : holders[0];
      const plan::ParameterT *param = nullptr;
      for (const auto &q : mine.plan->parameters)
        if (q->name == name)
          param = q.get();
      size_t bytes = size_t(mine.plan->buffers[size_t(param->grad)]->bytes);
      std::vector<float> own(bytes / 4), theirs(bytes / 4);
      int64_t t = -1 - tie;
      std::string what = "the gradient of tied parameter '" + name + "'";
      auto failed = [&](const Status &s) {
        return Status::error(where(what) + ": " + s.message());
      };
      // Sends are buffered, so both sides send first; what arrives is
      // received into the gradient and the sum written back.
      if (Status s = mine.executor->download(param->grad, own.data(), bytes);
          !s.ok())
        return failed(s);
      if (Status s = transfer(mine, true, other, param->grad, t, what); !s.ok())
        return failed(s);
      if (Status s = transfer(mine, false, other, param->grad, t, what);
          !s.ok())
        return failed(s);
      if (Status s =
              mine.executor->download(param->grad, theirs.data(), bytes);
          !s.ok())
        return failed(s);
      bool first = mine.chunk < other;
      for (size_t k = 0; k < own.size(); ++k)
        own[k] = first ? own[k] + theirs[k] : theirs[k] + own[k];
      if (Status s = mine.executor->upload(param->grad, own.data(), bytes);
          !s.ok())
        return failed(s);
    }
  }

  tiedScope.end();
  // Every chunk's squares, then the norm over the stages, then the updates.
  TraceScope optimizerScope(tracer, track, "optimizer", "optimizer");
  if (optimizerScope)
    optimizerScope.args().add("step", state.step);
  // The session's own sums over stages and replicas (not instructions of
  // the plan), traced as collectives.
  auto sum = [&](int axis, double &value, const char *what) {
    TraceScope scope(tracer, track, "all_reduce", "collective");
    if (scope)
      scope.args().add("what", what).add("step", state.step);
    return comm.allReduce(axis, &value, &value, 1, CommDType::F64,
                          ReduceKind::Sum, what);
  };
  auto optimizer = [&](Part &part, size_t begin,
                       size_t end) -> Result<StepOutputs> {
    if (Status s = part.executor->run(ProgramKind::Optimizer, state, begin,
                                      end);
        !s.ok())
      return Status::error(where("") + s.message());
    Result<StepOutputs> outputs = part.executor->readStepOutputs();
    if (!outputs.ok())
      return Status::error(where("") + outputs.message());
    return outputs;
  };
  double squares = 0;
  for (Part &part : rank.parts) {
    Result<StepOutputs> outputs = optimizer(part, 0, part.normEnd);
    if (!outputs.ok())
      return Status::error(outputs.message());
    squares += outputs->gradSquares;
  }
  if (Status s = sum(ppAxis, squares, "the gradient norm (pp)"); !s.ok())
    return Status::error(where("the gradient norm") + ": " + s.message());
  double norm = std::sqrt(squares) * state.gradScale;
  double lossSum = 0;
  for (Part &part : rank.parts) {
    part.executor->setGradNorm(norm);
    Result<StepOutputs> outputs = optimizer(part, part.normEnd, SIZE_MAX);
    if (!outputs.ok())
      return Status::error(outputs.message());
    lossSum += outputs->lossSum;
  }
  optimizerScope.end();
  // The loss lives on the last stage: summed over pp, then dp.
  if (Status s = sum(ppAxis, lossSum, "the step's loss (pp)"); !s.ok())
    return Status::error(where("the loss") + ": " + s.message());
  if (dp > 1)
    if (Status s = sum(dpAxis, lossSum, "the step's loss (dp)"); !s.ok())
      return Status::error(where("the loss") + ": " + s.message());
  rank.lossSum = lossSum;
  rank.gradNorm = norm;
  rank.nonFinite = !std::isfinite(norm);
  return Status::success();
}

} // namespace runtime
} // namespace loom
