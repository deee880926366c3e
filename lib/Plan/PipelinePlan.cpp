//===- PipelinePlan.cpp - a pipeline's plan: chunks and stage schedules ---===//
//
// With pp > 1 the module holds one function per pipeline chunk
// (--loom-pipeline). Each becomes a plan of its own (LowerToPlan.cpp); the
// pipeline's plan holds them, what they share (the mesh, the batch sizes,
// the loss normaliser), the gradient norm summed over chunks, and per stage
// the schedule of forward and backward steps, proved deadlock-free by the
// simulation the runtime repeats at load.
//
//===----------------------------------------------------------------------===//

#include "Lowering.h"

#include "loom/Pipeline/Schedule.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/runtime/InstructionSet.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

#include <map>

using namespace mlir;
using namespace loom::detail;
/// The plan's instruction set (include/loom/runtime/Instructions.def).
namespace instr = loom::runtime;

namespace loom {

/// A pipeline's plan: one plan per chunk, the schedule that runs them.
FailureOr<std::unique_ptr<plan::PlanT>>
detail::buildPipelinePlan(ModuleOp module, SmallVector<func::FuncOp> chunks,
                          const PlanOptions &options) {
  llvm::sort(chunks, [](func::FuncOp a, func::FuncOp b) {
    return a->getAttrOfType<IntegerAttr>(
                LoomDialect::PipelineChunkAttrHelper::getNameStr())
               .getInt() <
           b->getAttrOfType<IntegerAttr>(
                LoomDialect::PipelineChunkAttrHelper::getNameStr())
               .getInt();
  });
  auto top = std::make_unique<plan::PlanT>();
  for (auto [i, fn] : llvm::enumerate(chunks)) {
    if (fn->getAttrOfType<IntegerAttr>(
              LoomDialect::PipelineChunkAttrHelper::getNameStr())
            .getInt() != int64_t(i))
      return fn.emitError() << "pipeline chunk " << i << " is missing";
    FailureOr<std::unique_ptr<plan::PlanT>> chunk = lowerFunction(fn, options);
    if (failed(chunk))
      return failure();
    top->chunks.push_back(std::move(*chunk));
  }
  const plan::PlanT &first = *top->chunks.front(), &last = *top->chunks.back();
  StringRef model = chunks.front().getSymName();
  top->model = model.drop_back(model.size() - model.rfind("_chunk")).str();
  top->compiler = options.compiler;
  top->recompute = options.recompute;
  for (const auto &axis : first.mesh)
    top->mesh.push_back(std::make_unique<plan::MeshAxisT>(*axis));
  top->sequence_parallel = first.sequence_parallel;
  top->distributed_optimizer = first.distributed_optimizer;
  top->micro_batch_size = first.micro_batch_size;
  top->global_batch_size = first.global_batch_size;
  top->num_microbatches = first.num_microbatches;
  top->seq_length = first.seq_length;
  for (const auto &c : top->chunks) {
    top->step_flops += c->step_flops;
    top->model_flops += c->model_flops;
    if (c->vocab_size && (!top->vocab_size || c->vocab_size < top->vocab_size))
      top->vocab_size = c->vocab_size;
  }
  top->loss_normalizer = last.loss_normalizer;
  top->labels_input = -1;
  top->ignore_index = last.ignore_index;
  top->loss = -1;
  top->arena_bytes = {0, 0, 0};
  top->optimizer_defaults =
      std::make_unique<plan::OptimizerDefaultsT>(options.optimizer);
  top->precision = std::make_unique<plan::PrecisionPolicyT>(options.precision);

  // A parameter read by two chunks (the token embedding and the tied LM
  // head) is tied between their stages; more is not supported.
  {
    llvm::StringMap<SmallVector<int64_t>> readers;
    for (const auto &chunk : top->chunks)
      for (const auto &param : chunk->parameters)
        readers[param->name].push_back(chunk->chunk_index);
    int64_t stages = top->mesh[1]->size;
    for (auto &[name, list] : readers)
      if (list.size() > 2 ||
          (list.size() == 2 && list[0] % stages == list[1] % stages))
        return module.emitError()
               << "parameter '" << name << "' is read by pipeline chunks "
               << llvm::join(
                      llvm::map_range(
                          list, [](int64_t c) { return std::to_string(c); }),
                      ", ")
               << "; a pipeline ties a parameter between two chunks on "
                  "different stages only (the token embedding and the LM "
                  "head): choose another --pipeline-layout or schedule";
  }
  // The global gradient norm sums every chunk's squares; a parameter tied
  // across chunks (the token embedding and the LM head) counts once.
  llvm::StringSet<> seen;
  for (auto &chunk : top->chunks) {
    plan::InstructionT *norm = nullptr;
    for (auto &inst : chunk->optimizer->instructions)
      if (inst->op == instr::opName(instr::Op::GradNorm))
        norm = inst.get();
    std::vector<int64_t> exclude;
    for (const auto &param : chunk->parameters)
      exclude.push_back(!seen.insert(param->name).second);
    setInts(*norm, instr::Attr::Partial, {1});
    setInts(*norm, instr::Attr::Exclude, exclude);
  }

  int64_t p = top->mesh[1]->size;
  auto v = module->getAttrOfType<IntegerAttr>(
      LoomDialect::PipelineChunksPerStageAttrHelper::getNameStr());
  top->chunks_per_stage = v ? v.getInt() : 1;
  if (top->chunks_per_stage < 1 ||
      int64_t(top->chunks.size()) / p != top->chunks_per_stage ||
      int64_t(top->chunks.size()) % p != 0)
    return module.emitError()
           << "the module has " << top->chunks.size()
           << " pipeline chunks; the mesh's pp=" << p << " with "
           << top->chunks_per_stage << " per stage needs " << p << " x "
           << top->chunks_per_stage;
  pipeline::ScheduleKind kind = pipeline::ScheduleKind::OneFOneB;
  if (options.schedule == "custom")
    ;
  else if (options.schedule == "gpipe")
    kind = pipeline::ScheduleKind::GPipe;
  else if (options.schedule == "1f1b")
    kind = pipeline::ScheduleKind::OneFOneB;
  else if (options.schedule == "interleaved")
    kind = pipeline::ScheduleKind::Interleaved;
  else
    return module.emitError()
           << "unknown pipeline schedule '" << options.schedule
           << "'; use gpipe, 1f1b or interleaved:V";
  std::string error;
  std::optional<pipeline::Schedule> schedule =
      options.schedule == "custom"
          ? pipeline::parseScheduleText(options.scheduleText, p,
                                        top->chunks_per_stage,
                                        top->num_microbatches, error)
          : pipeline::buildSchedule(kind, p, top->chunks_per_stage,
                                    top->num_microbatches, error);
  if (!schedule)
    return module.emitError()
           << (options.schedule != "custom" ? ""
               : options.scheduleName.empty()
                   ? "the custom pipeline schedule: "
                   : "--schedule file:" + options.scheduleName + ": ")
           << error;
  // The compiler proves the schedule deadlock-free before emitting it.
  pipeline::Simulation sim = pipeline::simulate(*schedule, chunkCosts(*top));
  if (!sim.deadlockFree)
    return module.emitError() << "the " << options.schedule
                              << " schedule would deadlock: " << sim.deadlock;
  top->schedule = options.schedule;
  // Each chunk keeps one stash slot per microbatch whose forward step has
  // run on its stage and whose backward step has not.
  for (const auto &steps : schedule->perStage) {
    std::map<int64_t, int64_t> inFlight;
    for (const pipeline::Step &step : steps) {
      int64_t &n = inFlight[step.chunk];
      n += step.kind == pipeline::Step::Backward ? -1 : 1;
      plan::PlanT &chunk = *top->chunks[size_t(step.chunk)];
      chunk.stash_slots = std::max(chunk.stash_slots, n);
    }
  }
  for (const auto &steps : schedule->perStage) {
    auto stage = std::make_unique<plan::StageScheduleT>();
    for (const pipeline::Step &step : steps) {
      auto s = std::make_unique<plan::ScheduleStepT>();
      s->backward = step.kind == pipeline::Step::Backward;
      s->microbatch = step.microbatch;
      s->chunk = step.chunk;
      stage->steps.push_back(std::move(s));
    }
    top->stage_schedules.push_back(std::move(stage));
  }
  if (runtime::Status s = runtime::validatePlan(*top, "the plan just built");
      !s.ok())
    return module.emitError() << s.message();
  return std::move(top);
}

std::vector<pipeline::StepCost> chunkCosts(const plan::PlanT &p) {
  std::vector<pipeline::StepCost> costs;
  for (const auto &chunk : p.chunks) {
    // A forward is a third of the model's work (the backward's two GEMMs
    // per forward GEMM); the backward step does the rest: the backward and
    // whatever it recomputes.
    // The chunk with the loss runs everything in its backward step.
    double m = double(std::max<int64_t>(1, p.num_microbatches));
    double total = chunk->step_flops / m, forward = chunk->model_flops / m / 3;
    if (chunk->loss >= 0)
      forward = 0;
    costs.push_back({forward, total - forward});
  }
  return costs;
}

} // namespace loom
