//===- CpuExecutor.cpp - the CPU backend: runs a plan's programs ----------===//
//
// Host arenas, the 16-bit shadows, the prepared kernels of each program,
// buffer transfers and the step outputs. Decoding is the decoder's
// (runtime/Decoder.cpp); binding records to kernels is the families'
// (Bind*.cpp).
//
// Overlapped gradient reduction (RankContext::overlapGradReduce): in the
// step's last microbatch, once a dp bucket's gradients are final
// (loom/runtime/GradientBuckets.h), its prepared all_reduce goes to the
// executor's communication thread while the backward goes on; the optimizer
// program's all_reduce then waits for it. Every dp bucket goes through that
// thread, in the order handed over, and the optimizer's other instructions
// wait until it is idle, so the dp collectives keep one order on every
// rank. The thread only calls the communicator on the dp axis; this thread
// calls it on the others (Communicator.h allows one thread per axis).
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "CommThread.h"
#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/GradientBuckets.h"
#include "loom/runtime/Trace.h"
#include "loom/runtime/cpu/CpuBackend.h"
#include "loom/runtime/cpu/Float16.h"
#include "loom/runtime/cpu/PlanKernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

namespace loom {
namespace runtime {
namespace cpu {

namespace {

/// A shadow's place in the scratch region, per 16-bit operand.
constexpr size_t kShadowAlign = 64;

class CpuExecutor final : public Executor, private Binder {
public:
  static Result<std::unique_ptr<Executor>> create(const plan::PlanT &plan,
                                                  RankContext rank);
  ~CpuExecutor() override;

  const char *backend() const override { return "cpu"; }
  Status run(ProgramKind program, const StepParams &params, size_t begin,
             size_t end) override;
  Status upload(int32_t buffer, const void *data, size_t bytes) override;
  Status download(int32_t buffer, void *data, size_t bytes) override;
  Status zero(int32_t buffer) override;
  Status send(int32_t buffer, int axis, int64_t peer, int64_t tag,
              const std::string &what) override {
    return transfer(true, buffer, axis, peer, tag, what);
  }
  Status recv(int32_t buffer, int axis, int64_t peer, int64_t tag,
              const std::string &what) override {
    return transfer(false, buffer, axis, peer, tag, what);
  }
  Status selectStashSlot(int64_t slot) override {
    Result<int64_t> binding =
        stashBindingFor(plan, slot, microbatchBySlot.size());
    if (!binding.ok())
      return Status::error(binding.message());
    currentSlot = *binding;
    return Status::success();
  }
  MemoryUse memoryUse() const override {
    return {allocatedArenaBytes, int64_t(scratchBytes)};
  }
  void beginStep() override {
    if (commThread)
      commThread->forget(); // a failed step's results go with it
    outputs = StepOutputs();
  }
  Status accumulateLoss(int32_t loss) override;
  Result<StepOutputs> readStepOutputs() override {
    if (commThread)
      commThread->drain();
    return outputs;
  }
  void setGradNorm(double norm) override {
    outputs.gradNorm = norm;
    outputs.nonFinite = !std::isfinite(norm);
  }

private:
  CpuExecutor(const plan::PlanT &plan, RankContext rank)
      : plan(plan), rank(std::move(rank)) {}
  Status prepare(const DecodedProgram &program, std::vector<Kernel> &into);
  /// The plan's generated kernels, compiled (a slice in the trace).
  Result<std::shared_ptr<HostModule>> loadKernels();
  /// A prepared instruction with its 16-bit conversions.
  Kernel withShadows(Kernel kernel, const Instruction &inst);
  Status checkTransfer(int32_t buffer, size_t bytes, const char *what) const;
  /// A buffer's storage to or from a peer, as 4-byte words.
  Status transfer(bool send, int32_t buffer, int axis, int64_t peer,
                  int64_t tag, const std::string &what);
  /// Finds the dp buckets to overlap and starts the communication thread
  /// when there are any.
  void prepareOverlap();
  /// Hands bucket `bucket`'s all_reduce (its optimizer instruction) to the
  /// communication thread.
  void submitBucket(size_t bucket, const StepParams &params);
  /// Before the runtime touches `buffer`: waits for the reductions in
  /// flight when one may be writing it.
  void settle(int32_t buffer);

