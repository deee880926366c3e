//===- PlanKernels.cpp - compile a plan's generated kernels once ----------===//
//
// Every rank of a process runs the same plan (SPMD): the first executor
// compiles (or loads from the cache) and the others wait for it and share
// the module. A process says once per plan what it runs: the generated
// kernels with their load time, or the reference kernels and why.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/cpu/PlanKernels.h"

#include <cstdio>
#include <map>
#include <mutex>
#include <set>

namespace loom {
namespace runtime {
namespace cpu {

std::string planHostSource(const plan::PlanT &plan) {
  if (plan.kernels.empty())
    return "";
  std::string source = plan.kernel_host_prelude;
  for (const auto &k : plan.kernels)
    source += "\n" + k->host_source;
  return source;
}

namespace {
std::mutex &loadMutex() {
  static std::mutex m;
  return m;
}
struct Loaded {
  std::shared_ptr<HostModule> module;
  std::string error;
};
std::map<std::string, Loaded> &loadedModules() {
  static std::map<std::string, Loaded> m;
  return m;
}
} // namespace

Result<std::shared_ptr<HostModule>> loadPlanKernels(const plan::PlanT &plan,
                                                    HostCompileReport *out) {
  std::string source = planHostSource(plan);
  if (source.empty())
    return Status::error("the plan has no generated kernels");
  std::lock_guard<std::mutex> lock(loadMutex());
  auto it = loadedModules().find(source);
  if (out) {
    *out = HostCompileReport();
    out->cacheHit = true; // this process has them
  }
  if (it == loadedModules().end()) {
    Loaded loaded;
    HostCompileReport report;
    Result<std::shared_ptr<HostModule>> module =
        compileHostModule(source, HostCompilerOptions(), &report);
    if (out)
      *out = report;
    size_t n = plan.kernels.size();
    if (module.ok()) {
      loaded.module = *module;
      if (!runtimeNotes()) {
        // A job's rank other than 0: rank 0 says it.
      } else if (report.cacheHit)
        std::fprintf(stderr,
                     "loom: %zu generated kernels (host C++) loaded from the "
                     "kernel cache in %.2f s\n",
                     n, report.seconds);
      else
        std::fprintf(stderr,
                     "loom: %zu generated kernels (host C++) compiled in "
                     "%.2f s%s, cached as %s\n",
                     n, report.seconds,
                     report.rebuilt ? " (a damaged cache entry was rebuilt)"
                                    : "",
                     report.objectPath.c_str());
    } else {
      loaded.error = module.message();
      std::fprintf(stderr,
                   "loom: the %zu generated kernels cannot be compiled (%s); "
                   "running the reference kernels instead\n",
                   n, loaded.error.c_str());
    }
    it = loadedModules().emplace(source, std::move(loaded)).first;
  }
  if (!it->second.module)
    return Status::error(it->second.error);
  return it->second.module;
}

void noteReferenceKernels(const plan::PlanT &plan, const std::string &why) {
  static std::mutex m;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(m);
  std::string source = planHostSource(plan);
  if (source.empty() || !said.insert(source).second)
    return;
  std::fprintf(stderr,
               "loom: %s: running the reference kernels instead of %zu "
               "generated kernels\n",
               why.c_str(), plan.kernels.size());
}

} // namespace cpu
} // namespace runtime
} // namespace loom
