//===- GlooUnavailable.cpp - the gloo factory of a build without Gloo -----===//
//
// Compiled instead of GlooCommunicator.cpp when CMake finds no Gloo, so that
// Job.cpp and loom-run link the same way in every build and `--comm gloo`
// says what to install.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Job.h"

namespace loom {
namespace runtime {

Result<std::unique_ptr<Communicator>>
createGlooCommunicator(const MeshShape &, int64_t, StoreClient &,
                       const ProcessCommOptions &) {
  return Status::error("the gloo communicator is not available: Loom was "
                       "built without Gloo (install libgloo-dev, e.g. with "
                       "scripts/setup.sh, and reconfigure)");
}

bool glooAvailable() { return false; }

} // namespace runtime
} // namespace loom
