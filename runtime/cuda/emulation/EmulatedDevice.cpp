//===- EmulatedDevice.cpp - the CUDA backend's device, emulated on the host -===//
//
// The `cuda-emulated` backend's device (Device.h): host memory for device
// memory, launches of the kernel library through LoomCudaKernelsEmulated,
// a plan's generated CUDA kernels compiled by the host compiler under
// CudaEmulation.h (through the CPU backend's kernel cache), and a host GEMM
// (the CPU backend's) in place of cuBLASLt. Work runs when it is enqueued:
// both streams are the host thread.
//
// It keeps the rules a GPU would enforce where breaking them would go
// unnoticed on the host: nothing may wait for the device (download) or
// stage host data (upload) while a graph is being captured, since a graph
// cannot contain either; a launch records its arguments as they are at
// capture, as CUDA graphs do.
//
//===----------------------------------------------------------------------===//

#include "Device.h"
#include "emulation/EmulatedLibrary.h"
#include "emulation/EmulatedStream.h"
#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/Trace.h"
#include "loom/runtime/cpu/Float16.h"
#include "loom/runtime/cpu/HostCompiler.h"
#include "loom/runtime/cpu/Kernels.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>

#include <unistd.h>

namespace loom {
namespace runtime {
namespace cuda {

extern const char *const kEmulationHeaderSource; // KernelLibrarySource.cpp

Device::~Device() = default;

namespace {

/// The arguments as the emulation header's Arg (the same layout).
struct EmuArg {
  uint8_t kind;
  union {
    void *p;
    int64_t i64;
  };
};
using EmuLaunchFn = int (*)(const char *, const EmuArg *, size_t,
                            const unsigned *, const unsigned *, size_t, char *,
                            size_t);

class EmulatedDevice final : public Device {
public:
  std::string describe() const override {
    return "CUDA emulation on the host (no GPU)";
  }
  bool emulated() const override { return true; }

  Result<void *> allocate(size_t bytes, const std::string &what) override {
    // The emulated device's memory is the host's: more than the machine
    // has is refused as a GPU refuses more than it has, saying how much
    // there is (and without asking the allocator for it).
    // (Physical memory, not a container's limit: a request between the two
    // is the allocator's to refuse.)
    long page = sysconf(_SC_PAGESIZE), pages = sysconf(_SC_PHYS_PAGES),
         avail = sysconf(_SC_AVPHYS_PAGES);
    bool known = page > 0 && pages > 0 && avail >= 0;
    size_t total = known ? size_t(pages) * size_t(page) : 0,
           available = known ? size_t(avail) * size_t(page) : 0;
    auto refuse = [&] {
      return Status::error(
          "cannot allocate " + std::to_string(bytes) + " bytes for " + what +
          " on the emulated device (host memory)" +
          (known ? ": " + std::to_string(available) + " bytes of " +
                       std::to_string(total) + " are free"
                 : std::string()));
    };
    if (known && bytes > total)
      return refuse();
    void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!p)
      return refuse();
    // Not zeroed, as cudaMalloc's memory is not: the executor clears what
    // must start at zero.
    std::memset(p, 0xA5, (bytes + 255) / 256 * 256 + 256);
    return p;
  }
  void release(void *p) override { std::free(p); }

  Status loadPlanKernels(const std::string &cudaSource,
                         const std::vector<std::string> &entries,
                         Tracer *tracer, int traceTrack) override;

