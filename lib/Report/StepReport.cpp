//===- StepReport.cpp - a plan's memory, FLOPs, traffic and step time -----===//
//
// See include/loom/Report/StepReport.h; docs/memory.md says how each
// number is computed. The runs of a chunk follow plan format 6: its forward
// step runs the microbatch program's first forward_end instructions, its
// backward step the rest (the chunk with the loss runs the whole program in
// its backward step); a plan without a pipeline runs the whole program once
// per microbatch.
//
//===----------------------------------------------------------------------===//

#include "loom/Report/StepReport.h"
#include "loom/Pipeline/Schedule.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/Trace.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <sstream>

namespace loom {

const char *meshAxisKindName(int axis) {
  switch (axis) {
  case kDp:
    return "dp";
  case kPp:
    return "pp";
  case kTp:
    return "tp";
  }
  return "?";
}

namespace {

using runtime::BufferId;

int64_t aligned(int64_t bytes) { return (bytes + 63) / 64 * 64; }

/// What one run (a range of the microbatch program) does, per rank.
struct RunCost {
  double matmulFlops = 0; ///< 2·m·n·k of its GEMMs
  double commBytes[kNumAxes] = {0, 0, 0};
  int64_t workspaceLive = 0; ///< the most workspace bytes live
};

/// One chunk (or the whole plan without a pipeline), analysed.
struct ChunkCost {
  const plan::PlanT *plan = nullptr;
  int64_t chunk = 0, stage = 0;
  RunCost forward, backward; // format 6's two runs (forward empty: loss)
  RunCost optimizer;
  double flopsPerMicrobatch = 0; ///< per rank: step_flops / (m · dp · tp)
  double forwardFlops = 0, backwardFlops = 0;
  int64_t sendForward = 0, sendBackward = 0; ///< activation_out, input_grad
  int64_t stashSlotBytes = 0;
};

int axisKindOf(const plan::PlanT &p, int axis) {
  if (axis < 0 || size_t(axis) >= p.mesh.size())
    return -1;
  const std::string &name = p.mesh[size_t(axis)]->name;
  return name == "dp" ? kDp : name == "pp" ? kPp : name == "tp" ? kTp : -1;
}

int64_t axisSizeOf(const plan::PlanT &p, int axis) {
  if (axis < 0 || size_t(axis) >= p.mesh.size())
    return 1;
  return p.mesh[size_t(axis)]->size;
}

double matmulFlopsOf(const runtime::Instruction &inst) {
  if (const auto *m = std::get_if<runtime::MatmulInstr>(&inst.record))
    return 2.0 * double(m->shape.batch) * double(m->shape.m) *
           double(m->shape.n) * double(m->shape.k);
  double sum = 0;
  if (const auto *k = std::get_if<runtime::KernelInstr>(&inst.record))
    for (const runtime::Instruction &ref : k->reference)
      sum += matmulFlopsOf(ref);
  return sum;
}

/// Bytes this rank sends for one collective: ring all-reduce 2(n-1)/n of
/// the buffer, ring all-gather and reduce-scatter (n-1)/n of the whole
/// tensor; all_slice sends nothing.
void addCommOf(const plan::PlanT &p, const runtime::Instruction &inst,
               double bytes[kNumAxes]) {
  if (const auto *a = std::get_if<runtime::AllReduceInstr>(&inst.record)) {
    int kind = axisKindOf(p, a->axis);
    double n = double(axisSizeOf(p, a->axis));
    if (kind < 0 || n <= 1)
      return;
    double total = double(a->count) *
                   double(runtime::dtypeBytes(p.buffers[size_t(a->x)]->dtype));
    bytes[kind] += 2 * (n - 1) / n * total;
  } else if (const auto *g =
                 std::get_if<runtime::GatherScatterInstr>(&inst.record)) {
    if (g->op == runtime::Op::AllSlice)
      return;
    int kind = axisKindOf(p, g->axis);
    double n = double(axisSizeOf(p, g->axis));
    if (kind < 0 || n <= 1)
      return;
    double whole = double(g->outer) * double(g->inner) * double(g->parts) *
                   double(g->elementBytes);
    bytes[kind] += (n - 1) / n * whole;
  } else if (const auto *b =
                 std::get_if<runtime::BucketShardInstr>(&inst.record)) {
    // The distributed optimizer's bucket: a reduce_scatter of the
    // gradients or an all_gather of the parameters over its padded span
    // (f32, `parts` shards).
    int kind = axisKindOf(p, b->axis);
    double n = double(b->parts);
    if (kind < 0 || n <= 1)
      return;
    bytes[kind] += (n - 1) / n * double(b->shard) * n * 4;
  }
}

/// The workspace buffers' lifetimes over the microbatch program (as the
/// memory planner sees them: inputs from before it, outputs to after it)
/// and, per range of it, the most bytes live at once: the union of the
/// live buffers' byte ranges, so that a view counts once.
class WorkspaceLifetimes {
public:
  explicit WorkspaceLifetimes(const plan::PlanT &p) : p(p) {
    const auto &insts = p.microbatch->instructions;
    end = int64_t(insts.size());
    size_t n = p.buffers.size();
    first.assign(n, std::numeric_limits<int64_t>::max());
    last.assign(n, -1);
    auto touch = [&](int32_t id, int64_t k) {
      if (id < 0 || size_t(id) >= n)
        return;
      first[size_t(id)] = std::min(first[size_t(id)], k);
      last[size_t(id)] = std::max(last[size_t(id)], k);
    };
    for (size_t i = 0; i < n; ++i) {
      if (p.buffers[i]->kind == plan::BufferKind::Input)
        touch(int32_t(i), 0);
      if (p.buffers[i]->kind == plan::BufferKind::Output)
        touch(int32_t(i), std::max<int64_t>(end - 1, 0));
    }
    for (int64_t k = 0; k < end; ++k)
      runtime::forEachBufferOf(*insts[size_t(k)],
                               [&](int32_t id) { touch(id, k); });
    for (size_t i = 0; i < n; ++i)
      if (p.buffers[i]->arena == plan::Arena::Workspace && last[i] >= 0)
        byFirst.push_back(int32_t(i));
    std::sort(byFirst.begin(), byFirst.end(), [&](int32_t a, int32_t b) {
      return first[size_t(a)] < first[size_t(b)];
    });
  }