  // Binder.
  float *f32(BufferId id) override;
  void *storage(BufferId id) override {
    const plan::BufferT &b = *plan.buffers[size_t(id)];
    int64_t slot = b.arena == plan::Arena::Stash
                       ? currentSlot * plan.arena_bytes[size_t(b.arena)]
                       : 0;
    return arenaBase[size_t(b.arena)] + slot + b.offset;
  }
  /// Copies of the Stash arena: one per microbatch in flight (at least one).
  int64_t stashSlots() const { return stashSlotsOf(plan); }
  size_t bytes(BufferId id) override {
    return size_t(plan.buffers[size_t(id)]->bytes);
  }
  Result<Kernel> bindReferenceInstruction(const Instruction &ref) override {
    std::vector<BufferId> outer = std::move(shadowsAsked);
    shadowsAsked.clear();
    Result<Kernel> k = std::visit(
        [&](const auto &record) { return bind(record, ref, *this); },
        ref.record);
    if (k.ok())
      k = withShadows(std::move(*k), ref);
    shadowsAsked = std::move(outer);
    return k;
  }
  Communicator *comm() override { return rank.comm; }
  int64_t axisSize(int axis) override {
    return axis >= 0 && axis < int(plan.mesh.size())
               ? plan.mesh[size_t(axis)]->size
               : 1;
  }
  void *kernelEntry(const std::string &name) override {
    return kernels ? kernels->symbol(name) : nullptr;
  }

