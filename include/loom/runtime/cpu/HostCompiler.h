//===- HostCompiler.h - host C++ to a cached, loaded .so --------*- C++ -*-===//
//
// The CPU backend's JIT: a plan carries its generated kernels as one host C++
// translation unit with `extern "C"` entry points. At load the backend
// compiles it with the system's C++ compiler into a shared object, dlopens it
// and looks the entry points up. Compiled objects live in an on-disk cache
// keyed by the SHA-256 of everything that decides the object's bytes (the
// source, the compiler, the flags, the host CPU when tuning for it), so only
// the first load of a plan on a machine pays for the compile.
//
// Nothing here throws or exits: a missing compiler or a failed compile is a
// Status, and the caller runs the reference kernels instead.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_HOSTCOMPILER_H
#define LOOM_RUNTIME_CPU_HOSTCOMPILER_H

#include "loom/runtime/Status.h"

#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {
namespace cpu {

struct HostCompilerOptions {
  /// The compiler; empty: $LOOM_CXX, else $CXX, else "c++" on PATH. Split at
  /// whitespace as make splits $CXX, so "ccache g++" works; a word without
  /// a '/' is looked up on PATH.
  std::string compiler;
  /// The cache directory; empty: $LOOM_KERNEL_CACHE, else
  /// $XDG_CACHE_HOME/loom/kernels, else ~/.cache/loom/kernels. Missing
  /// directories are created with mode 0700.
  std::string cacheDir;
  /// The compiler's flags; empty: defaultHostFlags().
  std::vector<std::string> flags;
};

/// -O3 -march=native -fno-math-errno -ffp-contract=off -fopenmp -fPIC -shared
/// -std=c++17.
/// Not -ffast-math: a generated kernel may differ from the reference kernel
/// only by float reassociation, and only where the kernel says so (an
/// `omp simd reduction`), never everywhere behind the author's back.
std::vector<std::string> defaultHostFlags();

struct HostCompileReport {
  bool cacheHit = false;  // warm: loaded from the cache
  bool rebuilt = false;   // a damaged entry was found and rebuilt
  double seconds = 0;     // wall time of the load (the compile when cold)
  std::string objectPath; // the cached .so
  std::string key;        // the cache key, hex SHA-256
};

/// A loaded shared object; dlclose when the last reference goes. dlopen of
/// the same path twice in one process gives the same handle, counted.
class HostModule {
public:
  ~HostModule();
  HostModule(const HostModule &) = delete;
  HostModule &operator=(const HostModule &) = delete;

  /// The address of `name` (an `extern "C"` entry point), or null.
  void *symbol(const std::string &name) const;
  /// The shared object it was loaded from.
  const std::string &path() const { return path_; }

private:
  friend struct HostModuleAccess;
  HostModule(void *handle, std::string path)
      : handle_(handle), path_(std::move(path)) {}
  void *handle_;
  std::string path_;
};

/// The compiler's identity: its resolved path (and the file it links to, if
/// any) and the first line of its `--version`; or an error Status naming the
/// compiler when there is none (the caller then runs the reference kernels,
/// with one line saying so).
Result<std::string> hostCompilerIdentity(const HostCompilerOptions &options);

/// The cache directory `options` selects, created (mode 0700) if missing and
/// checked to take new files; absolute. An error names the path and says to
/// set LOOM_KERNEL_CACHE.
Result<std::string> hostKernelCacheDir(const HostCompilerOptions &options);

/// The cache key of `source` under `options` (hex SHA-256): the format
/// version, the compiler's identity, the flags, the host CPU's identity when a
/// flag tunes for the host (`=native`) and the source. Runs `--version` but
/// compiles nothing.
Result<std::string> hostCacheKey(const std::string &source,
                                 const HostCompilerOptions &options);

/// Compiles `source` to a shared object (or finds it in the cache) and loads
/// it. The entry is `<cacheDir>/<key>.so`, `<key>.cpp` (the source, for
/// people) and `<key>.sha256` (the object's SHA-256, written last); a missing
/// or wrong checksum, a truncated object or one dlopen refuses is rebuilt.
/// Processes compiling the same key serialise on `<key>.lock`. A failed
/// compile is an error carrying the compiler's first 40 lines of output and
/// the source's path; it leaves no object in the cache. `report` may be null.
Result<std::shared_ptr<HostModule>>
compileHostModule(const std::string &source, const HostCompilerOptions &options,
                  HostCompileReport *report);

//===--- Shared with the CUDA backend's cubin cache ----------------------===//

/// An exclusive flock on a cache entry's lock file, held while this lives.
/// flock, not fcntl locks: those belong to the process, so two threads of
/// one process (two ranks) would not exclude each other.
class CacheLock {
public:
  CacheLock() = default;
  CacheLock(const CacheLock &) = delete;
  CacheLock &operator=(const CacheLock &) = delete;
  ~CacheLock();

private:
  friend Status lockCacheEntry(const std::string &path, CacheLock &lock);
  int fd_ = -1;
};
/// Takes the lock at `path` (created when missing), waiting for it.
Status lockCacheEntry(const std::string &path, CacheLock &lock);

/// The first `count` lines of `text`, with a note of how many were left
/// out (a compiler's diagnostics in an error message).
std::string firstLines(const std::string &text, int count);

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_HOSTCOMPILER_H
