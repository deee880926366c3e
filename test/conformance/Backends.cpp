//===- Backends.cpp - the backends the conformance suite runs -------------===//

#include "Backends.h"

#include "DeviceCollectivesOverLocal.h"
#include "loom/runtime/cuda/CudaBackend.h"

#include <algorithm>
#include <cctype>

namespace loom {
namespace conformance {

namespace rt = loom::runtime;

const char *familyName(Family family) {
  switch (family) {
  case Family::Gemm:
    return "gemm";
  case Family::Elementwise:
    return "elementwise";
  case Family::Activation:
    return "activation";
  case Family::Cast:
    return "cast";
  case Family::Dropout:
    return "dropout";
  case Family::Softmax:
    return "softmax";
  case Family::Norm:
    return "norm";
  case Family::Embedding:
    return "embedding";
  case Family::CrossEntropy:
    return "cross-entropy";
  case Family::Reduction:
    return "reduction";
  case Family::DataMovement:
    return "data movement";
  case Family::Collective:
    return "collective";
  case Family::Optimizer:
    return "optimizer";
  case Family::WholeStep:
    return "whole step";
  }
  return "?";
}

Tolerance BackendEntry::tolerance(Family family) const {
  auto it = tolerances.find(family);
  // No entry: a tolerance of -1 fails every comparison, naming the family.
  return it != tolerances.end() ? it->second : Tolerance{-1, -1};
}

namespace {
std::optional<rt::Op> firstIn(const plan::PlanT &plan,
                              const std::set<rt::Op> &ops) {
  for (const auto *program : {plan.microbatch.get(), plan.optimizer.get()})
    if (program)
      for (const auto &inst : program->instructions)
        if (std::optional<rt::Op> op = rt::lookupOp(inst->op);
            op && ops.count(*op))
          return op;
  for (const auto &chunk : plan.chunks)
    if (std::optional<rt::Op> op = firstIn(*chunk, ops))
      return op;
  return std::nullopt;
}

BackendEntry cpuEntry() {
  BackendEntry e;
  e.name = "cpu";
  e.create = [](const plan::PlanT &plan, rt::RankContext rank) {
    return rt::createExecutor("cpu", plan, std::move(rank));
  };
  // The CPU backend computes in f32 with f32 accumulators in its loops
  // (double in its reductions); inputs are in [-1, 1] or so, rows short.
  e.tolerances = {
      {Family::Gemm, {1e-5, 1e-5}},         {Family::Elementwise, {1e-6, 1e-7}},
      {Family::Activation, {1e-5, 1e-6}},   {Family::Cast, {0, 0}},
      {Family::Dropout, {1e-6, 1e-7}},      {Family::Softmax, {1e-5, 1e-6}},
      {Family::Norm, {1e-4, 1e-5}},         {Family::Embedding, {1e-6, 1e-6}},
      {Family::CrossEntropy, {1e-5, 1e-5}}, {Family::Reduction, {1e-5, 1e-6}},
      {Family::DataMovement, {0, 0}},       {Family::Collective, {1e-6, 1e-6}},
      {Family::Optimizer, {1e-5, 1e-7}},    {Family::WholeStep, {2e-5, 0}},
  };
  return e;
}
} // namespace

std::optional<rt::Op>
BackendEntry::firstUnsupported(const plan::PlanT &plan) const {
  return firstIn(plan, unsupported);
}

/// The CUDA backend's executor on a GPU (`cuda`) or on the host emulation
/// of one (`cuda-emulated`): the hand-written and generated kernels reduce
/// in other orders than the CPU's loops (trees of warp shuffles), so sums
/// differ in the last bits; GEMMs are cuBLASLt's with TF32 off (on the
/// emulated device, the CPU's).
BackendEntry cudaEntry(const std::string &name) {
  BackendEntry e;
  e.name = name;
  e.create = [name](const plan::PlanT &plan, rt::RankContext rank) {
    return rt::createExecutor(name, plan, std::move(rank));
  };
  e.tolerances = {
      {Family::Gemm, {1e-5, 1e-5}},         {Family::Elementwise, {1e-6, 1e-7}},
      {Family::Activation, {1e-5, 1e-6}},   {Family::Cast, {0, 0}},
      {Family::Dropout, {1e-6, 1e-7}},      {Family::Softmax, {1e-5, 1e-6}},
      {Family::Norm, {1e-4, 1e-5}},         {Family::Embedding, {1e-6, 1e-6}},
      {Family::CrossEntropy, {1e-5, 1e-5}}, {Family::Reduction, {1e-5, 1e-6}},
      {Family::DataMovement, {0, 0}},       {Family::Collective, {1e-6, 1e-6}},
      {Family::Optimizer, {1e-5, 1e-7}},    {Family::WholeStep, {5e-5, 0}},
  };
  return e;
}

namespace {
/// A cuda-emulated executor and the device-collectives communicator it was
/// given, which must live as long as it does.
class WithDeviceCollectives final : public rt::Executor {
public:
  WithDeviceCollectives(const char *name,
                        std::unique_ptr<test::DeviceCollectivesOverLocal> comm)
      : name(name), comm(std::move(comm)) {}
  ~WithDeviceCollectives() override {
    inner.reset(); // its last work may still use the communicator
  }
  std::unique_ptr<rt::Executor> inner;

