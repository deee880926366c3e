//===- CudaExecutor.cpp - the CUDA backend: runs a plan on a device --------===//
//
// The Executor (loom/runtime/Executor.h) of the `cuda` backend (a GPU,
// CudaDevice.cpp) and of `cuda-emulated` (the same executor on the host
// emulation of a device, emulation/EmulatedDevice.cpp). It owns what lives
// on the device for one rank: an allocation per arena of the memory plan
// (buffers at their planned offsets), the 16-bit shadows' scratch, the step
// values (DeviceStepValues) and the status flags; it binds every decoded
// instruction to work once (Bind*.cpp), and runs programs by enqueueing
// that work, its step-dependent arguments in device step slots. The
// microbatch program is captured as a CUDA graph once and
// replayed when it has no host exchange (collectives staged through the
// host, a norm all-reduced over an axis; collectives through NCCL are not
// captured either, for now: docs/distributed.md, "NCCL"). The host waits for the device
// only in download() and readStepOutputs(), and where a collective stages
// through the host.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/cuda/CudaBackend.h"
#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/Trace.h"
#include "loom/runtime/cpu/PlanKernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <utility>

namespace loom {
namespace runtime {
namespace cuda {

namespace {

constexpr size_t kShadowAlign = 256;

/// Whether an instruction's work exchanges data with the host (a
/// collective through the host communicator): a graph cannot hold it.
bool exchangesWithHost(const Instruction &inst, int64_t axisSize) {
  if (axisSize <= 1)
    return false;
  switch (inst.op) {
  case Op::AllReduce:
  case Op::AllGather:
  case Op::ReduceScatter:
    return true;
  default:
    break;
  }
  if (const auto *g = std::get_if<GradNormInstr>(&inst.record))
    return g->axis >= 0;
  if (const auto *k = std::get_if<KernelInstr>(&inst.record))
    for (const Instruction &ref : k->reference)
      if (exchangesWithHost(ref, axisSize))
        return true;
  return false;
}

class CudaExecutor final : public Executor, private Binder {
public:
  static Result<std::unique_ptr<Executor>>
  create(const char *backendName, std::unique_ptr<Device> device,
         const plan::PlanT &plan, RankContext rank);
  ~CudaExecutor() override;

  const char *backend() const override { return name; }
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
    MemoryUse use;
    for (size_t a = 0; a < plan.arena_bytes.size(); ++a)
      use.arenas += plan.arena_bytes[a] *
                    (a == size_t(plan::Arena::Stash) ? stashSlots() : 1);
    use.runtime = int64_t(shadowScratchBytes) +
                  int64_t(maxFlags * sizeof(int)) +
                  int64_t(sizeof(DeviceStepValues)) + scratchBytesTotal;
    for (const SlotBlock &b : slots)
      use.runtime += int64_t(b.host.size());
    return use;
  }
  void beginStep() override;
  Status accumulateLoss(int32_t loss) override;
  Result<StepOutputs> readStepOutputs() override;
  void setGradNorm(double norm) override;

private:
  CudaExecutor(const char *name, std::unique_ptr<Device> device,
               const plan::PlanT &plan, RankContext rank)
      : name(name), dev(std::move(device)), plan(plan),
        rank(std::move(rank)) {}
  Status allocateAll();
  /// Uploads the norm setGradNorm was given (before the next work).
  Status flushNorm();
  Status loadKernels();
  Status prepare(const DecodedProgram &program, std::vector<Work> &into,
                 bool &graphable);
  /// Allocates a program's step slots: 2 + (params) per instruction.
  Status allocateSlots(const DecodedProgram &program, int which);
  /// Fills and uploads a program's step slots for a run.
  Status uploadSlots(int which, const StepParams &params);
  Work withShadows(Work work, const Instruction &inst);
  Status checkTransfer(int32_t buffer, size_t bytes, const char *what) const;
  Status transfer(bool send, int32_t buffer, int axis, int64_t peer,
                  int64_t tag, const std::string &what);
  Status runRange(const std::vector<Work> &works, const DecodedProgram &program,
                  const StepParams &params, size_t begin, size_t end);

