//===- Files.cpp - whole-file reads and crash-safe writes -----------------===//

#include "loom/runtime/Files.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace loom {
namespace runtime {

namespace {
std::string errnoText() { return std::strerror(errno); }

/// "a directory", "a FIFO", ...: what a path is, for messages.
std::string kindOf(mode_t mode) {
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISLNK(mode))
    return "a symbolic link";
  return "not a regular file";
}

/// Closes a descriptor when it goes out of scope.
struct Descriptor {
  int fd = -1;
  ~Descriptor() {
    if (fd >= 0)
      ::close(fd);
  }
  /// Closes now, reporting the error a close can carry (NFS, a full disk).
  bool close() {
    int rc = ::close(fd);
    fd = -1;
    return rc == 0;
  }
};

bool writeAll(int fd, const std::vector<uint8_t> &bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      return false;
    }
    done += size_t(n);
  }
  return true;
}

std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status fsyncDirectory(const std::string &path) {
  Descriptor d{::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd < 0 || ::fsync(d.fd) != 0)
    return Status::error("cannot flush the directory '" + path +
                         "': " + errnoText());
  return Status::success();
}

/// Where writeFileAtomically writes `path`, and how.
struct Target {
  std::string path; // the file to replace or write (a link resolved)
  bool replace;     // through path.tmp and a rename; else written in place
};

Result<Target> resolveTarget(const std::string &path) {
  if (path.empty())
    return Status::error("cannot write a file with an empty name; name one");
  if (path.back() == '/')
    return Status::error("cannot write '" + path +
                         "': it names a directory; name a file");
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Target{path, true}; // a new file
    return Status::error("cannot write '" + path + "': " + errnoText());
  }
  std::string target = path;
  if (S_ISLNK(st.st_mode)) {
    // Renaming over the link would replace the link itself.
    char *resolved = ::realpath(path.c_str(), nullptr);
    if (!resolved)
      return Status::error("cannot write '" + path +
                           "': it is a symbolic link that does not lead to "
                           "a file (" +
                           errnoText() + "); point it at one or remove it");
    target = resolved;
    std::free(resolved);
    if (::stat(target.c_str(), &st) != 0)
      return Status::error("cannot write '" + target + "': " + errnoText());
  }
  if (S_ISREG(st.st_mode))
    return Target{target, true};
  // A device is never replaced: as root, a rename over /dev/null would put
  // a regular file in its place.
  if (S_ISCHR(st.st_mode))
    return Target{target, false};
  return Status::error("cannot write '" + path + "': it is " +
                       kindOf(st.st_mode) +
                       "; name a regular file (or a character device such "
                       "as /dev/null)");
}

/// Creates `target.tmp` for writing (a stale one, left by a killed writer,
/// is removed first), or fails naming `path`.
Result<int> createTemporary(const std::string &path,
                            const std::string &temporary) {
  // O_EXCL after the unlink: a link planted at the name is never followed.
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT)
    return Status::error("cannot write '" + path + "': '" + temporary +
                         "' is in the way (" + errnoText() + ")");
  int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    std::string why = errnoText();
    if (errno == ENOENT || errno == ENOTDIR)
      why += "; the directory '" + parentDirectory(temporary) + "' must exist";
    return Status::error("cannot write '" + path + "' (creating '" + temporary +
                         "'): " + why);
  }
  return fd;
}
/// Opens `path` for reading into `d` and stats it, refusing anything but
/// a regular file (a directory, a FIFO, a device) with a message naming
/// `what`. O_NONBLOCK: opening a FIFO must not wait for a writer (it is
/// refused); on a regular file the flag changes nothing.
Status openRegularFile(const std::string &path, const std::string &what,
                       Descriptor &d, struct stat &st) {
  d.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (d.fd < 0)
    return Status::error("cannot open " + what + " '" + path +
                         "': " + errnoText());
  if (::fstat(d.fd, &st) != 0)
    return Status::error("cannot read " + what + " '" + path +
                         "': " + errnoText());
  if (!S_ISREG(st.st_mode))
    return Status::error("cannot read " + what + " '" + path + "': it is " +
                         kindOf(st.st_mode) + ", not a regular file");
  return Status::success();
}
} // namespace