  /// The most workspace bytes live at one instruction of [begin, stop).
  int64_t peak(int64_t begin, int64_t stop) const {
    int64_t best = 0;
    std::vector<int32_t> live;
    size_t next = 0;
    // Buffers that start before the range and are still live in it.
    while (next < byFirst.size() && first[size_t(byFirst[next])] < begin) {
      if (last[size_t(byFirst[next])] >= begin)
        live.push_back(byFirst[next]);
      ++next;
    }
    bool grew = !live.empty();
    for (int64_t k = begin; k < stop; ++k) {
      while (next < byFirst.size() && first[size_t(byFirst[next])] == k) {
        live.push_back(byFirst[next++]);
        grew = true;
      }
      // The peak is reached just after a buffer starts.
      if (grew)
        best = std::max(best, unionBytes(live, k));
      grew = false;
      live.erase(
          std::remove_if(live.begin(), live.end(),
                         [&](int32_t id) { return last[size_t(id)] <= k; }),
          live.end());
    }
    return best;
  }

private:
  int64_t unionBytes(std::vector<int32_t> live, int64_t k) const {
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (int32_t id : live) {
      if (first[size_t(id)] > k || last[size_t(id)] < k)
        continue;
      const plan::BufferT &b = *p.buffers[size_t(id)];
      ranges.push_back({b.offset, b.offset + aligned(b.bytes)});
    }
    std::sort(ranges.begin(), ranges.end());
    int64_t sum = 0, reach = std::numeric_limits<int64_t>::min();
    for (auto [lo, hi] : ranges) {
      lo = std::max(lo, reach);
      if (hi > lo)
        sum += hi - lo;
      reach = std::max(reach, hi);
    }
    return sum;
  }