  // Binder.
  Device &device() override { return *dev; }
  float *f32(BufferId id) override;
  void *storage(BufferId id) override {
    const plan::BufferT &b = *plan.buffers[size_t(id)];
    int64_t slot = b.arena == plan::Arena::Stash
                       ? currentSlot * plan.arena_bytes[size_t(b.arena)]
                       : 0;
    return static_cast<uint8_t *>(arenas[size_t(b.arena)]) + slot + b.offset;
  }
  /// Copies of the Stash arena: one per microbatch in flight (at least one).
  int64_t stashSlots() const { return stashSlotsOf(plan); }
  /// Bindings of the microbatch program: one per stash slot when the plan
  /// has a stash, else one.
  int64_t microbatchVariants() const {
    return plan.arena_bytes[size_t(plan::Arena::Stash)] > 0 ? stashSlots() : 1;
  }
  size_t bytes(BufferId id) override {
    return size_t(plan.buffers[size_t(id)]->bytes);
  }
  plan::DType dtype(BufferId id) override {
    return plan.buffers[size_t(id)]->dtype;
  }
  Result<void *> scratch(size_t bytes, const std::string &what) override {
    // Another stash slot's binding of the microbatch program: the same
    // instruction's scratch as slot 0's.
    if (preparing == 0 && currentSlot > 0 &&
        scratchCursor < slotZeroScratch.size() &&
        slotZeroScratch[scratchCursor].second >= bytes)
      return slotZeroScratch[scratchCursor++].first;
    Result<void *> p = dev->allocate(std::max<size_t>(bytes, 1), what);
    if (p.ok()) {
      scratches.push_back(*p);
      scratchBytesTotal += int64_t(std::max<size_t>(bytes, 1));
      if (preparing == 0 && currentSlot == 0)
        slotZeroScratch.push_back({*p, bytes});
    }
    return p;
  }
  DeviceStepValues *stepValues() override { return values; }
  int *statusFlag(const Instruction &inst,
                  std::function<std::string(int)> describe) override;
  Result<Work> bindReferenceInstruction(const Instruction &ref) override {
    std::vector<BufferId> outer = std::move(shadowsAsked);
    shadowsAsked.clear();
    Result<Work> w = bindInstruction(ref, *this);
    if (w.ok())
      w = withShadows(std::move(*w), ref);
    shadowsAsked = std::move(outer);
    return w;
  }
  Communicator *comm() override { return rank.comm; }
  int64_t axisSize(int axis) override {
    return axis >= 0 && axis < int(plan.mesh.size())
               ? plan.mesh[size_t(axis)]->size
               : 1;
  }
  bool planKernelsLoaded() override { return kernelsLoaded; }
  Result<StepSlots> stepSlots(size_t ints, size_t reals,
                              SlotFiller fill) override;
  const std::vector<std::unique_ptr<plan::KernelT>> &planKernels() override {
    return plan.kernels;
  }

