//===- IndexedDatasetWriter.cpp - Megatron .bin/.idx, streamed ------------===//

#include "loom/runtime/IndexedDatasetWriter.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace loom {
namespace runtime {

namespace {
const char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};

std::string errnoText() { return std::strerror(errno); }

template <typename T> void append(std::vector<uint8_t> &out, T value) {
  const uint8_t *p = reinterpret_cast<const uint8_t *>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// Flushes `file` to the disk and closes it; false (errno set) on failure.
bool flushAndClose(FILE *file) {
  bool ok = std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
  int saved = errno;
  ok = std::fclose(file) == 0 && ok;
  if (!ok && saved)
    errno = saved;
  return ok;
}

/// Opens `temporary` for writing, replacing a stale one; O_EXCL after the
/// unlink so that a link planted at the name is never followed.
FILE *createTemporary(const std::string &temporary) {
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT)
    return nullptr;
  int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    return nullptr;
  FILE *file = ::fdopen(fd, "wb");
  if (!file)
    ::close(fd);
  return file;
}

std::string cannotCreate(const std::string &temporary) {
  std::string why = errnoText();
  if (errno == ENOENT || errno == ENOTDIR)
    why += "; the directory '" + directoryOf(temporary) + "' must exist";
  return "cannot create '" + temporary + "': " + why;
}
} // namespace

Status checkIndexedTokens(IndexedDType dtype, const int64_t *tokens,
                          size_t count) {
  int64_t lo = 0, hi = 0;
  switch (dtype) {
  case IndexedDType::Uint8:
    lo = 0, hi = UINT8_MAX;
    break;
  case IndexedDType::Int8:
    lo = INT8_MIN, hi = INT8_MAX;
    break;
  case IndexedDType::Int16:
    lo = INT16_MIN, hi = INT16_MAX;
    break;
  case IndexedDType::Uint16:
    lo = 0, hi = UINT16_MAX;
    break;
  case IndexedDType::Int32:
    lo = INT32_MIN, hi = INT32_MAX;
    break;
  case IndexedDType::Int64:
    lo = INT64_MIN, hi = INT64_MAX;
    break;
  default:
    return Status::error(std::string("an indexed dataset of ") +
                         indexedDTypeName(dtype) +
                         " holds no token ids; use an integer dtype");
  }
  if (count > size_t(INT32_MAX))
    return Status::error("a sequence of " + std::to_string(count) +
                         " tokens is longer than the index's int32 lengths");
  for (size_t i = 0; i < count; ++i)
    if (tokens[i] < lo || tokens[i] > hi)
      return Status::error("token id " + std::to_string(tokens[i]) +
                           " does not fit " + indexedDTypeName(dtype));
  return Status::success();
}

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix,
                                           IndexedDType dtype, FILE *bin)
    : prefix_(std::move(prefix)), dtype_(dtype), bin_(bin) {}

IndexedDatasetWriter::IndexedDatasetWriter(
    IndexedDatasetWriter &&other) noexcept
    : prefix_(std::move(other.prefix_)), dtype_(other.dtype_), bin_(other.bin_),
      buffer_(std::move(other.buffer_)), binBytes_(other.binBytes_),
      lengths_(std::move(other.lengths_)),
      documentIndices_(std::move(other.documentIndices_)),
      prepared_(other.prepared_), finished_(other.finished_) {
  other.bin_ = nullptr;
  other.finished_ = true; // the moved-from writer owns no files
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (bin_)
    std::fclose(bin_);
  if (!finished_) {
    ::unlink((prefix_ + ".bin.tmp").c_str());
    ::unlink((prefix_ + ".idx.tmp").c_str());
  }
}

Result<IndexedDatasetWriter>
IndexedDatasetWriter::create(const std::string &prefix, IndexedDType dtype) {
  if (Status s = checkIndexedTokens(dtype, nullptr, 0); !s.ok())
    return s;
  std::string temporary = prefix + ".bin.tmp";
  FILE *bin = createTemporary(temporary);
  if (!bin)
    return Status::error("cannot write the dataset '" + prefix +
                         ".bin': " + cannotCreate(temporary));
  // Large writes: the .bin is written once, front to back.
  std::setvbuf(bin, nullptr, _IOFBF, size_t(1) << 20);
  return IndexedDatasetWriter(prefix, dtype, bin);
}

