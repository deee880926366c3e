//===- Files.h - whole-file reads and crash-safe writes ---------*- C++ -*-===//

#ifndef LOOM_RUNTIME_FILES_H
#define LOOM_RUNTIME_FILES_H

#include "loom/runtime/Status.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace loom {
namespace runtime {

/// The bound readWholeFile applies when the caller gives none; it is the
/// plan reader's. A plan holds the program, not the weights: the 1T-parameter
/// GPT's (examples/configs/gpt-1t.args) is 2.9 MB, so 1 GiB leaves a margin
/// of 300 and still refuses a wrong file before it fills memory.
constexpr uint64_t kDefaultMaxReadBytes = uint64_t(1) << 30;

/// The bytes of `path`; `what` names the file in messages ("the plan").
/// Before reading, refuses (naming the file) anything but a regular file —
/// a directory, a FIFO (opened without waiting for a writer), a device such
/// as /dev/zero — and a file of more than `maxBytes`.
Result<std::vector<uint8_t>>
readWholeFile(const std::string &path, const std::string &what,
              uint64_t maxBytes = kDefaultMaxReadBytes);

/// A file mapped read-only into memory: a corpus is paged in as it is read,
/// never copied. Opened through readWholeFile's checks (a regular file, not
/// waiting on a FIFO); move-only, unmapped when destroyed.
class MappedFile {
public:
  static Result<MappedFile> open(const std::string &path,
                                 const std::string &what);
  MappedFile() = default;
  MappedFile(MappedFile &&other) noexcept { *this = std::move(other); }
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string &path() const { return path_; }

private:
  const uint8_t *data_ = nullptr; // null for an empty file
  uint64_t size_ = 0;
  std::string path_;
};

/// Writes `bytes` to `path`.
///  - A regular file, or a missing one: through `path.tmp` (write, flush,
///    rename over `path`, flush the directory), so a kill at any point leaves
///    the old file or the new one, never a broken one.
///  - A symbolic link: the same, to the file the link resolves to; the link
///    stays. A link to a missing file is refused.
///  - A character device (/dev/null, a terminal): written through in place;
///    it is never replaced.
///  - Anything else (a directory, a FIFO, a socket, a block device) and an
///    empty path or one ending in '/': refused with a message.
/// On failure nothing is left behind (no `.tmp`) and `path` is unchanged.
Status writeFileAtomically(const std::string &path,
                           const std::vector<uint8_t> &bytes);

/// Checks, before the work that produces it, that writeFileAtomically(path)
/// can succeed: `path` is of a kind it writes, and its directory takes a new
/// file (`path.tmp` is created and removed; a device is opened for writing).
/// Leaves nothing behind.
Status checkWritable(const std::string &path);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_FILES_H