  const plan::PlanT &p;
  int64_t end = 0;
  std::vector<int64_t> first, last;
  std::vector<int32_t> byFirst;
};

RunCost runCost(const plan::PlanT &p, const runtime::DecodedProgram &program,
                const WorkspaceLifetimes *lifetimes, int64_t begin,
                int64_t stop) {
  RunCost c;
  for (int64_t k = begin; k < stop; ++k) {
    const runtime::Instruction &inst = program.instructions[size_t(k)];
    c.matmulFlops += matmulFlopsOf(inst);
    addCommOf(p, inst, c.commBytes);
  }
  if (lifetimes)
    c.workspaceLive = lifetimes->peak(begin, stop);
  return c;
}

ChunkCost analyseChunk(const plan::PlanT &c, const plan::PlanT &top,
                       bool pipelined, int64_t stages, int64_t dpTp) {
  ChunkCost out;
  out.plan = &c;
  out.chunk = pipelined ? c.chunk_index : 0;
  out.stage = pipelined ? c.chunk_index % stages : 0;
  runtime::Result<runtime::DecodedPlan> decoded = runtime::decodePlan(c);
  int64_t end = int64_t(c.microbatch->instructions.size());
  int64_t split = 0; // forward: [0, split), backward: [split, end)
  if (pipelined && c.loss < 0)
    split = std::clamp<int64_t>(c.forward_end, 0, end);
  WorkspaceLifetimes lifetimes(c);
  if (decoded.ok()) {
    out.forward = runCost(c, decoded->microbatch, &lifetimes, 0, split);
    out.backward = runCost(c, decoded->microbatch, &lifetimes, split, end);
    out.optimizer = runCost(c, decoded->optimizer, nullptr, 0,
                            int64_t(decoded->optimizer.instructions.size()));
  }
  int64_t m = std::max<int64_t>(top.num_microbatches, 1);
  out.flopsPerMicrobatch = c.step_flops / double(m) / double(dpTp);
  // step_flops counts every op once; the GEMMs' share of each run splits it.
  double gemms = out.forward.matmulFlops + out.backward.matmulFlops;
  double forwardShare = gemms > 0   ? out.forward.matmulFlops / gemms
                        : split > 0 ? 1.0 / 3
                                    : 0.0;
  out.forwardFlops = out.flopsPerMicrobatch * forwardShare;
  out.backwardFlops = out.flopsPerMicrobatch - out.forwardFlops;
  auto bytesOf = [&](int32_t id) {
    return id >= 0 && size_t(id) < c.buffers.size()
               ? c.buffers[size_t(id)]->bytes
               : int64_t(0);
  };
  if (pipelined) {
    out.sendForward = bytesOf(c.activation_out);
    out.sendBackward = bytesOf(c.input_grad);
  }
  size_t stash = size_t(plan::Arena::Stash);
  out.stashSlotBytes = stash < c.arena_bytes.size() ? c.arena_bytes[stash] : 0;
  return out;
}

/// One run of a stage's timeline.
struct Run {
  size_t chunk; // index into the chunk costs
  bool backward;
  double start, end;
};

} // namespace

StepReport buildStepReport(const plan::PlanT &plan,
                           const StepReportOptions &options) {
  StepReport r;
  r.model = plan.model;
  r.schedule = plan.chunks.empty() ? "none" : plan.schedule;
  r.recompute = plan.recompute.empty() ? "none" : plan.recompute;
  for (const auto &axis : plan.mesh) {
    if (axis->name == "dp")
      r.dp = axis->size;
    else if (axis->name == "pp")
      r.pp = axis->size;
    else if (axis->name == "tp")
      r.tp = axis->size;
  }
  r.microbatches = std::max<int64_t>(plan.num_microbatches, 1);
  r.chunksPerStage = plan.chunks.empty() ? 1 : plan.chunks_per_stage;
  plan::DType compute =
      plan.precision ? plan.precision->compute : plan::DType::F32;
  bool bits16 = compute == plan::DType::BF16 || compute == plan::DType::F16;
  r.computeType = runtime::dtypeName(compute);
  r.hardwareFlops = plan.step_flops;
  r.modelFlopsFromPlan = plan.model_flops > 0;
  r.modelFlops = r.modelFlopsFromPlan ? plan.model_flops : plan.step_flops;
  r.device = options.device;
  r.computeEfficiency = options.computeEfficiency;

  const bool pipelined = !plan.chunks.empty();
  const int64_t stages = pipelined ? r.pp : 1, m = r.microbatches;
  const int64_t dpTp = r.dp * r.tp;
  std::vector<StageMemory> memory = stageMemory(plan);
  memory.resize(size_t(stages));

  std::vector<ChunkCost> chunks;
  if (pipelined)
    for (const auto &c : plan.chunks)
      chunks.push_back(analyseChunk(*c, plan, true, stages, dpTp));
  else
    chunks.push_back(analyseChunk(plan, plan, false, 1, dpTp));

  // Which axes stay inside a node: ranks number tp fastest, then pp, then
  // dp, so an axis's group spans (its size × the sizes inside it) ranks.
  int64_t perNode = r.device ? std::max<int64_t>(r.device->gpusPerNode, 1) : 8;
  r.axisIntraNode[kTp] = r.tp <= perNode;
  r.axisIntraNode[kPp] = r.tp * r.pp <= perNode;
  r.axisIntraNode[kDp] = r.ranks() <= perNode;
  if (r.device) {
    r.peakFlops = r.device->peakFlops(bits16);
    for (int a = 0; a < kNumAxes; ++a)
      r.axisBandwidth[a] = r.axisIntraNode[a] ? r.device->intraNodeBandwidth
                                              : r.device->interNodeBandwidth;
  }
  const double rate = r.device ? r.peakFlops * r.computeEfficiency : 0;
  auto commTime = [&](const double bytes[kNumAxes]) {
    double t = 0;
    for (int a = 0; a < kNumAxes; ++a)
      if (bytes[a] > 0 && r.axisBandwidth[a] > 0)
        t += bytes[a] / r.axisBandwidth[a];
    return t;
  };
  // A run's cost: with a device its seconds (compute at the rate, then its
  // collectives and its send, not overlapped); without one its FLOPs.
  auto runSeconds = [&](const ChunkCost &c, bool backward) {
    const RunCost &rc = backward ? c.backward : c.forward;
    double flops = backward ? c.backwardFlops : c.forwardFlops;
    if (!r.device)
      return flops;
    double send = double(backward ? c.sendBackward : c.sendForward);
    double t = flops / rate + commTime(rc.commBytes);
    if (send > 0 && r.axisBandwidth[kPp] > 0)
      t += send / r.axisBandwidth[kPp];
    return t;
  };

  // The stages' runs in order, timed by the schedule's simulation.
  std::vector<std::vector<Run>> runs(static_cast<size_t>(stages));
  if (pipelined) {
    pipeline::Schedule schedule = runtime::scheduleOfPlan(plan);
    std::vector<pipeline::StepCost> flopCosts, timeCosts;
    for (const ChunkCost &c : chunks) {
      flopCosts.push_back({c.forwardFlops, c.backwardFlops});
      timeCosts.push_back({runSeconds(c, false), runSeconds(c, true)});
    }
    pipeline::Simulation flopSim = pipeline::simulate(schedule, flopCosts);
    r.bubbleFraction = flopSim.bubbleFraction;
    pipeline::Simulation sim = pipeline::simulate(schedule, timeCosts);
    r.pipelineJson = pipeline::explainJson(schedule, flopSim);
    r.pipelineSeconds = r.device ? sim.makespan : 0;
    r.predictedBubble = r.device ? sim.bubbleFraction : 0;
    for (size_t s = 0; s < schedule.perStage.size() && s < runs.size(); ++s)
      for (size_t i = 0; i < schedule.perStage[s].size(); ++i) {
        const pipeline::Step &step = schedule.perStage[s][i];
        auto t = sim.times[s][i];
        runs[s].push_back({size_t(step.chunk),
                           step.kind == pipeline::Step::Backward, t.first,
                           t.second});
      }
  } else {
    // One run of the whole program per microbatch.
    double t = runSeconds(chunks[0], true);
    for (int64_t k = 0; k < m; ++k)
      runs[0].push_back({0, true, double(k) * t, double(k + 1) * t});
    r.pipelineSeconds = r.device ? double(m) * t : 0;
  }

  // Tied parameters (in two chunks): each holder sends its gradient once.
  std::map<std::string, int> holders;
  if (pipelined)
    for (const auto &c : plan.chunks)
      for (const auto &param : c->parameters)
        ++holders[param->name];

  for (int64_t s = 0; s < stages; ++s) {
    StageReport st;
    st.stage = s;
    st.memory = memory[size_t(s)];
    double after[kNumAxes] = {0, 0, 0};
    for (const ChunkCost &c : chunks) {
      if (c.stage != s)
        continue;
      st.hardwareFlops += c.plan->step_flops / double(dpTp);
      st.modelFlops +=
          (c.plan->model_flops > 0 ? c.plan->model_flops : c.plan->step_flops) /
          double(dpTp);
      for (int a = 0; a < kNumAxes; ++a) {
        st.commBytes[a] +=
            double(m) * (c.forward.commBytes[a] + c.backward.commBytes[a]);
        after[a] += c.optimizer.commBytes[a];
      }
      st.commBytes[kPp] += double(m) * double(c.sendForward + c.sendBackward);
      if (pipelined)
        for (const auto &param : c.plan->parameters)
          if (holders[param->name] == 2)
            after[kPp] += double(c.plan->buffers[size_t(param->grad)]->bytes);
      if (r.device) {
        st.computeSeconds +=
            double(m) * (c.forwardFlops + c.backwardFlops) / rate;
        for (int a = 0; a < kNumAxes; ++a)
          if (r.axisBandwidth[a] > 0)
            st.commSeconds[a] +=
                double(m) * (c.forward.commBytes[a] + c.backward.commBytes[a]) /
                r.axisBandwidth[a];
        if (r.axisBandwidth[kPp] > 0)
          st.commSeconds[kPp] += double(m) *
                                 double(c.sendForward + c.sendBackward) /
                                 r.axisBandwidth[kPp];
      }
    }
    for (int a = 0; a < kNumAxes; ++a) {
      st.commBytes[a] += after[a];
      st.commBytesAfter[a] = after[a];
    }

    // Memory over the step, and its peak.
    const int64_t base = st.memory.persistent() + st.memory.shadows;
    std::vector<int64_t> occupied(chunks.size(), 0);
    int64_t stashLive = 0, slots = 0;
    st.timeline.push_back({0, base});
    st.peakLive = base;
    double lastEnd = 0;
    for (const Run &run : runs[size_t(s)]) {
      const ChunkCost &c = chunks[run.chunk];
      bool holdsSlot = pipelined && c.stashSlotBytes > 0;
      if (!run.backward && holdsSlot) {
        ++occupied[run.chunk];
        ++slots;
        stashLive += c.stashSlotBytes;
      }
      int64_t ws =
          run.backward ? c.backward.workspaceLive : c.forward.workspaceLive;
      int64_t during = base + stashLive + ws;
      st.timeline.push_back(
          {run.start, base + stashLive -
                          (!run.backward && holdsSlot ? c.stashSlotBytes : 0)});
      st.timeline.push_back({run.start, during});
      st.peakLive = std::max(st.peakLive, during);
      st.peakWorkspaceLive = std::max(st.peakWorkspaceLive, ws);
      st.peakStashSlots = std::max(st.peakStashSlots, slots);
      if (run.backward && holdsSlot && occupied[run.chunk] > 0) {
        --occupied[run.chunk];
        --slots;
        stashLive -= c.stashSlotBytes;
      }
      st.timeline.push_back({run.end, during});
      st.timeline.push_back({run.end, base + stashLive});
      lastEnd = std::max(lastEnd, run.end);
    }
    st.pipelineEnd = r.device ? lastEnd : 0;

    if (r.device) {
      for (int a = 0; a < kNumAxes; ++a)
        if (r.axisBandwidth[a] > 0) {
          st.commSeconds[a] += after[a] / r.axisBandwidth[a];
          st.afterPipeline += after[a] / r.axisBandwidth[a];
        }
      // AdamW reads and writes every persistent byte once (parameters,
      // gradients zeroed, moments): memory-bound.
      if (r.device->memoryBandwidth > 0)
        st.afterPipeline +=
            2.0 * double(st.memory.persistent()) / r.device->memoryBandwidth;
      st.fits = double(st.memory.total()) <= r.device->memoryBytes;
      r.allFit = r.allFit && st.fits;
      r.afterPipelineSeconds =
          std::max(r.afterPipelineSeconds, st.afterPipeline);
      st.timeline.push_back({lastEnd + st.afterPipeline, base + stashLive});
    }
    r.stages.push_back(std::move(st));
  }
  if (r.device) {
    r.stepSeconds = r.pipelineSeconds + r.afterPipelineSeconds;
    double denominator = r.stepSeconds * r.peakFlops * double(r.ranks());
    r.mfu = denominator > 0 ? r.modelFlops / denominator : 0;
  }
  return r;
}

//===----------------------------------------------------------------------===//
// Text
//===----------------------------------------------------------------------===//

namespace {

std::string bytesText(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

std::string flopsText(double flops) {
  const char *units[] = {"", "K", "M", "G", "T", "P", "E", "Z"};
  int u = 0;
  while (std::fabs(flops) >= 1000 && u < 7) {
    flops /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g %sFLOP", flops, units[u]);
  return buf;
}

std::string secondsText(double s) {
  char buf[32];
  if (s >= 1)
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  else if (s >= 1e-3)
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  return buf;
}

/// Columns right-aligned to their widest cell.
std::string table(const std::vector<std::vector<std::string>> &rows) {
  std::vector<size_t> width;
  for (const auto &row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      width.resize(std::max(width.size(), row.size()), 0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (const auto &row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += (i ? "  " : "");
      line += std::string(width[i] - row[i].size(), ' ') + row[i];
    }
    out += line + "\n";
  }
  return out;
}

} // namespace

std::string stepReportText(const StepReport &r) {
  std::ostringstream os;
  os << "step report: " << r.model << " on dp=" << r.dp << " pp=" << r.pp
     << " tp=" << r.tp << " (" << r.ranks() << " ranks), " << r.microbatches
     << " microbatches per rank, " << r.computeType << ", recompute "
     << r.recompute << "\n";
  os << "\nmemory per rank (allocated: what the executors allocate, the "
        "arenas and the shadows; peak live: the most live at once)\n";
  std::vector<std::vector<std::string>> rows = {
      {"stage", "parameters", "gradients", "optimizer", "workspace",
       "stash (slots)", "shadows", "allocated", "peak live"}};
  StageMemory sum;
  for (const StageReport &s : r.stages) {
    const StageMemory &m = s.memory;
    rows.push_back(
        {std::to_string(s.stage), bytesText(m.parameters),
         bytesText(m.gradients), bytesText(m.optimizerState),
         bytesText(m.workspace),
         bytesText(m.stash) + " (" + std::to_string(m.stashSlots) + ")",
         bytesText(m.shadows), bytesText(m.total()), bytesText(s.peakLive)});
  }
  os << table(rows);
  os << "\nFLOPs per step (hardware: what runs, recomputation included; "
        "model: without it)\n";
  rows = {{"stage", "hardware/rank", "model/rank"}};
  for (const StageReport &s : r.stages)
    rows.push_back({std::to_string(s.stage), flopsText(s.hardwareFlops),
                    flopsText(s.modelFlops)});
  os << table(rows);
  os << "all " << r.ranks() << " ranks: hardware " << flopsText(r.hardwareFlops)
     << ", model " << flopsText(r.modelFlops)
     << (r.modelFlopsFromPlan ? ""
                              : " (the plan has no model_flops: "
                                "step_flops)")
     << "\n";
  os << "\ncommunication per rank per step (bytes sent; ring all-reduce "
        "2(n-1)/n, all-gather and reduce-scatter (n-1)/n of the whole "
        "tensor; pp: the activations and gradients sent between stages and "
        "the tied gradients)\n";
  rows = {{"stage", "tp", "dp", "pp"}};
  double total[kNumAxes] = {0, 0, 0};
  for (const StageReport &s : r.stages) {
    rows.push_back({std::to_string(s.stage), bytesText(s.commBytes[kTp]),
                    bytesText(s.commBytes[kDp]), bytesText(s.commBytes[kPp])});
    for (int a = 0; a < kNumAxes; ++a)
      total[a] += s.commBytes[a] * double(r.dp * r.tp);
  }
  os << table(rows);
  os << "all ranks: tp " << bytesText(total[kTp]) << ", dp "
     << bytesText(total[kDp]) << ", pp " << bytesText(total[kPp]) << "\n";
  if (r.pp > 1) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", r.bubbleFraction);
    os << "\nbubble fraction " << buf
       << " (each step's FLOPs as its cost, forward and backward as format 6 "
          "runs them)\n";
  }
  if (!r.device) {
    os << "\n(--device-model a100|h100|h200 or --device-flops ... predicts "
          "the step time)\n";
    return os.str();
  }
  const DeviceModel &d = *r.device;
  os << "\nprediction on " << d.name << ": " << flopsText(r.peakFlops)
     << "/s peak (" << r.computeType << ") x " << r.computeEfficiency
     << " achieved, " << bytesText(d.memoryBytes) << " memory at "
     << bytesText(d.memoryBandwidth) << "/s; tp over "
     << (r.axisIntraNode[kTp] ? "NVLink" : "the network") << " "
     << bytesText(r.axisBandwidth[kTp]) << "/s, pp over "
     << (r.axisIntraNode[kPp] ? "NVLink" : "the network") << " "
     << bytesText(r.axisBandwidth[kPp]) << "/s, dp over "
     << (r.axisIntraNode[kDp] ? "NVLink" : "the network") << " "
     << bytesText(r.axisBandwidth[kDp]) << "/s\n";
  rows = {{"stage", "compute", "tp comm", "pp comm", "pipeline end",
           "dp + optimizer", "fits"}};
  for (const StageReport &s : r.stages)
    rows.push_back({std::to_string(s.stage), secondsText(s.computeSeconds),
                    secondsText(s.commSeconds[kTp]),
                    secondsText(s.commSeconds[kPp]), secondsText(s.pipelineEnd),
                    secondsText(s.afterPipeline), s.fits ? "yes" : "NO"});
  os << table(rows);
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "step time %s (pipeline %s, then %s of dp reduction and "
                "optimizer, not overlapped), bubble %.4g, MFU %.1f%%\n",
                secondsText(r.stepSeconds).c_str(),
                secondsText(r.pipelineSeconds).c_str(),
                secondsText(r.afterPipelineSeconds).c_str(), r.predictedBubble,
                100 * r.mfu);
  os << buf;
  os << (r.allFit ? "every stage fits in " : "NOT every stage fits in ")
     << bytesText(d.memoryBytes) << "\n";
  return os.str();
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

namespace {

// The runtime's JSON forms: the same in every locale (printf's %g would
// write 0,5 in some), inf and nan as null, strings escaped and UTF-8.
std::string num(double x) { return runtime::jsonDouble(x); }

std::string str(const std::string &s) { return runtime::jsonQuote(s); }

std::string axes(const double v[kNumAxes]) {
  return "{\"tp\": " + num(v[kTp]) + ", \"dp\": " + num(v[kDp]) +
         ", \"pp\": " + num(v[kPp]) + "}";
}

} // namespace

std::string stepReportJson(const StepReport &r) {
  std::ostringstream os;
  os << "{\"model\": " << str(r.model) << ", \"mesh\": {\"dp\": " << r.dp
     << ", \"pp\": " << r.pp << ", \"tp\": " << r.tp
     << "}, \"ranks\": " << r.ranks()
     << ", \"microbatches\": " << r.microbatches
     << ", \"compute_dtype\": " << str(r.computeType)
     << ", \"recompute\": " << str(r.recompute)
     << ", \"schedule\": " << str(r.schedule)
     << ", \"chunks_per_stage\": " << r.chunksPerStage << ", \"stages\": [";
  double total[kNumAxes] = {0, 0, 0};
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const StageReport &s = r.stages[i];
    const StageMemory &m = s.memory;
    for (int a = 0; a < kNumAxes; ++a)
      total[a] += s.commBytes[a] * double(r.dp * r.tp);
    os << (i ? ", " : "") << "{\"stage\": " << s.stage
       << ", \"parameter_bytes\": " << m.parameters
       << ", \"gradient_bytes\": " << m.gradients
       << ", \"optimizer_state_bytes\": " << m.optimizerState
       << ", \"workspace_bytes\": " << m.workspace
       << ", \"stash_bytes\": " << m.stash
       << ", \"stash_slots\": " << m.stashSlots
       << ", \"stash_slot_bytes\": " << m.stashSlotBytes
       << ", \"shadow_bytes\": " << m.shadows
       << ", \"allocated_bytes\": " << m.total()
       << ", \"peak_live_bytes\": " << s.peakLive
       << ", \"peak_workspace_live_bytes\": " << s.peakWorkspaceLive
       << ", \"peak_stash_slots_occupied\": " << s.peakStashSlots
       << ", \"hardware_flops_per_rank\": " << num(s.hardwareFlops)
       << ", \"model_flops_per_rank\": " << num(s.modelFlops)
       << ", \"comm_bytes_per_rank\": " << axes(s.commBytes)
       << ", \"comm_bytes_after_pipeline\": " << axes(s.commBytesAfter);
    if (r.device)
      os << ", \"compute_seconds\": " << num(s.computeSeconds)
         << ", \"comm_seconds\": " << axes(s.commSeconds)
         << ", \"pipeline_end_seconds\": " << num(s.pipelineEnd)
         << ", \"after_pipeline_seconds\": " << num(s.afterPipeline)
         << ", \"fits\": " << (s.fits ? "true" : "false");
    os << "}";
  }
  os << "], \"flops\": {\"hardware\": " << num(r.hardwareFlops)
     << ", \"model\": " << num(r.modelFlops) << ", \"model_source\": "
     << str(r.modelFlopsFromPlan ? "model_flops" : "step_flops")
     << "}, \"comm_bytes_all_ranks\": " << axes(total)
     << ", \"bubble_fraction\": " << num(r.bubbleFraction)
     << ", \"pipeline\": " << r.pipelineJson << ", \"device\": ";
  if (!r.device) {
    os << "null, \"prediction\": null}";
    return os.str();
  }
  const DeviceModel &d = *r.device;
  os << "{\"name\": " << str(d.name) << ", \"flops16\": " << num(d.flops16)
     << ", \"flops32\": " << num(d.flops32)
     << ", \"memory_bytes\": " << num(d.memoryBytes)
     << ", \"memory_bandwidth\": " << num(d.memoryBandwidth)
     << ", \"intra_node_bandwidth\": " << num(d.intraNodeBandwidth)
     << ", \"inter_node_bandwidth\": " << num(d.interNodeBandwidth)
     << ", \"gpus_per_node\": " << d.gpusPerNode << "}";
  os << ", \"prediction\": {\"compute_efficiency\": "
     << num(r.computeEfficiency) << ", \"peak_flops\": " << num(r.peakFlops)
     << ", \"axis_bandwidth\": " << axes(r.axisBandwidth)
     << ", \"pipeline_seconds\": " << num(r.pipelineSeconds)
     << ", \"after_pipeline_seconds\": " << num(r.afterPipelineSeconds)
     << ", \"step_seconds\": " << num(r.stepSeconds)
     << ", \"bubble_fraction\": " << num(r.predictedBubble)
     << ", \"mfu\": " << num(r.mfu)
     << ", \"all_fit\": " << (r.allFit ? "true" : "false") << "}}";
  return os.str();
}

//===----------------------------------------------------------------------===//
// SVG
//===----------------------------------------------------------------------===//

std::string memorySvg(const StepReport &r) {
  double tEnd = 0, yMax = 1;
  for (const StageReport &s : r.stages)
    for (const MemoryPoint &p : s.timeline) {
      tEnd = std::max(tEnd, p.time);
      yMax = std::max(yMax, double(p.bytes));
    }
  if (r.device)
    yMax = std::max(yMax, r.device->memoryBytes);
  yMax *= 1.05;
  if (!(tEnd > 0))
    tEnd = 1;
  const double left = 90, top = 40, w = 900, h = 360;
  const double legendTop = top + h + 40;
  const int64_t perLine = 8;
  const int64_t lines = (int64_t(r.stages.size()) + perLine - 1) / perLine;
  const double height = legendTop + double(lines) * 20 + 20;
  auto X = [&](double t) { return left + t / tEnd * w; };
  auto Y = [&](double b) { return top + h - b / yMax * h; };
  char buf[128];
  auto f = [&](double v) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return std::string(buf);
  };
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\""
     << f(left + w + 30) << "\" height=\"" << f(height) << "\">\n"
     << "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" "
        "fill=\"white\"/>\n"
     << "<text x=\"" << f(left)
     << "\" y=\"22\" font-family=\"sans-serif\" "
        "font-size=\"15\" font-weight=\"bold\">Memory per rank over the "
        "step: "
     << r.model << ", dp=" << r.dp << " pp=" << r.pp << " tp=" << r.tp
     << "</text>\n";
  // Axes and ticks (bytes in GiB or MiB).
  double unit = yMax >= 4.0 * (1 << 30) ? double(1 << 30) : double(1 << 20);
  const char *unitName = unit > double(1 << 20) ? "GiB" : "MiB";
  os << "<line x1=\"" << f(left) << "\" y1=\"" << f(top + h) << "\" x2=\""
     << f(left + w) << "\" y2=\"" << f(top + h)
     << "\" stroke=\"black\"/>\n<line x1=\"" << f(left) << "\" y1=\"" << f(top)
     << "\" x2=\"" << f(left) << "\" y2=\"" << f(top + h)
     << "\" stroke=\"black\"/>\n";
  double raw = yMax / unit / 5,
         mag = std::pow(10.0, std::floor(std::log10(raw)));
  double tick = (raw / mag < 2 ? 2 : raw / mag < 5 ? 5 : 10) * mag;
  for (double v = 0; v * unit <= yMax; v += tick) {
    os << "<text class=\"ytick\" x=\"" << f(left - 6) << "\" y=\""
       << f(Y(v * unit) + 4)
       << "\" font-family=\"sans-serif\" font-size=\"10\" "
          "text-anchor=\"end\">"
       << v << " " << unitName << "</text>\n";
  }
  os << "<text x=\"" << f(left + w / 2) << "\" y=\"" << f(top + h + 24)
     << "\" font-family=\"sans-serif\" font-size=\"12\" "
        "text-anchor=\"middle\">"
     << (r.device ? "time (s, predicted)" : "work (FLOPs per rank)")
     << ", 0 to " << tEnd << "</text>\n";
  if (r.device)
    os << "<line class=\"capacity\" x1=\"" << f(left) << "\" y1=\""
       << f(Y(r.device->memoryBytes)) << "\" x2=\"" << f(left + w) << "\" y2=\""
       << f(Y(r.device->memoryBytes))
       << "\" stroke=\"#b00000\" stroke-dasharray=\"6,4\"/>\n<text x=\""
       << f(left + w - 4) << "\" y=\"" << f(Y(r.device->memoryBytes) - 4)
       << "\" font-family=\"sans-serif\" font-size=\"11\" "
          "text-anchor=\"end\" fill=\"#b00000\">"
       << r.device->name << " capacity</text>\n";
  const double hues[] = {212, 28, 135, 280, 0, 178, 48, 325};
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const StageReport &s = r.stages[i];
    std::snprintf(buf, sizeof buf, "hsl(%.0f,65%%,%d%%)", hues[i % 8],
                  40 + int(i / 8 % 3) * 12);
    std::string colour = buf;
    os << "<polyline class=\"stage\" data-stage=\"" << s.stage
       << "\" fill=\"none\" stroke=\"" << colour
       << "\" stroke-width=\"1.5\" points=\"";
    for (const MemoryPoint &p : s.timeline)
      os << f(X(p.time)) << "," << f(Y(double(p.bytes))) << " ";
    os << "\"/>\n";
    double lx = left + double(int64_t(i) % perLine) * 110;
    double ly = legendTop + double(int64_t(i) / perLine) * 20;
    os << "<rect x=\"" << f(lx) << "\" y=\"" << f(ly) << "\" width=\"16\" "
       << "height=\"4\" fill=\"" << colour << "\"/><text x=\"" << f(lx + 22)
       << "\" y=\"" << f(ly + 6)
       << "\" font-family=\"sans-serif\" font-size=\"11\">stage " << s.stage
       << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

} // namespace loom