Result<std::vector<uint8_t>> readWholeFile(const std::string &path,
                                           const std::string &what,
                                           uint64_t maxBytes) {
  Descriptor d;
  struct stat st;
  if (Status s = openRegularFile(path, what, d, st); !s.ok())
    return s;
  uint64_t size = uint64_t(st.st_size);
  if (size > maxBytes)
    return Status::error(what + " '" + path + "' is " + std::to_string(size) +
                         " bytes, more than the " + std::to_string(maxBytes) +
                         " bytes it may be: is it the right file?");
  std::vector<uint8_t> bytes(size);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(d.fd, bytes.data() + done, size - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return Status::error("cannot read " + what + " '" + path +
                           "': " + errnoText());
    if (n == 0)
      return Status::error(what + " '" + path +
                           "' became shorter while it was read; is "
                           "something writing it?");
    done += size_t(n);
  }
  return bytes;
}

Result<MappedFile> MappedFile::open(const std::string &path,
                                    const std::string &what) {
  Descriptor d;
  struct stat st;
  if (Status s = openRegularFile(path, what, d, st); !s.ok())
    return s;
  MappedFile file;
  file.path_ = path;
  file.size_ = uint64_t(st.st_size);
  // mmap refuses a zero length; an empty file maps to nothing.
  if (file.size_ == 0)
    return file;
  void *map =
      ::mmap(nullptr, size_t(file.size_), PROT_READ, MAP_SHARED, d.fd, 0);
  if (map == MAP_FAILED)
    return Status::error("cannot map " + what + " '" + path +
                         "' into memory: " + errnoText());
  file.data_ = static_cast<const uint8_t *>(map);
  return file;
}

MappedFile &MappedFile::operator=(MappedFile &&other) noexcept {
  if (this != &other) {
    if (data_)
      ::munmap(const_cast<uint8_t *>(data_), size_t(size_));
    data_ = other.data_;
    size_ = other.size_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), size_t(size_));
}

namespace {
/// Where `path` is written, open for writing (`fd`): a device in place, or
/// a regular file through `temporary`, created here (target.replace).
struct WriteTarget {
  Target target;
  std::string temporary;
  int fd = -1;
};
Result<WriteTarget> openWriteTarget(const std::string &path) {
  Result<Target> target = resolveTarget(path);
  if (!target.ok())
    return Status::error(target.message());
  WriteTarget w{*target, "", -1};
  if (!w.target.replace) {
    w.fd = ::open(w.target.path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (w.fd < 0)
      return Status::error("cannot write '" + path + "': " + errnoText());
    return w;
  }
  w.temporary = w.target.path + ".tmp";
  Result<int> created = createTemporary(path, w.temporary);
  if (!created.ok())
    return Status::error(created.message());
  w.fd = *created;
  return w;
}
} // namespace

Status writeFileAtomically(const std::string &path,
                           const std::vector<uint8_t> &bytes) {
  Result<WriteTarget> opened = openWriteTarget(path);
  if (!opened.ok())
    return Status::error(opened.message());
  Descriptor d{opened->fd};
  const Target &target = opened->target;
  if (!target.replace) {
    if (!writeAll(d.fd, bytes) || !d.close())
      return Status::error("cannot write '" + path + "': " + errnoText());
    return Status::success();
  }
  const std::string &temporary = opened->temporary;
  auto fail = [&](const std::string &doing) {
    std::string why = errnoText();
    ::unlink(temporary.c_str());
    return Status::error("cannot write '" + path + "' (" + doing + " '" +
                         temporary + "'): " + why);
  };
  if (!writeAll(d.fd, bytes))
    return fail("writing");
  if (::fsync(d.fd) != 0 || !d.close())
    return fail("flushing");
  if (std::rename(temporary.c_str(), target.path.c_str()) != 0)
    return fail("renaming");
  return fsyncDirectory(parentDirectory(target.path));
}

Status checkWritable(const std::string &path) {
  Result<WriteTarget> opened = openWriteTarget(path);
  if (!opened.ok())
    return Status::error(opened.message());
  ::close(opened->fd);
  if (!opened->temporary.empty())
    ::unlink(opened->temporary.c_str());
  return Status::success();
}

} // namespace runtime
} // namespace loom