  const char *backend() const override { return name; }
  rt::Status run(rt::ProgramKind program, const rt::StepParams &params,
                 size_t begin, size_t end) override {
    return inner->run(program, params, begin, end);
  }
  rt::Status upload(int32_t buffer, const void *data, size_t bytes) override {
    return inner->upload(buffer, data, bytes);
  }
  rt::Status download(int32_t buffer, void *data, size_t bytes) override {
    return inner->download(buffer, data, bytes);
  }
  rt::Status zero(int32_t buffer) override { return inner->zero(buffer); }
  rt::Status send(int32_t buffer, int axis, int64_t peer, int64_t tag,
                  const std::string &what) override {
    return inner->send(buffer, axis, peer, tag, what);
  }
  rt::Status recv(int32_t buffer, int axis, int64_t peer, int64_t tag,
                  const std::string &what) override {
    return inner->recv(buffer, axis, peer, tag, what);
  }
  rt::Status selectStashSlot(int64_t slot) override {
    return inner->selectStashSlot(slot);
  }
  MemoryUse memoryUse() const override { return inner->memoryUse(); }
  void beginStep() override { inner->beginStep(); }
  rt::Status accumulateLoss(int32_t loss) override {
    return inner->accumulateLoss(loss);
  }
  rt::Result<rt::StepOutputs> readStepOutputs() override {
    return inner->readStepOutputs();
  }
  void setGradNorm(double norm) override { inner->setGradNorm(norm); }

private:
  const char *name;
  std::unique_ptr<test::DeviceCollectivesOverLocal> comm;
};
} // namespace

const BackendEntry &deviceCollectivesEntry() {
  static const BackendEntry entry = [] {
    BackendEntry e = cudaEntry(kDeviceCollectivesBackend);
    e.create = [](const plan::PlanT &plan, rt::RankContext rank)
        -> rt::Result<std::unique_ptr<rt::Executor>> {
      std::unique_ptr<test::DeviceCollectivesOverLocal> comm;
      if (rank.comm) {
        comm = std::make_unique<test::DeviceCollectivesOverLocal>(*rank.comm);
        rank.comm = comm.get();
      }
      auto ex = std::make_unique<WithDeviceCollectives>(
          kDeviceCollectivesBackend, std::move(comm));
      auto inner = rt::createExecutor("cuda-emulated", plan, std::move(rank));
      if (!inner.ok())
        return rt::Status::error(inner.message());
      ex->inner = std::move(*inner);
      return std::unique_ptr<rt::Executor>(std::move(ex));
    };
    return e;
  }();
  return entry;
}

const std::vector<BackendEntry> &allBackendEntries() {
  // A new backend: one more entry (its tolerances, the opcodes it does not
  // run yet). It runs once runtime::backendNames() lists it.
  static const std::vector<BackendEntry> entries = {
      cpuEntry(), cudaEntry("cuda"), cudaEntry("cuda-emulated")};
  return entries;
}

std::string cudaUnavailable() {
  static const std::string why = rt::cuda::cudaUnavailableReason();
  return why;
}

const std::vector<BackendEntry> &backends() {
  static const std::vector<BackendEntry> built = [] {
    std::vector<BackendEntry> list;
    for (const std::string &name : rt::backendNames())
      for (const BackendEntry &e : allBackendEntries())
        // `cuda` needs a GPU: without one its tests are not instantiated,
        // and CudaBackend.RunsWhereThereIsAGpu skips saying why.
        if (e.name == name && (name != "cuda" || cudaUnavailable().empty()))
          list.push_back(e);
    return list;
  }();
  return built;
}

std::string backendParamName(const BackendEntry &entry) {
  std::string name = entry.name;
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

void PrintTo(const BackendEntry &entry, std::ostream *os) {
  *os << "backend '" << entry.name << "'";
}
void PrintTo(const BackendEntry *entry, std::ostream *os) {
  PrintTo(*entry, os);
}

} // namespace conformance
} // namespace loom
