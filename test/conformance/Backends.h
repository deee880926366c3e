//===- Backends.h - the backends the conformance suite runs -----*- C++ -*-===//
//
// One entry per backend of the runtime: how to prepare a plan on it (through
// loom::runtime::createExecutor), how close its f32 results must come to the
// double-precision reference per op family, and the opcodes it does not run
// yet. Every suite of test/conformance is parameterised over backends(), so
// a backend added here runs every test; an opcode it lists as unsupported
// makes the tests that need it skip, naming the opcode and the backend (a
// skip is never a pass). Adding a backend is one entry in Backends.cpp
// (docs/testing.md).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CONFORMANCE_BACKENDS_H
#define LOOM_TEST_CONFORMANCE_BACKENDS_H

#include "loom/runtime/Backend.h"
#include "loom/runtime/InstructionSet.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace loom {
namespace conformance {

/// Op families, each with its own tolerance: how far an f32 result may be
/// from the reference computed in double on the same inputs.
enum class Family {
  Gemm,
  Elementwise, // add .. div, neg, scale, accumulate, broadcast, fill
  Activation,  // relu, silu, gelu and their gradients
  Cast,
  Dropout,
  Softmax,
  Norm,
  Embedding,
  CrossEntropy,
  Reduction,
  DataMovement, // transpose, split, concat, zero, all_slice: exact
  Collective,
  Optimizer,
  WholeStep, // a model's loss and gradients, relative to their largest
};
const char *familyName(Family family);

/// |got - want| <= atol + rtol · |want|.
struct Tolerance {
  double rtol = 0, atol = 0;
};

struct BackendEntry {
  std::string name;
  /// Prepares a plan for one rank: calls loom::runtime::createExecutor.
  std::function<runtime::Result<std::unique_ptr<runtime::Executor>>(
      const plan::PlanT &, runtime::RankContext)>
      create;
  std::map<Family, Tolerance> tolerances;
  /// The opcodes this backend does not run yet.
  std::set<runtime::Op> unsupported;

  /// The family's tolerance (a family missing from the table is a mistake
  /// in the entry, reported as a failure by the caller's comparison).
  Tolerance tolerance(Family family) const;
  /// The first opcode of `plan`'s programs (and chunks) this backend does
  /// not run, if any.
  std::optional<runtime::Op> firstUnsupported(const plan::PlanT &plan) const;
};

/// The entries whose backend this build has (runtime::backendNames()), in
/// that order: "cpu" first.
const std::vector<BackendEntry> &backends();
/// Every entry, built here or not.
const std::vector<BackendEntry> &allBackendEntries();
/// The CUDA executor on the emulated device with its collectives and
/// pipeline sends through DeviceCollectives (the path the nccl communicator
/// takes on a GPU), over the local communicator
/// (DeviceCollectivesOverLocal.h). Not a backend of the runtime, so not in
/// backends(): the suites that exercise collectives instantiate it
/// themselves.
const BackendEntry &deviceCollectivesEntry();
constexpr const char *kDeviceCollectivesBackend =
    "cuda-emulated-device-collectives";
/// Why the `cuda` backend cannot run here ("" when it can: a GPU).
std::string cudaUnavailable();

/// gtest's parameter names: the backend's name.
std::string backendParamName(const BackendEntry &entry);
/// How gtest prints an entry (a failing test's parameter): its name.
void PrintTo(const BackendEntry &entry, std::ostream *os);
void PrintTo(const BackendEntry *entry, std::ostream *os);

} // namespace conformance
} // namespace loom

#endif // LOOM_TEST_CONFORMANCE_BACKENDS_H
