//===- Backend.h - the registry of backends ---------------------*- C++ -*-===//
//
// The backends this build has, by name. A Session creates one executor per
// rank (and per pipeline chunk) through here; the conformance suite
// (test/conformance) runs against every backend listed. Adding a backend
// is one entry in runtime/Backends.cpp (see docs/architecture.md).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_BACKEND_H
#define LOOM_RUNTIME_BACKEND_H

#include "loom/runtime/Executor.h"

#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// The name of each backend of this build ("cpu" first: the default).
std::vector<std::string> backendNames();

/// Prepares `plan` (which must outlive the executor) for the rank `rank`
/// on the backend `name`. Fails naming the backends there are when there
/// is no such backend, and naming the instruction when the plan has one
/// the backend cannot run.
Result<std::unique_ptr<Executor>> createExecutor(const std::string &name,
                                                 const plan::PlanT &plan,
                                                 RankContext rank = {});

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_BACKEND_H
