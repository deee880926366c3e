//===- Checkpoint.cpp - training state on disk, written atomically --------===//

#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Files.h"
#include "loom/runtime/Plan.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <utility>

namespace loom {
namespace runtime {

namespace {
constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'C', 'K', 'P', 'T'};
constexpr const char *kFileName = "/checkpoint.loomckpt";

template <typename T> void put(std::vector<uint8_t> &out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out.push_back(uint8_t(uint64_t(value) >> (8 * i)));
}

/// Reads little-endian values from bytes [pos, end) of a buffer,
/// remembering overruns.
struct Reader {
  const std::vector<uint8_t> &bytes;
  size_t pos = 0;
  size_t end = 0; // reads stop here (pos <= end <= bytes.size())
  bool overrun = false;

  template <typename T> T get() {
    if (!has(sizeof(T))) {
      overrun = true;
      return T();
    }
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      v |= uint64_t(bytes[pos + i]) << (8 * i);
    pos += sizeof(T);
    return T(v);
  }
  bool has(uint64_t n) const { return !overrun && n <= end - pos; }
};

/// Creates `directory` (its parent must exist) unless it is one already.
Status makeDirectory(const std::string &directory) {
  if (directory.empty())
    return Status::error("the checkpoint directory's name is empty; name one");
  if (::mkdir(directory.c_str(), 0755) == 0)
    return Status::success();
  if (errno != EEXIST)
    return Status::error("cannot create the checkpoint directory '" +
                         directory + "': " + std::strerror(errno));
  struct stat st;
  if (::stat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::error("cannot save a checkpoint into '" + directory +
                         "': it exists and is not a directory; name a "
                         "directory (it is created if missing)");
  return Status::success();
}

} // namespace

uint32_t crc32(const uint8_t *data, size_t size, uint32_t crc) {
  // Built once, thread-safely (a function-local static).
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i)
    crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

Status saveCheckpoint(const std::string &directory,
                      const Checkpoint &checkpoint) {
  if (Status s = makeDirectory(directory); !s.ok())
    return s;
  std::vector<uint8_t> out(std::begin(kMagic), std::end(kMagic));
  put<uint32_t>(out, kCheckpointVersion);
  put<int64_t>(out, checkpoint.step);
  put<int64_t>(out, checkpoint.dataPosition);
  put<uint64_t>(out, checkpoint.seed);
  put<uint32_t>(out, uint32_t(checkpoint.scalars.size()));
  for (const auto &[name, value] : checkpoint.scalars) {
    put<uint32_t>(out, uint32_t(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    uint64_t bits;
    std::memcpy(&bits, &value, 8);
    put<uint64_t>(out, bits);
  }
  put<uint32_t>(out, uint32_t(checkpoint.tensors.size()));
  for (const CheckpointTensor &t : checkpoint.tensors) {
    int64_t elements;
    if (!checkedProduct(t.shape, elements))
      return Status::error("checkpoint tensor '" + t.name +
                           "' has a bad shape");
    if (elements != int64_t(t.data.size()))
      return Status::error("checkpoint tensor '" + t.name + "' has " +
                           std::to_string(t.data.size()) +
                           " values for a shape of " +
                           std::to_string(elements) + " elements");
    put<uint32_t>(out, uint32_t(t.name.size()));
    out.insert(out.end(), t.name.begin(), t.name.end());
    put<uint32_t>(out, uint32_t(t.shape.size()));
    for (int64_t d : t.shape)
      put<int64_t>(out, d);
    for (float f : t.data) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      put<uint32_t>(out, bits);
    }
  }
  put<uint32_t>(out, crc32(out.data(), out.size()));

  return writeFileAtomically(directory + kFileName, out);
}

Status checkCheckpointDirectory(const std::string &directory) {
  if (Status s = makeDirectory(directory); !s.ok())
    return s;
  if (Status s = checkWritable(directory + kFileName); !s.ok())
    return Status::error("cannot save a checkpoint into '" + directory +
                         "': " + s.message());
  return Status::success();
}

Result<Checkpoint> loadCheckpoint(const std::string &directory,
                                  uint64_t maxBytes) {
  if (directory.empty())
    return Status::error("the checkpoint directory's name is empty; name one");
  std::string path = directory + kFileName;
  Result<std::vector<uint8_t>> read =
      readWholeFile(path, "the checkpoint", maxBytes);
  if (!read.ok())
    return Status::error(read.message());
  std::vector<uint8_t> bytes = std::move(*read);
  auto damaged = [&](const std::string &why) {
    return Status::error("the checkpoint '" + path + "' is damaged (" + why +
                         "); load an earlier one");
  };
  if (bytes.size() < sizeof(kMagic) + 4 ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    return Status::error("'" + path + "' is not a Loom checkpoint");
  if (bytes.size() < sizeof(kMagic) + 4 + 8 + 8 + 8 + 4 + 4 + 4)
    return damaged("truncated");
  // The checksum first: a damaged version field is damage, not a version.
  size_t body = bytes.size() - 4;
  Reader tail{bytes, body, bytes.size()};
  uint32_t stored = tail.get<uint32_t>();
  if (stored != crc32(bytes.data(), body))
    return damaged("its checksum does not match: truncated or corrupted");
  Reader header{bytes, sizeof(kMagic), body};
  uint32_t version = header.get<uint32_t>();
  if (version != kCheckpointVersion)
    return Status::error("the checkpoint '" + path + "' has format version " +
                         std::to_string(version) +
                         "; this build reads version " +
                         std::to_string(kCheckpointVersion));

  Reader in{bytes, sizeof(kMagic) + 4, body};
  Checkpoint c;
  c.step = in.get<int64_t>();
  c.dataPosition = in.get<int64_t>();
  c.seed = in.get<uint64_t>();
  // The checksum matched, so an impossible value was written (or edited)
  // that way; it would make the run go wrong later rather than fail here.
  auto impossible = [&](const std::string &what) {
    return Status::error("the checkpoint '" + path +
                         "' holds an impossible value: " + what +
                         "; load another checkpoint");
  };
  for (auto [name, value] : {std::pair<const char *, int64_t>{"step", c.step},
                             {"data position", c.dataPosition}})
    if (value < 0 || value > kMaxCheckpointCount)
      return impossible(std::string(name) + " " + std::to_string(value) +
                        " (a count in [0, 2^53])");
  uint32_t scalars = in.get<uint32_t>();
  for (uint32_t i = 0; i < scalars && !in.overrun; ++i) {
    uint32_t nameLength = in.get<uint32_t>();
    if (!in.has(uint64_t(nameLength) + 8))
      return damaged("a scalar runs past the end");
    std::string name(bytes.begin() + in.pos,
                     bytes.begin() + in.pos + nameLength);
    in.pos += nameLength;
    uint64_t bits = in.get<uint64_t>();
    double value;
    std::memcpy(&value, &bits, 8);
    for (const auto &scalar : c.scalars)
      if (scalar.first == name)
        return impossible("the scalar '" + name + "' twice");
    c.scalars.push_back({std::move(name), value});
  }
  uint32_t count = in.get<uint32_t>();
  for (uint32_t i = 0; i < count && !in.overrun; ++i) {
    CheckpointTensor t;
    uint32_t nameLength = in.get<uint32_t>();
    if (!in.has(nameLength))
      return damaged("a tensor name runs past the end");
    t.name.assign(bytes.begin() + in.pos, bytes.begin() + in.pos + nameLength);
    in.pos += nameLength;
    uint32_t rank = in.get<uint32_t>();
    if (rank > 64 || !in.has(uint64_t(rank) * 8))
      return damaged("tensor '" + t.name + "' has a bad rank");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < rank; ++d) {
      int64_t dim = in.get<int64_t>();
      if (dim < 0 || (dim && elements > (uint64_t(1) << 48) / uint64_t(dim)))
        return damaged("tensor '" + t.name + "' has a bad shape");
      elements *= uint64_t(dim);
      t.shape.push_back(dim);
    }
    if (!in.has(elements * 4))
      return damaged("tensor '" + t.name + "' runs past the end");
    t.data.resize(elements);
    for (uint64_t e = 0; e < elements; ++e) {
      uint32_t bits = in.get<uint32_t>();
      std::memcpy(&t.data[e], &bits, 4);
    }
    c.tensors.push_back(std::move(t));
  }
  if (in.overrun || in.pos != body)
    return damaged("its contents do not match its header");
  return c;
}

} // namespace runtime
} // namespace loom