  const plan::PlanT &plan;
  RankContext rank;
  DecodedPlan decoded;
  std::vector<uint8_t *> arenaBase;
  std::vector<std::unique_ptr<uint8_t[]>> arenas;
  /// The f32 shadows of the instruction being bound: buffer -> offset in
  /// the scratch region (every instruction's start at 0).
  std::map<BufferId, size_t> shadowOffsets;
  std::vector<BufferId> shadowsAsked;
  std::unique_ptr<float[]> scratch;
  size_t scratchBytes = 0;
  /// The microbatch program prepared once per stash slot (its buffers in
  /// the Stash arena at that slot's copy), and the slot runs use.
  std::vector<std::vector<Kernel>> microbatchBySlot;
  std::vector<Kernel> optimizer;
  int64_t currentSlot = 0;
  /// The bytes the arenas were allocated with (memoryUse).
  int64_t allocatedArenaBytes = 0;
  /// The plan's generated kernels, compiled; null: their reference forms run.
  std::shared_ptr<HostModule> kernels;
  StepOutputs outputs;
  bool profiling = false;
  std::map<std::string, double> profile; // op -> seconds
  /// The dp buckets of the optimizer program; per microbatch instruction,
  /// the buckets final after it; per optimizer instruction, its bucket or
  /// -1. Filled only when overlapping.
  std::vector<GradientBucket> buckets;
  std::vector<std::vector<size_t>> readyAfter;
  std::vector<int64_t> bucketAt;
  /// Last: destroyed first, while the kernels its work runs still exist.
  std::unique_ptr<CommThread> commThread;
};

Result<std::unique_ptr<Executor>>
CpuExecutor::create(const plan::PlanT &plan, RankContext rank) {
  Result<DecodedPlan> decoded = decodePlan(plan, rank.coords);
  if (!decoded.ok())
    return Status::error(decoded.message());
  std::unique_ptr<CpuExecutor> ex(new CpuExecutor(plan, std::move(rank)));
  ex->decoded = std::move(*decoded);
  ex->rank.coords = ex->decoded.coords;
  const char *profile = std::getenv("LOOM_PROFILE");
  ex->profiling = profile && std::string(profile) == "1";
  for (size_t a = 0; a < plan.arena_bytes.size(); ++a) {
    int64_t bytes = plan.arena_bytes[a];
    if (bytes < 0 || bytes > kMaxArenaBytes)
      return Status::error("the plan's arena of " + std::to_string(bytes) +
                           " bytes is not in [0, " +
                           std::to_string(kMaxArenaBytes) + "]");
    if (a == size_t(plan::Arena::Stash)) // validated: slots x bytes fits
      bytes *= ex->stashSlots();
    // 64 spare bytes: a zero-byte arena still has an address.
    ex->arenas.emplace_back(new (std::nothrow) uint8_t[size_t(bytes) + 64]());
    ex->allocatedArenaBytes += bytes + 64; // what was asked of the allocator
    if (!ex->arenas.back())
      return Status::error("cannot allocate an arena of " +
                           std::to_string(bytes) + " bytes");
    ex->arenaBase.push_back(ex->arenas.back().get());
  }
  // The shadow scratch: the most any one instruction's 16-bit operands
  // need as f32.
  ex->scratchBytes = shadowScratchBytes(plan, ex->decoded, kShadowAlign);
  if (ex->scratchBytes) {
    ex->scratch.reset(new (std::nothrow) float[ex->scratchBytes / 4]());
    if (!ex->scratch)
      return Status::error("cannot allocate the 16-bit shadows' " +
                           std::to_string(ex->scratchBytes) + " bytes");
  }
  if (!plan.kernels.empty()) {
    if (!ex->rank.generatedKernels) {
      noteReferenceKernels(plan, "generated kernels are off (--no-jit)");
    } else if (Result<std::shared_ptr<HostModule>> module =
                   ex->loadKernels();
               module.ok()) {
      ex->kernels = *module;
      for (const auto &k : plan.kernels)
        if (!ex->kernels->symbol(k->name))
          return Status::error("the compiled kernels have no entry point '" +
                               k->name + "'");
    }
  }
  // One binding of the microbatch program per stash slot (a plan without a
  // stash has one).
  int64_t variants =
      plan.arena_bytes[size_t(plan::Arena::Stash)] > 0 ? ex->stashSlots() : 1;
  ex->microbatchBySlot.resize(size_t(variants));
  for (int64_t slot = 0; slot < variants; ++slot) {
    ex->currentSlot = slot;
    if (Status s = ex->prepare(ex->decoded.microbatch,
                               ex->microbatchBySlot[size_t(slot)]);
        !s.ok())
      return s;
  }
  ex->currentSlot = 0;
  if (Status s = ex->prepare(ex->decoded.optimizer, ex->optimizer); !s.ok())
    return s;
  ex->prepareOverlap();
  return std::unique_ptr<Executor>(std::move(ex));
}

void CpuExecutor::prepareOverlap() {
  if (!rank.overlapGradReduce || !rank.comm)
    return;
  std::vector<GradientBucket> found =
      analyzeGradientBuckets(plan, decoded, rank.writtenAfterMicrobatches);
  if (std::none_of(found.begin(), found.end(),
                   [](const GradientBucket &b) { return b.overlapped(); }))
    return;
  buckets = std::move(found);
  readyAfter.assign(microbatchBySlot.front().size(), {});
  bucketAt.assign(optimizer.size(), -1);
  for (size_t b = 0; b < buckets.size(); ++b) {
    if (buckets[b].overlapped())
      readyAfter[size_t(buckets[b].readyAfter)].push_back(b);
    bucketAt[buckets[b].instruction] = int64_t(b);
  }
  commThread = std::make_unique<CommThread>();
}

void CpuExecutor::submitBucket(size_t bucket, const StepParams &params) {
  size_t k = buckets[bucket].instruction;
  Tracer *tracer = rank.tracer && rank.tracer->tracesStep(params.step)
                       ? rank.tracer
                       : nullptr;
  // The hand-over, on the rank's own track: where in the backward the
  // bucket left for the comm thread (its all_reduce is on the comm track).
  TraceScope handOver(tracer, rank.traceTrack, "hand over all_reduce",
                      "collective");
  if (handOver)
    handOver.args().add("bucket", int64_t(bucket)).add("step", params.step);
  commThread->submit(bucket, [this, k, params, tracer] {
    int64_t begin = tracer ? tracer->nowUs() : 0;
    StepOutputs unused; // an all_reduce reads and adds no step outputs
    Status s = optimizer[k](params, unused);
    if (tracer)
      instructionSlice(*tracer, rank.commTraceTrack, plan, decoded.optimizer, k,
                       params, begin);
    return s;
  });
}

void CpuExecutor::settle(int32_t buffer) {
  if (!commThread || !commThread->busy())
    return;
  for (const GradientBucket &b : buckets)
    if (bufferOverlapsBucket(plan, buffer, b)) {
      commThread->drain();
      return;
    }
}

Result<std::shared_ptr<HostModule>> CpuExecutor::loadKernels() {
  int64_t begin = rank.tracer ? rank.tracer->nowUs() : 0;
  HostCompileReport report;
  Result<std::shared_ptr<HostModule>> module = loadPlanKernels(plan, &report);
  if (rank.tracer)
    rank.tracer->compileKernels(rank.traceTrack, begin,
                                rank.tracer->nowUs() - begin, report.cacheHit,
                                report.seconds, int64_t(plan.kernels.size()));
  return module;
}

float *CpuExecutor::f32(BufferId id) {
  if (!isFloat16(plan.buffers[size_t(id)]->dtype))
    return static_cast<float *>(storage(id));
  auto it = shadowOffsets.find(id);
  if (it == shadowOffsets.end()) {
    size_t offset = 0;
    for (auto [other, at] : shadowOffsets)
      offset = std::max(
          offset, at + shadowBytes(*plan.buffers[size_t(other)], kShadowAlign));
    it = shadowOffsets.emplace(id, offset).first;
  }
  if (std::find(shadowsAsked.begin(), shadowsAsked.end(), id) ==
      shadowsAsked.end())
    shadowsAsked.push_back(id);
  return scratch.get() + it->second / 4;
}

Status CpuExecutor::prepare(const DecodedProgram &program,
                            std::vector<Kernel> &into) {
  for (const Instruction &inst : program.instructions) {
    shadowOffsets.clear();
    shadowsAsked.clear();
    Result<Kernel> kernel = std::visit(
        [&](const auto &record) { return bind(record, inst, *this); },
        inst.record);
    if (!kernel.ok())
      return Status::error("the plan's " + inst.where + ": " +
                           kernel.message());
    into.push_back(withShadows(std::move(*kernel), inst));
  }
  return Status::success();
}

Kernel CpuExecutor::withShadows(Kernel kernel, const Instruction &inst) {
  // 16-bit buffers: widen what the kernel reads before it (its inputs, and
  // an output it adds into), round its outputs after.
  bool accumulates = accumulatesIntoOutput(inst);
  struct Conversion {
    uint16_t *bits;
    float *f;
    int64_t n;
    bool bf16;
  };
  std::vector<Conversion> widen, round;
  auto has = [](const std::vector<BufferId> &ids, BufferId id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  for (BufferId id : shadowsAsked) {
    const plan::BufferT &b = *plan.buffers[size_t(id)];
    Conversion c{static_cast<uint16_t *>(storage(id)),
                 scratch.get() + shadowOffsets[id] / 4, numElements(b.shape),
                 b.dtype == plan::DType::BF16};
    bool output = has(inst.outputs, id);
    if (has(inst.inputs, id) || (output && accumulates))
      widen.push_back(c);
    if (output)
      round.push_back(c);
  }
  if (widen.empty() && round.empty())
    return kernel;
  return [kernel = std::move(kernel), widen,
          round](const StepParams &params, StepOutputs &outputs) {
    for (const Conversion &c : widen)
      for (int64_t i = 0; i < c.n; ++i)
        c.f[i] = c.bf16 ? bf16ToFloat(c.bits[i]) : f16ToFloat(c.bits[i]);
    Status s = kernel(params, outputs);
    for (const Conversion &c : round)
      for (int64_t i = 0; i < c.n; ++i)
        c.bits[i] = c.bf16 ? floatToBf16(c.f[i]) : floatToF16(c.f[i]);
    return s;
  };
}

CpuExecutor::~CpuExecutor() {
  if (!profiling)
    return;
  double total = 0;
  std::vector<std::pair<double, std::string>> sorted;
  for (auto &[op, seconds] : profile) {
    sorted.push_back({seconds, op});
    total += seconds;
  }
  std::sort(sorted.rbegin(), sorted.rend());
  std::fprintf(stderr, "LOOM_PROFILE: %.3f s in instructions\n", total);
  for (auto &[seconds, op] : sorted)
    std::fprintf(stderr, "  %-20s %9.3f s %5.1f%%\n", op.c_str(), seconds,
                 100 * seconds / total);
}

Status CpuExecutor::run(ProgramKind kind, const StepParams &params,
                        size_t begin, size_t end) {
  const std::vector<Kernel> &kernels =
      kind == ProgramKind::Microbatch ? microbatchBySlot[size_t(currentSlot)]
                                      : optimizer;
  const DecodedProgram &program = kind == ProgramKind::Microbatch
                                      ? decoded.microbatch
                                      : decoded.optimizer;
  Tracer *tracer = rank.tracer && rank.tracer->tracesStep(params.step)
                       ? rank.tracer
                       : nullptr;
  bool overlapping = commThread != nullptr;
  bool handsOver =
      overlapping && kind == ProgramKind::Microbatch && params.lastMicrobatch;
  for (size_t k = begin; k < std::min(end, kernels.size()); ++k) {
    auto start = std::chrono::steady_clock::now();
    int64_t traceBegin = tracer ? tracer->nowUs() : 0;
    if (overlapping && kind == ProgramKind::Optimizer) {
      if (int64_t bucket = bucketAt[k]; bucket >= 0) {
        // The bucket's reduction, on the communication thread (handed over
        // now when the backward did not): wait for it.
        if (!commThread->submitted(size_t(bucket)))
          submitBucket(size_t(bucket), params);
        if (Status s = commThread->wait(size_t(bucket)); !s.ok())
          return s;
        if (tracer)
          tracer->complete(rank.traceTrack, "wait for all_reduce", "collective",
                           traceBegin, tracer->nowUs() - traceBegin,
                           TraceArgs()
                               .add("what", program.instructions[k].label)
                               .add("instruction", k)
                               .add("step", params.step));
        continue;
      }
      commThread->drain(); // no dp collective or gradient read races it
    }
    if (Status s = kernels[k](params, outputs); !s.ok())
      return s;
    if (tracer)
      instructionSlice(*tracer, rank.traceTrack, plan, program, k, params,
                       traceBegin);
    if (handsOver)
      for (size_t bucket : readyAfter[k])
        if (!commThread->submitted(bucket))
          submitBucket(bucket, params);
    if (profiling) // totals per op, so memory stays bounded
      profile[program.instructions[k].op == Op::Kernel
                  ? "kernel " + std::get<KernelInstr>(
                                    program.instructions[k].record)
                                    .name
                  : std::string(opName(program.instructions[k].op))] +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        start)
              .count();
  }
  return Status::success();
}

Status CpuExecutor::checkTransfer(int32_t buffer, size_t bytes,
                                  const char *what) const {
  return runtime::checkTransfer(plan, buffer, bytes, what);
}

Status CpuExecutor::upload(int32_t buffer, const void *data, size_t bytes) {
  if (Status s = checkTransfer(buffer, bytes, "upload"); !s.ok())
    return s;
  settle(buffer);
  std::memcpy(storage(buffer), data, bytes);
  return Status::success();
}

Status CpuExecutor::download(int32_t buffer, void *data, size_t bytes) {
  if (Status s = checkTransfer(buffer, bytes, "download"); !s.ok())
    return s;
  settle(buffer);
  std::memcpy(data, storage(buffer), bytes);
  return Status::success();
}

Status CpuExecutor::zero(int32_t buffer) {
  if (buffer < 0 || size_t(buffer) >= plan.buffers.size())
    return Status::error("cannot clear buffer " + std::to_string(buffer));
  settle(buffer);
  std::memset(storage(buffer), 0, bytes(buffer));
  return Status::success();
}

Status CpuExecutor::transfer(bool send, int32_t buffer, int axis,
                             int64_t peer, int64_t tag,
                             const std::string &what) {
  size_t n = bytes(buffer);
  if (n % 4)
    return Status::error("an activation of " + std::to_string(n) +
                         " bytes does not travel as 4-byte words");
  settle(buffer);
  if (!rank.comm)
    return Status::error(std::string("no communicator to ") +
                         (send ? "send " : "receive ") + what);
  return send ? rank.comm->send(axis, peer, storage(buffer), n / 4,
                                CommDType::F32, tag, what)
              : rank.comm->recv(axis, peer, storage(buffer), n / 4,
                                CommDType::F32, tag, what);
}

Status CpuExecutor::accumulateLoss(int32_t loss) {
  if (loss < 0 || size_t(loss) >= plan.buffers.size())
    return Status::error("the plan has no loss buffer " +
                         std::to_string(loss));
  const plan::BufferT &b = *plan.buffers[size_t(loss)];
  const void *p = storage(loss);
  float value;
  if (b.dtype == plan::DType::F32)
    std::memcpy(&value, p, 4);
  else if (isFloat16(b.dtype))
    value = b.dtype == plan::DType::BF16
                ? bf16ToFloat(*static_cast<const uint16_t *>(p))
                : f16ToFloat(*static_cast<const uint16_t *>(p));
  else
    return Status::error("the loss buffer '" + b.name + "' is not a float");
  outputs.lossSum += value;
  return Status::success();
}

} // namespace

Result<std::unique_ptr<Executor>> createCpuExecutor(const plan::PlanT &plan,
                                                    RankContext rank) {
  return CpuExecutor::create(plan, std::move(rank));
}

} // namespace cpu
} // namespace runtime
} // namespace loom