  Status launch(const Launch &l) override {
    if (capturing) {
      captured.push_back([this, l] { return run(l); });
      return Status::success();
    }
    return run(l);
  }
  Status gemm(const GemmCall &call) override {
    if (capturing) {
      captured.push_back([this, call] { return runGemm(call); });
      return Status::success();
    }
    return runGemm(call);
  }
  Status clear(void *p, size_t bytes, Stream stream) override {
    if (Status s = waitFor(stream); !s.ok())
      return s;
    auto work = [p, bytes] {
      std::memset(p, 0, bytes);
      return Status::success();
    };
    if (capturing) {
      captured.push_back(work);
      return Status::success();
    }
    return work();
  }
  Status copy(void *dst, const void *src, size_t bytes,
              Stream stream) override {
    if (Status s = waitFor(stream); !s.ok())
      return s;
    auto work = [dst, src, bytes] {
      std::memmove(dst, src, bytes);
      return Status::success();
    };
    if (capturing) {
      captured.push_back(work);
      return Status::success();
    }
    return work();
  }
  Status upload(void *dst, const void *src, size_t bytes,
                Stream stream) override {
    if (capturing)
      return Status::error("an upload from host memory inside a captured "
                           "graph (a graph cannot stage host data)");
    if (Status s = waitFor(stream); !s.ok())
      return s;
    std::memcpy(dst, src, bytes);
    return Status::success();
  }
  Status download(void *dst, const void *src, size_t bytes,
                  Stream stream) override {
    if (capturing)
      return Status::error("a download inside a captured graph (the host "
                           "cannot wait for the device while capturing)");
    if (Status s = waitFor(stream); !s.ok())
      return s;
    std::memcpy(dst, src, bytes);
    return Status::success();
  }
  /// The compute stream's work is done when enqueued; the comm stream's
  /// queued work runs when someone waits for it.
  Status order(Stream signaller, Stream) override {
    return waitFor(signaller);
  }
  Status synchronize() override {
    if (capturing)
      return Status::error("a synchronisation inside a captured graph");
    return commStream.drain();
  }
  void *nativeStream(Stream stream) override {
    return stream == Stream::Comm ? static_cast<EmulatedStream *>(&commStream)
                                  : nullptr;
  }

  bool supportsGraphs() const override { return true; }
  Status beginCapture() override {
    if (capturing)
      return Status::error("a graph capture inside another");
    capturing = true;
    captured.clear();
    return Status::success();
  }
  Status endCapture(int *graph) override {
    if (!capturing)
      return Status::error("endCapture without beginCapture");
    capturing = false;
    if (*graph >= 0 && size_t(*graph) < graphs.size()) {
      graphs[size_t(*graph)] = std::move(captured);
    } else {
      *graph = int(graphs.size());
      graphs.push_back(std::move(captured));
    }
    captured.clear();
    return Status::success();
  }
  Status replay(int graph) override {
    if (graph < 0 || size_t(graph) >= graphs.size())
      return Status::error("there is no graph " + std::to_string(graph));
    for (const auto &work : graphs[size_t(graph)])
      if (Status s = work(); !s.ok())
        return s;
    return Status::success();
  }

private:
  /// The comm stream's queue (EmulatedStream.h).
  class QueuedStream final : public EmulatedStream {
  public:
    void enqueue(std::function<Status()> work) override {
      queued.push_back(std::move(work));
    }
    Status drain() {
      std::vector<std::function<Status()>> now = std::move(queued);
      queued.clear();
      for (auto &work : now)
        if (Status s = work(); !s.ok())
          return s;
      return Status::success();
    }

  private:
    std::vector<std::function<Status()>> queued;
  };
  /// Work on `stream` comes after the comm stream's queue when it is the
  /// comm stream.
  Status waitFor(Stream stream) {
    return stream == Stream::Comm ? commStream.drain() : Status::success();
  }
  Status run(const Launch &l);
  Status runGemm(const GemmCall &call);

  QueuedStream commStream;

