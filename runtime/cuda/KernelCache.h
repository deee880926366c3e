//===- KernelCache.h - NVRTC cubins cached on disk --------------*- C++ -*-===//
//
// Internal to the CUDA backend. The GPU device (CudaDevice.cpp) compiles the
// kernel library when it opens and a plan's generated kernels when it loads
// them; NVRTC takes seconds for either, so cubins are kept on disk, keyed by
// the SHA-256 of everything that decides their bytes: the source, the SM
// version, NVRTC's version, the toolkit headers' directory and the options.
// The directory is the CPU backend's kernel cache (hostKernelCacheDir:
// $LOOM_KERNEL_CACHE, else $XDG_CACHE_HOME/loom/kernels, else
// ~/.cache/loom/kernels), with the same discipline as its host objects: the
// entry is written under a flock, each file through a temporary name and a
// rename, and a checksum written last, so that a torn or corrupted cubin is
// compiled again rather than loaded. Needs NVRTC, no GPU or driver.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_KERNELCACHE_H
#define LOOM_RUNTIME_CUDA_KERNELCACHE_H

#include "loom/runtime/Status.h"

#include <string>
#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

struct KernelCacheReport {
  bool cacheHit = false; // warm: the cubin came from the cache
  bool rebuilt = false;  // a damaged entry was found and compiled again
  double seconds = 0;    // wall time: the compile when cold, the read when warm
  std::string key;       // the cache key, hex SHA-256
  std::string cubinPath; // the cached cubin (empty when uncached)
  /// Why nothing was cached (an unusable cache directory); the cubin was
  /// compiled all the same. Empty when the cache was used.
  std::string uncached;
  /// NVRTC's warnings when it compiled.
  std::string log;
};

/// The cache key of `source` compiled for sm_`sm` with `options`.
std::string kernelCacheKey(const std::string &source, int sm,
                           const std::vector<std::string> &options);

/// The sm_`sm` cubin of `source` (NVRTC, compileWithNvrtc with `options`
/// after its own), from the cache when it holds a valid one. `name` is the
/// source's name in diagnostics. An NVRTC error is an error carrying NVRTC's
/// log (its first 60 lines) and leaves nothing in the cache. `cacheDir`
/// empty: hostKernelCacheDir's choice. `report` may be null.
Result<std::string> compileCached(const std::string &source,
                                  const std::string &name, int sm,
                                  const std::vector<std::string> &options,
                                  KernelCacheReport *report = nullptr,
                                  const std::string &cacheDir = "");

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_KERNELCACHE_H
