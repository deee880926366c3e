//===- Files.cpp - whole-file reads and crash-safe writes -----------------===//

#include "loom/runtime/Files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <unistd.h>

namespace loom {
namespace runtime {

namespace {
Status fsyncPath(const std::string &path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0)
    return Status::error("cannot open '" + path + "': " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return Status::error("cannot flush '" + path +
                         "': " + std::strerror(errno));
  return Status::success();
}

std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
} // namespace

Result<std::vector<uint8_t>> readWholeFile(const std::string &path,
                                           const std::string &what) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return Status::error("cannot open " + what + " '" + path +
                         "': " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                             std::istreambuf_iterator<char>());
  if (file.bad())
    return Status::error("cannot read " + what + " '" + path +
                         "': " + std::strerror(errno));
  return bytes;
}

Status writeFileAtomically(const std::string &path,
                           const std::vector<uint8_t> &bytes) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    if (!file)
      return Status::error("cannot write '" + temporary +
                           "': " + std::strerror(errno));
    file.write(reinterpret_cast<const char *>(bytes.data()),
               std::streamsize(bytes.size()));
    file.flush();
    if (!file)
      return Status::error("cannot write '" + temporary +
                           "': " + std::strerror(errno));
  }
  if (Status s = fsyncPath(temporary, O_RDONLY); !s.ok())
    return s;
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    return Status::error("cannot rename '" + temporary + "' to '" + path +
                         "': " + std::strerror(errno));
  return fsyncPath(parentDirectory(path), O_RDONLY | O_DIRECTORY);
}

} // namespace runtime
} // namespace loom
