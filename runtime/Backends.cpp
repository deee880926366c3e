//===- Backends.cpp - the registry of backends ----------------------------===//
//
// One entry per backend this build has. A new backend adds its factory
// here (under its build option) and registers in the conformance suite
// (test/conformance/Backends.cpp); docs/architecture.md walks through it.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Backend.h"
#include "loom/runtime/cpu/CpuBackend.h"
#include "loom/runtime/cuda/CudaBackend.h"

namespace loom {
namespace runtime {

Executor::~Executor() = default;

namespace {
struct BackendEntry {
  const char *name;
  Result<std::unique_ptr<Executor>> (*create)(const plan::PlanT &,
                                              RankContext);
};

const std::vector<BackendEntry> &backends() {
  static const std::vector<BackendEntry> entries = {
      {"cpu", cpu::createCpuExecutor},
      // Always listed: without a GPU (or a toolkit at build time) it fails
      // saying so.
      {"cuda", cuda::createCudaExecutor},
      {"cuda-emulated", cuda::createEmulatedCudaExecutor},
  };
  return entries;
}
} // namespace

std::vector<std::string> backendNames() {
  std::vector<std::string> names;
  for (const BackendEntry &e : backends())
    names.push_back(e.name);
  return names;
}

Result<std::unique_ptr<Executor>> createExecutor(const std::string &name,
                                                 const plan::PlanT &plan,
                                                 RankContext rank) {
  for (const BackendEntry &e : backends())
    if (name == e.name)
      return e.create(plan, std::move(rank));
  std::string known;
  for (const std::string &n : backendNames())
    known += (known.empty() ? "" : ", ") + n;
  return Status::error("there is no backend '" + name + "'; this build has: " +
                       known);
}

} // namespace runtime
} // namespace loom