  const char *name;
  std::unique_ptr<Device> dev;
  const plan::PlanT &plan;
  RankContext rank;
  DecodedPlan decoded;
  std::vector<void *> arenas, scratches;
  void *shadowScratch = nullptr;
  size_t shadowScratchBytes = 0;
  std::map<BufferId, size_t> shadowOffsets;
  std::vector<BufferId> shadowsAsked;
  DeviceStepValues *values = nullptr;
  /// Status flags: one device int each, with what a code means.
  int *flags = nullptr;
  /// One per instruction (reference forms' included): the most flags the
  /// binders can ask for, each instruction asking at most one.
  size_t maxFlags = 0;
  struct Flag {
    const Instruction *inst;
    std::function<std::string(int)> describe;
  };
  std::vector<Flag> flagInfo;
  bool kernelsLoaded = false;
  /// Each program's step slots (Bind.h, StepSlots): device arrays, their
  /// host copies, and who fills which.
  struct SlotBlock {
    int64_t *ints = nullptr; // device: `capacity` ints, then the reals
    double *reals = nullptr;
    size_t capacity = 0;
    std::vector<unsigned char> host; // the same block on the host
    size_t usedInts = 0, usedReals = 0;
    struct Entry {
      size_t ints, reals;
      SlotFiller fill;
    };
    std::vector<Entry> fillers;
  };
  SlotBlock slots[2]; // microbatch, optimizer
  int preparing = 0;
  /// The microbatch program bound once per stash slot, and the slot runs
  /// and transfers use.
  std::vector<std::vector<Work>> microbatchBySlot;
  std::vector<Work> optimizer;
  int64_t currentSlot = 0;
  bool microbatchGraphable = false;
  /// A CUDA graph per (slot, first instruction, end) the microbatch program
  /// runs as, and how often that range ran.
  using GraphKey = std::tuple<int64_t, size_t, size_t>;
  struct RangeGraph {
    int64_t runs = 0;
    int graph = -1;
  };
  std::map<GraphKey, RangeGraph> microbatchGraphs;
  /// Slot 0's device scratch per bind call, in order: the other slots'
  /// bindings of the same instructions share it (one slot runs at a time).
  std::vector<std::pair<void *, size_t>> slotZeroScratch;
  size_t scratchCursor = 0;
  int64_t scratchBytesTotal = 0;
  int64_t microbatchRuns = 0, graphCaptures = 0, graphReplays = 0;
  /// The host's copy of the norm set by setGradNorm, uploaded with the
  /// next run.
  bool pendingNorm = false;
  DeviceStepValues hostValues{};
  /// An error of beginStep (which returns nothing), reported by the next run.
  Status deferred = Status::success();
};

Result<std::unique_ptr<Executor>>
CudaExecutor::create(const char *backendName, std::unique_ptr<Device> device,
                     const plan::PlanT &plan, RankContext rank) {
  Result<DecodedPlan> decoded = decodePlan(plan, rank.coords);
  if (!decoded.ok())
    return Status::error(decoded.message());
  std::unique_ptr<CudaExecutor> ex(
      new CudaExecutor(backendName, std::move(device), plan, std::move(rank)));
  ex->decoded = std::move(*decoded);
  ex->rank.coords = ex->decoded.coords;
  if (Status s = ex->allocateAll(); !s.ok())
    return s;
  if (!plan.kernels.empty()) {
    if (!ex->rank.generatedKernels)
      cpu::noteReferenceKernels(plan, "generated kernels are off (--no-jit)");
    else if (Status s = ex->loadKernels(); !s.ok())
      cpu::noteReferenceKernels(plan, s.message());
  }
  if (Status s = ex->allocateSlots(ex->decoded.microbatch, 0); !s.ok())
    return s;
  if (Status s = ex->allocateSlots(ex->decoded.optimizer, 1); !s.ok())
    return s;
  ex->preparing = 0;
  ex->microbatchBySlot.resize(size_t(ex->microbatchVariants()));
  for (size_t slot = 0; slot < ex->microbatchBySlot.size(); ++slot) {
    ex->currentSlot = int64_t(slot);
    ex->scratchCursor = 0;
    if (Status s =
            ex->prepare(ex->decoded.microbatch, ex->microbatchBySlot[slot],
                        ex->microbatchGraphable);
        !s.ok())
      return s;
  }
  ex->currentSlot = 0;
  ex->preparing = 1;
  bool unused; // the optimizer program is never captured
  if (Status s = ex->prepare(ex->decoded.optimizer, ex->optimizer, unused);
      !s.ok())
    return s;
  if (!ex->rank.cudaGraphs || !ex->dev->supportsGraphs())
    ex->microbatchGraphable = false;
  return std::unique_ptr<Executor>(std::move(ex));
}

Status CudaExecutor::allocateAll() {
  // What the rank needs on the device in all, for an out-of-memory message
  // that says it (the device's own says what was asked and what is free).
  shadowScratchBytes = runtime::shadowScratchBytes(plan, decoded, kShadowAlign);
  int64_t total = int64_t(shadowScratchBytes);
  std::vector<int64_t> arenaBytes;
  for (size_t a = 0; a < plan.arena_bytes.size(); ++a) {
    int64_t bytes = plan.arena_bytes[a];
    if (bytes < 0 || bytes > kMaxArenaBytes)
      return Status::error("the plan's arena of " + std::to_string(bytes) +
                           " bytes is not in [0, " +
                           std::to_string(kMaxArenaBytes) + "]");
    if (a == size_t(plan::Arena::Stash)) // validated: slots x bytes fits
      bytes *= stashSlots();
    arenaBytes.push_back(bytes);
    total += bytes;
  }
  auto needs = [&](const std::string &why) {
    return Status::error(why + " (this rank's plan needs " +
                         std::to_string(total) + " bytes of device memory: " +
                         std::to_string(plan.arena_bytes.size()) +
                         " arenas and " + std::to_string(shadowScratchBytes) +
                         " bytes of 16-bit shadows)");
  };
  for (size_t a = 0; a < arenaBytes.size(); ++a) {
    int64_t bytes = arenaBytes[a];
    Result<void *> p =
        dev->allocate(size_t(bytes), "arena " + std::to_string(a));
    if (!p.ok())
      return needs(p.message());
    arenas.push_back(*p);
    // The CPU backend's arenas start at zero; so do these.
    if (Status s = dev->clear(*p, size_t(bytes)); !s.ok())
      return s;
  }
  if (shadowScratchBytes) {
    Result<void *> p =
        dev->allocate(shadowScratchBytes, "the 16-bit operands' f32 shadows");
    if (!p.ok())
      return needs(p.message());
    shadowScratch = *p;
  }
  Result<void *> v = dev->allocate(sizeof(DeviceStepValues), "step values");
  if (!v.ok())
    return Status::error(v.message());
  values = static_cast<DeviceStepValues *>(*v);
  std::function<size_t(const std::vector<Instruction> &)> count =
      [&](const std::vector<Instruction> &insts) {
        size_t n = insts.size();
        for (const Instruction &inst : insts)
          if (const auto *k = std::get_if<KernelInstr>(&inst.record))
            n += count(k->reference);
        return n;
      };
  maxFlags =
      1 +
      size_t(microbatchVariants()) * count(decoded.microbatch.instructions) +
      count(decoded.optimizer.instructions);
  Result<void *> f = dev->allocate(maxFlags * sizeof(int), "status flags");
  if (!f.ok())
    return Status::error(f.message());
  flags = static_cast<int *>(*f);
  if (Status s = dev->clear(values, sizeof(DeviceStepValues)); !s.ok())
    return s;
  return dev->clear(flags, maxFlags * sizeof(int));
}

Status CudaExecutor::loadKernels() {
  std::string source = plan.kernel_cuda_prelude;
  std::vector<std::string> entries;
  for (const auto &k : plan.kernels) {
    source += "\n" + k->cuda_source;
    entries.push_back(k->name);
  }
  if (Status s =
          dev->loadPlanKernels(source, entries, rank.tracer, rank.traceTrack);
      !s.ok())
    return s;
  kernelsLoaded = true;
  return Status::success();
}

CudaExecutor::~CudaExecutor() {
  if (!dev)
    return;
  // One line, from the first rank: how the microbatch program ran.
  bool first = std::all_of(rank.coords.begin(), rank.coords.end(),
                           [](int64_t c) { return c == 0; });
  if (first && graphCaptures)
    std::fprintf(stderr,
                 "loom: the microbatch program ran as a CUDA graph: captured "
                 "%lld time(s), replayed %lld times (%lld runs in all)\n",
                 (long long)graphCaptures, (long long)graphReplays,
                 (long long)microbatchRuns);
  (void)dev->synchronize(); // nothing to report to in a destructor
  for (void *p : arenas)
    dev->release(p);
  for (void *p : scratches)
    dev->release(p);
  if (shadowScratch)
    dev->release(shadowScratch);
  if (values)
    dev->release(values);
  if (flags)
    dev->release(flags);
  for (SlotBlock &b : slots)
    if (b.ints)
      dev->release(b.ints);
}

float *CudaExecutor::f32(BufferId id) {
  if (!isFloat16(plan.buffers[size_t(id)]->dtype))
    return static_cast<float *>(storage(id));
  auto it = shadowOffsets.find(id);
  if (it == shadowOffsets.end()) {
    size_t offset = 0;
    for (auto [other, at] : shadowOffsets)
      offset = std::max(offset, at + shadowBytes(*plan.buffers[size_t(other)], kShadowAlign));
    it = shadowOffsets.emplace(id, offset).first;
  }
  if (std::find(shadowsAsked.begin(), shadowsAsked.end(), id) ==
      shadowsAsked.end())
    shadowsAsked.push_back(id);
  return reinterpret_cast<float *>(static_cast<uint8_t *>(shadowScratch) +
                                   it->second);
}

int *CudaExecutor::statusFlag(const Instruction &inst,
                              std::function<std::string(int)> describe) {
  if (flagInfo.size() >= maxFlags) // an instruction asking twice
    return nullptr;
  flagInfo.push_back({&inst, std::move(describe)});
  return flags + (flagInfo.size() - 1);
}

Status CudaExecutor::allocateSlots(const DecodedProgram &program, int which) {
  std::function<size_t(const std::vector<Instruction> &)> count =
      [&](const std::vector<Instruction> &insts) {
        size_t n = 0;
        for (const Instruction &inst : insts) {
          n += 3; // the most one binder asks (dropout: offset, key, training)
          if (const auto *k = std::get_if<KernelInstr>(&inst.record))
            n += k->params.size() + count(k->reference);
        }
        return n;
      };
  // The microbatch program is bound once per stash slot.
  size_t n = count(program.instructions) *
             (which == 0 ? size_t(microbatchVariants()) : 1);
  SlotBlock &b = slots[which];
  if (n == 0)
    return Status::success();
  // One allocation, n ints then n reals (both 8 bytes), uploaded in one copy.
  static_assert(sizeof(int64_t) == sizeof(double), "one slot size");
  Result<void *> block = dev->allocate(2 * n * sizeof(int64_t), "step slots");
  if (!block.ok())
    return Status::error(block.message());
  b.ints = static_cast<int64_t *>(*block);
  b.reals = reinterpret_cast<double *>(b.ints + n);
  b.host.assign(2 * n * sizeof(int64_t), 0);
  b.capacity = n;
  return Status::success();
}

Result<StepSlots> CudaExecutor::stepSlots(size_t ints, size_t reals,
                                          SlotFiller fill) {
  SlotBlock &b = slots[preparing];
  if (b.usedInts + ints > b.capacity || b.usedReals + reals > b.capacity)
    return Status::error("an instruction asks for more step slots than "
                         "the executor holds for it");
  StepSlots out{b.ints + b.usedInts, b.reals + b.usedReals};
  b.fillers.push_back({b.usedInts, b.usedReals, std::move(fill)});
  b.usedInts += ints;
  b.usedReals += reals;
  return out;
}

Status CudaExecutor::uploadSlots(int which, const StepParams &params) {
  SlotBlock &b = slots[which];
  if (b.fillers.empty())
    return Status::success();
  auto *ints = reinterpret_cast<int64_t *>(b.host.data());
  auto *reals = reinterpret_cast<double *>(ints + b.capacity);
  for (const SlotBlock::Entry &e : b.fillers)
    e.fill(params, ints + e.ints, reals + e.reals);
  return dev->upload(b.ints, b.host.data(), b.host.size());
}

Status CudaExecutor::prepare(const DecodedProgram &program,
                             std::vector<Work> &into, bool &graphable) {
  graphable = true;
  for (const Instruction &inst : program.instructions) {
    shadowOffsets.clear();
    shadowsAsked.clear();
    Result<Work> work = bindInstruction(inst, *this);
    if (!work.ok())
      return Status::error("the plan's " + inst.where + ": " + work.message());
    int64_t axis = 1;
    for (const auto &m : plan.mesh)
      axis = std::max<int64_t>(axis, m->size);
    if (rank.comm && exchangesWithHost(inst, axis))
      graphable = false;
    into.push_back(withShadows(std::move(*work), inst));
  }
  return Status::success();
}

Work CudaExecutor::withShadows(Work work, const Instruction &inst) {
  // As the CPU backend: widen what the work reads before it (its inputs,
  // and an output it adds into), round its outputs after.
  bool accumulates = accumulatesIntoOutput(inst);
  auto has = [](const std::vector<BufferId> &ids, BufferId id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  std::vector<Launch> widen, round;
  for (BufferId id : shadowsAsked) {
    const plan::BufferT &b = *plan.buffers[size_t(id)];
    int64_t n = numElements(b.shape);
    int bf16 = b.dtype == plan::DType::BF16 ? 1 : 0;
    float *shadow = reinterpret_cast<float *>(
        static_cast<uint8_t *>(shadowScratch) + shadowOffsets[id]);
    bool output = has(inst.outputs, id);
    if (has(inst.inputs, id) || (output && accumulates))
      widen.push_back(launchOf("loom_cast_widen", gridFor(n), kBlockThreads,
                               {storage(id), shadow, KernelArg::i64v(n),
                                KernelArg::i32v(bf16)}));
    if (output)
      round.push_back(launchOf("loom_cast_round", gridFor(n), kBlockThreads,
                               {shadow, storage(id), KernelArg::i64v(n),
                                KernelArg::i32v(bf16)}));
  }
  if (widen.empty() && round.empty())
    return work;
  Device *d = dev.get();
  return [work = std::move(work), widen, round, d,
          &inst](const StepParams &params) -> Status {
    for (const Launch &l : widen)
      if (Status s = enqueue(*d, inst, l); !s.ok())
        return s;
    if (Status s = work(params); !s.ok())
      return s;
    for (const Launch &l : round)
      if (Status s = enqueue(*d, inst, l); !s.ok())
        return s;
    return Status::success();
  };
}

Status CudaExecutor::runRange(const std::vector<Work> &works,
                              const DecodedProgram &program,
                              const StepParams &params, size_t begin,
                              size_t end) {
  Tracer *tracer = rank.tracer && rank.tracer->tracesStep(params.step)
                       ? rank.tracer
                       : nullptr;
  for (size_t k = begin; k < std::min(end, works.size()); ++k) {
    int64_t traceBegin = tracer ? tracer->nowUs() : 0;
    if (Status s = works[k](params); !s.ok())
      return s;
    if (tracer) // the enqueue on a GPU; the work itself under emulation
      instructionSlice(*tracer, rank.traceTrack, plan, program, k, params,
                       traceBegin);
  }
  return Status::success();
}

Status CudaExecutor::run(ProgramKind kind, const StepParams &params,
                         size_t begin, size_t end) {
  const std::vector<Work> &works = kind == ProgramKind::Microbatch
                                       ? microbatchBySlot[size_t(currentSlot)]
                                       : optimizer;
  const DecodedProgram &program = kind == ProgramKind::Microbatch
                                      ? decoded.microbatch
                                      : decoded.optimizer;
  if (!deferred.ok())
    return std::exchange(deferred, Status::success());
  if (Status s = flushNorm(); !s.ok())
    return s;
  // Before any of the run's work, and outside a capture: the run's step
  // values into the slots its kernels read.
  if (Status s = uploadSlots(kind == ProgramKind::Microbatch ? 0 : 1, params);
      !s.ok())
    return s;
  bool traced = rank.tracer && rank.tracer->tracesStep(params.step);
  // A graph per (stash slot, range): a pipeline chunk runs its forward
  // and its backward steps as two ranges, each slot's with its own
  // addresses. The first run of each is eager: every kernel's first launch
  // (loading it, cuBLASLt's first plan for a shape) happens outside a
  // capture.
  GraphKey key{currentSlot, begin, std::min(end, works.size())};
  RangeGraph &range = microbatchGraphs[key];
  bool capture = kind == ProgramKind::Microbatch && microbatchGraphable &&
                 !traced && range.runs > 0;
  if (kind == ProgramKind::Microbatch) {
    ++microbatchRuns;
    ++range.runs;
  }
  int &graph = range.graph;
  if (capture && graph >= 0) {
    ++graphReplays;
    return dev->replay(graph);
  }
  if (capture) {
    // Captured once, on the second run (the first is eager: every kernel's
    // first launch outside a capture), then replayed: everything that
    // differs between runs is in the step slots.
    Status s = dev->beginCapture();
    Status captured = s.ok() ? runRange(works, program, params, begin, end) : s;
    Status ended = s.ok() ? dev->endCapture(&graph) : s;
    if (captured.ok() && ended.ok()) {
      ++graphCaptures;
      ++graphReplays;
      return dev->replay(graph);
    }
    graph = -1;
    // Nothing captured ran: run it eagerly, and from now on (an error of
    // the work itself comes back from the eager run).
    std::fprintf(stderr,
                 "loom: CUDA graph capture failed (%s); running the "
                 "microbatch program without graphs\n",
                 (!captured.ok() ? captured : ended).message().c_str());
    microbatchGraphable = false;
  }
  return runRange(works, program, params, begin, end);
}

Status CudaExecutor::checkTransfer(int32_t buffer, size_t n,
                                   const char *what) const {
  return runtime::checkTransfer(plan, buffer, n, what);
}

Status CudaExecutor::upload(int32_t buffer, const void *data, size_t n) {
  if (Status s = checkTransfer(buffer, n, "upload"); !s.ok())
    return s;
  return dev->upload(storage(buffer), data, n);
}

Status CudaExecutor::download(int32_t buffer, void *data, size_t n) {
  if (Status s = checkTransfer(buffer, n, "download"); !s.ok())
    return s;
  return dev->download(data, storage(buffer), n);
}

Status CudaExecutor::zero(int32_t buffer) {
  if (buffer < 0 || size_t(buffer) >= plan.buffers.size())
    return Status::error("cannot clear buffer " + std::to_string(buffer));
  return dev->clear(storage(buffer), bytes(buffer));
}

Status CudaExecutor::transfer(bool send, int32_t buffer, int axis,
                              int64_t peer, int64_t tag,
                              const std::string &what) {
  size_t n = bytes(buffer);
  if (n % 4)
    return Status::error("an activation of " + std::to_string(n) +
                         " bytes does not travel as 4-byte words");
  if (!rank.comm)
    return Status::error(std::string("no communicator to ") +
                         (send ? "send " : "receive ") + what);
  if (DeviceCollectives *dc = rank.comm->deviceCollectives()) {
    // On the comm stream, after the compute stream's work (the buffer's
    // producer, or its last reader for a receive), before its next: a
    // send's data is copied there, so the compute stream may overwrite it
    // as soon as the copy is done (DeviceCollectives.h).
    void *buf = storage(buffer);
    if (Status s = dev->order(Stream::Compute, Stream::Comm); !s.ok())
      return s;
    void *stream = dev->nativeStream(Stream::Comm);
    Status s = send ? dc->send(axis, peer, buf, n / 4, CommDType::F32, tag,
                               stream, what)
                    : dc->recv(axis, peer, buf, n / 4, CommDType::F32, tag,
                               stream, what);
    if (!s.ok())
      return s;
    return dev->order(Stream::Comm, Stream::Compute);
  }
  // Through the host: the local and mpi communicators move host memory.
  std::vector<uint32_t> staging(n / 4);
  if (send) {
    if (Status s = dev->download(staging.data(), storage(buffer), n); !s.ok())
      return s;
    return rank.comm->send(axis, peer, staging.data(), n / 4, CommDType::F32,
                           tag, what);
  }
  if (Status s = rank.comm->recv(axis, peer, staging.data(), n / 4,
                                 CommDType::F32, tag, what);
      !s.ok())
    return s;
  return dev->upload(storage(buffer), staging.data(), n);
}

void CudaExecutor::beginStep() {
  hostValues = DeviceStepValues{};
  pendingNorm = false;
  deferred = dev->clear(values, sizeof(DeviceStepValues));
}

Status CudaExecutor::accumulateLoss(int32_t loss) {
  if (loss < 0 || size_t(loss) >= plan.buffers.size())
    return Status::error("the plan has no loss buffer " +
                         std::to_string(loss));
  const plan::BufferT &b = *plan.buffers[size_t(loss)];
  if (b.dtype == plan::DType::F32)
    return dev->launch(launchOf("loom_step_add_loss", Dim3{1, 1, 1}, 32,
                                {storage(loss), values}));
  if (isFloat16(b.dtype))
    return dev->launch(launchOf(
        "loom_step_add_loss16", Dim3{1, 1, 1}, 32,
        {storage(loss), values,
         KernelArg::i32v(b.dtype == plan::DType::BF16 ? 1 : 0)}));
  return Status::error("the loss buffer '" + b.name + "' is not a float");
}

Status CudaExecutor::flushNorm() {
  if (!pendingNorm)
    return Status::success();
  pendingNorm = false;
  if (Status s = dev->upload(&values->gradNorm, &hostValues.gradNorm,
                             sizeof(double));
      !s.ok())
    return s;
  return dev->upload(&values->nonFinite, &hostValues.nonFinite, sizeof(int));
}

Result<StepOutputs> CudaExecutor::readStepOutputs() {
  if (Status s = flushNorm(); !s.ok())
    return s;
  if (Status s = dev->synchronize(); !s.ok())
    return s;
  DeviceStepValues v;
  if (Status s = dev->download(&v, values, sizeof(v)); !s.ok())
    return s;
  if (!flagInfo.empty()) {
    std::vector<int> codes(flagInfo.size());
    if (Status s =
            dev->download(codes.data(), flags, codes.size() * sizeof(int));
        !s.ok())
      return s;
    for (size_t i = 0; i < codes.size(); ++i)
      if (codes[i]) {
        (void)dev->clear(flags, codes.size() * sizeof(int)); // for the next step
        return Status::error(flagInfo[i].inst->where + ": " +
                             flagInfo[i].describe(codes[i]));
      }
  }
  StepOutputs out;
  out.lossSum = v.lossSum;
  out.gradSquares = v.gradSquares;
  out.gradNorm = v.gradNorm;
  out.nonFinite = v.nonFinite != 0;
  return out;
}

void CudaExecutor::setGradNorm(double norm) {
  hostValues.gradNorm = norm;
  hostValues.nonFinite = std::isfinite(norm) ? 0 : 1;
  pendingNorm = true;
}

} // namespace

Result<Work> bindInstruction(const Instruction &inst, Binder &b) {
  return std::visit([&](const auto &record) { return bind(record, inst, b); },
                    inst.record);
}

Result<std::unique_ptr<Executor>> createCudaExecutor(const plan::PlanT &plan,
                                                     RankContext rank) {
  Result<std::unique_ptr<Device>> device = openCudaDevice(rank.device);
  if (!device.ok())
    return Status::error("the cuda backend: " + device.message());
  return CudaExecutor::create("cuda", std::move(*device), plan,
                              std::move(rank));
}

std::string cudaUnavailableReason() {
  Result<std::unique_ptr<Device>> device = openCudaDevice(0);
  return device.ok() ? "" : device.message();
}

Result<std::unique_ptr<Executor>>
createEmulatedCudaExecutor(const plan::PlanT &plan, RankContext rank) {
  return CudaExecutor::create("cuda-emulated", openEmulatedDevice(), plan,
                              std::move(rank));
}

} // namespace cuda
} // namespace runtime
} // namespace loom
