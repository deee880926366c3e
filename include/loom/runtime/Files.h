//===- Files.h - whole-file reads and crash-safe writes ---------*- C++ -*-===//

#ifndef LOOM_RUNTIME_FILES_H
#define LOOM_RUNTIME_FILES_H

#include "loom/runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// The bytes of `path`; `what` names the file in the message ("the plan").
Result<std::vector<uint8_t>> readWholeFile(const std::string &path,
                                           const std::string &what);

/// Writes `bytes` to `path` through `path.tmp`: write, flush, rename over
/// `path`, flush the directory. A kill at any point leaves the old file or
/// the new one, never a broken one.
Status writeFileAtomically(const std::string &path,
                           const std::vector<uint8_t> &bytes);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_FILES_H