  bool capturing = false;
  std::vector<std::function<Status()>> captured;
  std::vector<std::vector<std::function<Status()>>> graphs;
  std::shared_ptr<cpu::HostModule> planModule;
  EmuLaunchFn planLaunch = nullptr;
};

Status EmulatedDevice::run(const Launch &l) {
  std::string error;
  if (launchEmulatedLibraryKernel(l, error))
    return error.empty() ? Status::success() : Status::error(error);
  if (!planLaunch)
    return Status::error("no kernel '" + l.kernel +
                         "' in the kernel library, and the plan's kernels "
                         "are not loaded");
  std::vector<EmuArg> args(l.args.size());
  for (size_t i = 0; i < l.args.size(); ++i) {
    args[i].kind = uint8_t(l.args[i].kind);
    args[i].i64 = l.args[i].i64;
  }
  unsigned grid[3] = {l.grid.x, l.grid.y, l.grid.z};
  unsigned block[3] = {l.block.x, l.block.y, l.block.z};
  char why[512] = {0};
  int rc = planLaunch(l.kernel.c_str(), args.data(), args.size(), grid, block,
                      l.sharedBytes, why, sizeof(why));
  if (rc == 0)
    return Status::success();
  if (rc == 2)
    return Status::error("no kernel '" + l.kernel +
                         "' in the kernel library or the plan's kernels");
  return Status::error(why);
}

Status EmulatedDevice::runGemm(const GemmCall &call) {
  if (!gemmTypesSupported(call.aType, call.bType, call.cType))
    return Status::error("a GEMM of these operand types is not one cuBLASLt "
                         "runs (A and B alike; C theirs, or f32)");
  const MatmulShape &s = call.shape;
  int64_t aElems = (s.broadcastA ? 1 : s.batch) * s.m * s.k;
  int64_t bElems = (s.broadcastB ? 1 : s.batch) * s.k * s.n;
  int64_t cElems = s.batch * s.m * s.n;
  // 16-bit operands through f32 copies, as a GEMM accumulating in f32 reads
  // them; the f32 path works in place.
  auto widen = [](const void *p, plan::DType t, int64_t n,
                  std::vector<float> &into) -> const float * {
    if (!isFloat16(t))
      return static_cast<const float *>(p);
    into.resize(size_t(n));
    const auto *bits = static_cast<const uint16_t *>(p);
    for (int64_t i = 0; i < n; ++i)
      into[size_t(i)] = t == plan::DType::BF16 ? cpu::bf16ToFloat(bits[i])
                                               : cpu::f16ToFloat(bits[i]);
    return into.data();
  };
  std::vector<float> aw, bw, cw;
  const float *a = widen(call.a, call.aType, aElems, aw);
  const float *b = widen(call.b, call.bType, bElems, bw);
  float *c = const_cast<float *>(widen(call.c, call.cType, cElems, cw));
  if (call.alpha != 1)
    return Status::error("the emulated GEMM takes alpha = 1 only");
  cpu::matmul<float>(s, a, b, c, call.beta);
  if (isFloat16(call.cType)) {
    auto *bits = static_cast<uint16_t *>(call.c);
    for (int64_t i = 0; i < cElems; ++i)
      bits[i] = call.cType == plan::DType::BF16 ? cpu::floatToBf16(c[i])
                                                : cpu::floatToF16(c[i]);
  }
  return Status::success();
}

Status EmulatedDevice::loadPlanKernels(const std::string &cudaSource,
                                       const std::vector<std::string> &entries,
                                       Tracer *tracer, int traceTrack) {
  // The plan's CUDA C++ as host C++: the emulation header, the source, and
  // a registration per entry, compiled and cached like the CPU backend's
  // generated kernels.
  std::string source = "#define LOOM_EMULATION_MODULE 1\n";
  source += kEmulationHeaderSource;
  source += "\n" + cudaSource + "\n";
  for (const std::string &e : entries)
    source += "LOOM_KERNEL_ENTRY(" + e + ")\n";
  int64_t begin = tracer ? tracer->nowUs() : 0;
  cpu::HostCompileReport report;
  Result<std::shared_ptr<cpu::HostModule>> module =
      cpu::compileHostModule(source, {}, &report);
  if (tracer)
    tracer->compileKernels(traceTrack, begin, tracer->nowUs() - begin,
                           report.cacheHit, report.seconds,
                           int64_t(entries.size()));
  if (!module.ok())
    return Status::error("the plan's CUDA kernels do not compile under "
                         "emulation: " +
                         module.message());
  auto launch =
      reinterpret_cast<EmuLaunchFn>((*module)->symbol("loom_emu_launch"));
  if (!launch)
    return Status::error("the emulated plan kernels have no loom_emu_launch");
  if (runtimeNotes())
  std::fprintf(stderr,
               "loom: %zu generated kernels (CUDA C++, emulated on the host) "
               "%s in %.2f s\n",
               entries.size(),
               report.cacheHit ? "loaded from the cache" : "compiled",
               report.seconds);
  planModule = *module;
  planLaunch = launch;
  return Status::success();
}

} // namespace

std::unique_ptr<Device> openEmulatedDevice() {
  return std::make_unique<EmulatedDevice>();
}

#if !defined(LOOM_HAVE_CUDA)
Result<std::unique_ptr<Device>> openCudaDevice(int) {
  return Status::error(
      "this Loom was built without the CUDA toolkit, so it has no GPU "
      "backend (configure with a CUDA 12+ toolkit: -DCUDAToolkit_ROOT=...; "
      "`--backend cuda-emulated` runs the CUDA kernels on the host)");
}
#endif

} // namespace cuda
} // namespace runtime
} // namespace loom