Status IndexedDatasetWriter::addItem(const int64_t *tokens, size_t count) {
  if (!bin_)
    return Status::error("the dataset '" + prefix_ +
                         "' is finished or failed; nothing more can be added");
  if (Status s = checkIndexedTokens(dtype_, tokens, count); !s.ok())
    return s;
  buffer_.clear();
  size_t width = indexedDTypeSize(dtype_);
  buffer_.reserve(count * width);
  for (size_t i = 0; i < count; ++i)
    switch (width) {
    case 1:
      append(buffer_, uint8_t(tokens[i]));
      break;
    case 2:
      append(buffer_, uint16_t(tokens[i]));
      break;
    case 4:
      append(buffer_, uint32_t(tokens[i]));
      break;
    default:
      append(buffer_, uint64_t(tokens[i]));
    }
  if (!buffer_.empty() &&
      std::fwrite(buffer_.data(), 1, buffer_.size(), bin_) != buffer_.size()) {
    std::string why = errnoText();
    std::fclose(bin_);
    bin_ = nullptr;
    return Status::error("cannot write '" + prefix_ + ".bin.tmp': " + why);
  }
  binBytes_ += buffer_.size();
  lengths_.push_back(int32_t(count));
  return Status::success();
}

void IndexedDatasetWriter::endDocument() {
  documentIndices_.push_back(int64_t(lengths_.size()));
}

Status IndexedDatasetWriter::writeIndex(const std::string &path) const {
  FILE *idx = createTemporary(path);
  if (!idx)
    return Status::error("cannot write the dataset index '" + prefix_ +
                         ".idx': " + cannotCreate(path));
  // Written in blocks: the arrays may be larger than is worth copying.
  std::vector<uint8_t> block(kMagic, kMagic + sizeof(kMagic));
  append(block, uint64_t(1));
  append(block, uint8_t(dtype_));
  append(block, uint64_t(lengths_.size()));
  append(block, uint64_t(documentIndices_.size()));
  bool ok = true;
  auto flush = [&](bool force) {
    if (ok && (force || block.size() >= (size_t(1) << 20))) {
      ok = std::fwrite(block.data(), 1, block.size(), idx) == block.size();
      block.clear();
    }
  };
  for (int32_t length : lengths_) {
    append(block, length);
    flush(false);
  }
  int64_t pointer = 0;
  for (int32_t length : lengths_) {
    append(block, pointer);
    pointer += int64_t(length) * int64_t(indexedDTypeSize(dtype_));
    flush(false);
  }
  for (int64_t index : documentIndices_) {
    append(block, index);
    flush(false);
  }
  flush(true);
  if (!ok) {
    std::string why = errnoText();
    std::fclose(idx);
    return Status::error("cannot write '" + path + "': " + why);
  }
  if (!flushAndClose(idx))
    return Status::error("cannot write '" + path + "': " + errnoText());
  return Status::success();
}

Status IndexedDatasetWriter::finish() {
  if (Status s = prepare(); !s.ok())
    return s;
  return commit();
}

Status IndexedDatasetWriter::prepare() {
  if (!bin_)
    return Status::error("the dataset '" + prefix_ +
                         "' is finished or failed; it cannot be finished");
  std::string binTemporary = prefix_ + ".bin.tmp";
  std::string idxTemporary = prefix_ + ".idx.tmp";
  FILE *bin = bin_;
  bin_ = nullptr;
  if (!flushAndClose(bin))
    return Status::error("cannot write '" + binTemporary + "': " + errnoText());
  if (Status s = writeIndex(idxTemporary); !s.ok())
    return s;
  prepared_ = true;
  return Status::success();
}

Status IndexedDatasetWriter::commit() {
  if (!prepared_ || finished_)
    return Status::error("the dataset '" + prefix_ +
                         "' is not prepared, or already committed");
  // The .bin first: an index is never left describing a missing .bin.
  for (const char *suffix : {".bin", ".idx"}) {
    std::string temporary = prefix_ + suffix + ".tmp";
    std::string final = prefix_ + suffix;
    if (std::rename(temporary.c_str(), final.c_str()) != 0)
      return Status::error("cannot rename '" + temporary + "' to '" + final +
                           "': " + errnoText());
  }
  finished_ = true;
  int dir =
      ::open(directoryOf(prefix_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || ::fsync(dir) != 0) {
    std::string why = errnoText();
    if (dir >= 0)
      ::close(dir);
    return Status::error("cannot flush the directory '" + directoryOf(prefix_) +
                         "': " + why);
  }
  ::close(dir);
  return Status::success();
}

} // namespace runtime
} // namespace loom
