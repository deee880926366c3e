//===- KernelCache.cpp - NVRTC cubins cached on disk ----------------------===//
//
// The cache entry of key K in directory D (the layout of the CPU backend's
// host objects, HostCompiler.cpp, with a cubin for the shared object):
//   D/K.cu            the source (for people; never read back)
//   D/K.cubin         the cubin
//   D/K.cubin.sha256  the cubin's SHA-256, written last
//   D/K.lock          flock'ed by whoever compiles K; never removed
// Every file is written through a temporary name and a rename
// (writeFileAtomically), and the checksum appears only after the cubin, so
// a reader without the lock sees a valid entry or one that looks damaged; it
// acts on damage only under the lock, after looking again. Keys never
// collide with the host objects' (a different format string goes into the
// hash), so both live in one directory.
//
//===----------------------------------------------------------------------===//

#include "KernelCache.h"

#include "loom/runtime/Files.h"
#include "loom/runtime/Sha256.h"
#include "loom/runtime/cpu/HostCompiler.h"
#include "loom/runtime/cuda/NvrtcCompiler.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace loom {
namespace runtime {
namespace cuda {

namespace {
/// Bumped when the entry's layout or the key's inputs change, so an old
/// cache is never read with new rules.
constexpr const char *kFormatVersion = "loom-cuda-kernel-cache-1";

/// How many lines of NVRTC's log an error carries.
constexpr int kDiagnosticLines = 60;

/// Adds one named, length-prefixed field to the key, so that no two
/// different inputs concatenate to the same bytes.
void addField(Sha256 &hash, const std::string &name, const std::string &value) {
  hash.update(name);
  hash.update("\0", 1);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = uint8_t(uint64_t(value.size()) >> (8 * i));
  hash.update(length, sizeof length);
  hash.update(value);
}


struct Entry {
  std::string source, cubin, checksum, lock;
};

Entry entryOf(const std::string &dir, const std::string &key) {
  std::string base = dir + "/" + key;
  return {base + ".cu", base + ".cubin", base + ".cubin.sha256",
          base + ".lock"};
}

bool exists(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

enum class EntryState { Missing, Damaged, Valid };
struct Lookup {
  EntryState state = EntryState::Missing;
  std::string why;   // when damaged
  std::string cubin; // when valid
};

/// Reads the entry's cubin and checks it against its checksum.
Lookup lookUp(const Entry &entry) {
  if (!exists(entry.cubin) && !exists(entry.checksum))
    return {EntryState::Missing, "", ""};
  if (!exists(entry.checksum))
    return {EntryState::Damaged, "its checksum file is missing", ""};
  Result<std::vector<uint8_t>> bytes =
      readWholeFile(entry.cubin, "the cached cubin");
  if (!bytes.ok())
    return {EntryState::Damaged, bytes.message(), ""};
  Result<std::vector<uint8_t>> recorded =
      readWholeFile(entry.checksum, "the cached cubin's checksum", 4096);
  if (!recorded.ok())
    return {EntryState::Damaged, recorded.message(), ""};
  std::string expected(recorded->begin(), recorded->end());
  expected.erase(expected.find_last_not_of(" \n") + 1);
  std::string actual = sha256Hex(bytes->data(), bytes->size());
  if (expected != actual)
    return {EntryState::Damaged,
            "the cubin's SHA-256 is " + actual + ", its checksum file says " +
                expected,
            ""};
  std::string cubin(bytes->begin(), bytes->end());
  if (cubin.compare(0, 4,
                    "\x7f"
                    "ELF") != 0)
    return {EntryState::Damaged, "it is not an ELF cubin", ""};
  return {EntryState::Valid, "", std::move(cubin)};
}

/// Removes the entry's cubin and checksum (the source and the lock stay),
/// the checksum first, so that no reader pairs it with a new cubin.
void removeCubin(const Entry &entry) {
  ::unlink(entry.checksum.c_str());
  ::unlink(entry.cubin.c_str());
}

Status writeText(const std::string &path, const std::string &text) {
  return writeFileAtomically(path,
                             std::vector<uint8_t>(text.begin(), text.end()));
}

Result<std::string> compile(const std::string &source, const std::string &name,
                            int sm, const std::vector<std::string> &options,
                            KernelCacheReport &report) {
  NvrtcRequest request;
  request.source = source;
  request.name = name;
  request.smVersion = sm;
  request.output = NvrtcOutput::Cubin;
  request.options = options;
  NvrtcResult result = compileWithNvrtc(request);
  if (!result.ok)
    return Status::error("NVRTC cannot compile " + name + " for sm_" +
                         std::to_string(sm) + ":\n" +
                         cpu::firstLines(result.log, kDiagnosticLines));
  report.log = result.log;
  return std::move(result.image);
}
} // namespace

std::string kernelCacheKey(const std::string &source, int sm,
                           const std::vector<std::string> &options) {
  Sha256 hash;
  addField(hash, "format", kFormatVersion);
  addField(hash, "nvrtc", std::to_string(nvrtcVersion()));
  // The toolkit's headers (cuda_bf16.h, ...) are compiled in with the
  // source; another toolkit may have others even at one NVRTC version.
  addField(hash, "include", cudaIncludeDir());
  addField(hash, "sm", std::to_string(sm));
  addField(hash, "option count", std::to_string(options.size()));
  for (const std::string &option : options)
    addField(hash, "option", option);
  addField(hash, "source", source);
  return hash.hexDigest();
}

Result<std::string> compileCached(const std::string &source,
                                  const std::string &name, int sm,
                                  const std::vector<std::string> &options,
                                  KernelCacheReport *report,
                                  const std::string &cacheDir) {
  auto start = std::chrono::steady_clock::now();
  KernelCacheReport local;
  KernelCacheReport &out = report ? *report : local;
  out = KernelCacheReport();
  auto finish = [&](Result<std::string> cubin) {
    out.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    return cubin;
  };
  out.key = kernelCacheKey(source, sm, options);

  cpu::HostCompilerOptions where;
  where.cacheDir = cacheDir;
  Result<std::string> dir = cpu::hostKernelCacheDir(where);
  if (!dir.ok()) {
    // The GPU cannot run without its kernels: an unusable cache costs the
    // compile, not the run.
    out.uncached = dir.message();
    return finish(compile(source, name, sm, options, out));
  }
  Entry entry = entryOf(*dir, out.key);

  // Warm, without the lock: entries change only under it, checksum last on
  // the way in and first on the way out.
  Lookup found = lookUp(entry);
  if (found.state == EntryState::Valid) {
    out.cacheHit = true;
    out.cubinPath = entry.cubin;
    return finish(std::move(found.cubin));
  }

  cpu::CacheLock lock;
  if (Status locked = cpu::lockCacheEntry(entry.lock, lock); !locked.ok())
    return finish(locked);
  // Another process may have compiled it while this one waited.
  found = lookUp(entry);
  if (found.state == EntryState::Valid) {
    out.cacheHit = true;
    out.cubinPath = entry.cubin;
    return finish(std::move(found.cubin));
  }
  if (found.state == EntryState::Damaged) {
    removeCubin(entry);
    out.rebuilt = true;
  }

  Result<std::string> cubin = compile(source, name, sm, options, out);
  if (!cubin.ok())
    return finish(cubin);
  // The entry is written best-effort: a full disk costs the next run a
  // compile, not this one its kernels.
  Status written = writeText(entry.source, source);
  if (written.ok())
    written = writeText(entry.cubin, *cubin);
  if (written.ok())
    written = writeText(entry.checksum, sha256Hex(*cubin) + "\n");
  if (!written.ok()) {
    removeCubin(entry);
    out.uncached = written.message();
    return finish(std::move(cubin));
  }
  out.cubinPath = entry.cubin;
  return finish(std::move(cubin));
}

} // namespace cuda
} // namespace runtime
} // namespace loom
