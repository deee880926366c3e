//===- CudaDevice.cpp - the CUDA backend's device: a real NVIDIA GPU
//-------===//
//
// Device.h on a GPU, through the CUDA runtime API and cuBLASLt only: the
// binaries that link this run in CI on machines without libcuda.so.1, so
// nothing here may need the driver library at load. The static cudart opens
// the driver when first called; without one, cudaGetDeviceCount fails and
// openCudaDevice says there is no usable GPU.
//
//  - Kernels: the kernel library (kKernelLibrarySource) is compiled with
//    NVRTC for the device's sm_XY when the device opens, a plan's generated
//    kernels when loadPlanKernels runs, both through the on-disk cubin cache
//    (KernelCache.h), and loaded with cudaLibraryLoadData. A launch looks
//    its entry up by name, in the library then in the plan's modules, once
//    (name -> cudaKernel_t), and goes to cudaLaunchKernel on the compute
//    stream with a pointer to each argument's value.
//  - Streams: compute and comm, both non-blocking (no implicit ordering with
//    the legacy default stream, which nothing here uses); order() records an
//    event on one and makes the other wait for it on the device.
//  - Uploads go through two pinned staging buffers used in turn, in chunks
//    of at most 64 MiB: pageable memory would make each copy synchronous
//    and unoverlapped. A buffer is refilled only after the event recorded
//    behind its last copy has passed.
//  - GEMMs: cuBLASLt with FP32 compute (never TF32: f32 results must be
//    comparable to the CPU's), one plan (descriptor, layouts, algorithm) per
//    shape, cached. See gemm() for the row-major mapping.
//  - Graphs: stream capture of the compute stream in thread-local mode;
//    a recaptured graph updates its executable graph in place when CUDA
//    allows it (cudaGraphExecUpdate), else it is instantiated again.
//
// One thread uses a device at a time (its rank's); every entry point makes
// the device current first, so ranks of one process may drive different
// GPUs from different threads.
//
//===----------------------------------------------------------------------===//

#include "Device.h"
#include "KernelCache.h"

#include "loom/runtime/ExecutorSupport.h"
#include "loom/runtime/Trace.h"
#include "loom/runtime/cuda/PlanKernels.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>

namespace loom {
namespace runtime {
namespace cuda {

extern const char *const kKernelLibrarySource; // KernelLibrarySource.cpp

namespace {

/// cuBLASLt's workspace: Hopper's fastest GEMM kernels want 32 MiB (llm.c,
/// GPU-NOTES.md 1.2); smaller GPUs are content with less.
constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;
/// The largest piece of an upload staged at once, per staging buffer.
constexpr size_t kStagingChunkBytes = size_t(64) << 20;
/// Dynamic shared memory a kernel may use without opting in.
constexpr size_t kDefaultDynamicSharedBytes = size_t(48) << 10;

std::string cudaText(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

std::string cublasText(cublasStatus_t s) {
  return std::string(cublasLtGetStatusName(s)) + ": " +
         cublasLtGetStatusString(s);
}

std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", double(bytes) / (1 << 30));
  return text;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

const char *dtypeName(plan::DType t) { return plan::EnumNameDType(t); }

bool cudaTypeOf(plan::DType t, cudaDataType_t &out) {
  switch (t) {
  case plan::DType::F32:
    out = CUDA_R_32F;
    return true;
  case plan::DType::BF16:
    out = CUDA_R_16BF;
    return true;
  case plan::DType::F16:
    out = CUDA_R_16F;
    return true;
  default:
    return false;
  }
}

size_t bytesOf(plan::DType t) { return t == plan::DType::F32 ? 4 : 2; }

/// The alignment cuBLASLt may assume of an operand: the largest power of
/// two, up to the 256 it asks for by default, dividing its address and (for
/// a batch) its batch stride in bytes. A view into an arena can be less
/// aligned than cudaMalloc's 256, and an algorithm chosen for 256 would
/// fail on it.
uint32_t alignmentOf(const void *p, uint64_t strideBytes) {
  uint64_t bits = uint64_t(reinterpret_cast<uintptr_t>(p)) | strideBytes | 256;
  return uint32_t(bits & (~bits + 1));
}

/// What decides a GEMM's cuBLASLt plan.
using GemmKey =
    std::tuple<int64_t, int64_t, int64_t, int64_t, unsigned, plan::DType,
               plan::DType, plan::DType, uint32_t, uint32_t, uint32_t>;

/// One cached cuBLASLt plan. D shares C's layout (the output is written in
/// place over C, which cuBLASLt allows when both layouts are equal).
struct GemmPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t first = nullptr;  // cuBLASLt's A: our b
  cublasLtMatrixLayout_t second = nullptr; // cuBLASLt's B: our a
  cublasLtMatrixLayout_t out = nullptr;    // C and D: our c
  cublasLtMatmulAlgo_t algo{};
  GemmPlan() = default;
  GemmPlan(const GemmPlan &) = delete;
  GemmPlan &operator=(const GemmPlan &) = delete;
  ~GemmPlan() {
    for (cublasLtMatrixLayout_t layout : {first, second, out})
      if (layout)
        cublasLtMatrixLayoutDestroy(layout);
    if (desc)
      cublasLtMatmulDescDestroy(desc);
  }
};

std::string gemmText(const GemmCall &call) {
  const MatmulShape &s = call.shape;
  std::string text = "GEMM " + std::to_string(s.batch) + "x" +
                     std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                     std::to_string(s.k) + " (batch x m x n x k";
  if (s.transposeA)
    text += ", a transposed";
  if (s.transposeB)
    text += ", b transposed";
  if (s.broadcastA)
    text += ", a broadcast";
  if (s.broadcastB)
    text += ", b broadcast";
  return text + "; a " + dtypeName(call.aType) + ", b " +
         dtypeName(call.bType) + ", c " + dtypeName(call.cType) + ")";
}

class CudaDevice final : public Device {
public:
  CudaDevice(int ordinal, const cudaDeviceProp &prop)
      : ordinal_(ordinal), name_(prop.name), sm_(prop.major * 10 + prop.minor),
        totalBytes_(prop.totalGlobalMem) {
    description_ = name_ + " (sm_" + std::to_string(sm_) + ", " +
                   gib(totalBytes_) + ", device " + std::to_string(ordinal_) +
                   ")";
  }
  ~CudaDevice() override;

  /// Streams, events, cuBLASLt and the kernel library.
  Status open();

  std::string describe() const override { return description_; }
  bool emulated() const override { return false; }

  Result<void *> allocate(size_t bytes, const std::string &what) override;
  void release(void *p) override;
  Status loadPlanKernels(const std::string &cudaSource,
                         const std::vector<std::string> &entries,
                         Tracer *tracer, int traceTrack) override;
  Status launch(const Launch &launch) override;
  Status gemm(const GemmCall &call) override;
  Status clear(void *p, size_t bytes, Stream stream) override;
  Status copy(void *dst, const void *src, size_t bytes, Stream stream) override;
  Status upload(void *dst, const void *src, size_t bytes,
                Stream stream) override;
  Status download(void *dst, const void *src, size_t bytes,
                  Stream stream) override;
  Status order(Stream signaller, Stream waiter) override;
  Status synchronize() override;
  void *nativeStream(Stream stream) override { return streamOf(stream); }
  bool supportsGraphs() const override { return true; }
  Status beginCapture() override;
  Status endCapture(int *graph) override;
  Status replay(int graph) override;

private:
  /// An error naming what failed on this device, or success.
  Status check(cudaError_t e, const std::string &what) const {
    if (e == cudaSuccess)
      return Status::success();
    return Status::error(what + " on " + description_ + ": " + cudaText(e));
  }
  Status check(cublasStatus_t s, const std::string &what) const {
    if (s == CUBLAS_STATUS_SUCCESS)
      return Status::success();
    return Status::error(what + " on " + description_ + ": " + cublasText(s));
  }
  /// Makes this device the calling thread's current one.
  Status current() const {
    return check(cudaSetDevice(ordinal_), "cudaSetDevice");
  }
  cudaStream_t streamOf(Stream s) const {
    return s == Stream::Comm ? comm_ : compute_;
  }
  /// Refuses what a graph cannot hold while one is being captured.
  Status notCapturing(const std::string &what) const {
    if (!capturing_)
      return Status::success();
    return Status::error(what + " while a CUDA graph is being captured on " +
                         description_ + " (a graph holds device work only)");
  }

  struct Module {
    std::string cubin; // kept while the library is loaded
    cudaLibrary_t library = nullptr;
  };
  Result<std::unique_ptr<Module>> loadModule(std::string cubin,
                                             const std::string &what);

  struct Kernel {
    cudaKernel_t kernel = nullptr;
    size_t sharedLimit = kDefaultDynamicSharedBytes;
  };
  Result<Kernel *> kernelNamed(const std::string &name);

  Result<GemmPlan *> gemmPlanFor(const GemmCall &call, cudaDataType_t aType,
                                 cudaDataType_t bType, cudaDataType_t cType);

  int ordinal_;
  std::string name_, description_;
  int sm_;
  size_t totalBytes_;

  cudaStream_t compute_ = nullptr, comm_ = nullptr;
  cudaEvent_t computeMark_ = nullptr, commMark_ = nullptr; // order()

  struct Staging {
    void *host = nullptr;
    size_t bytes = 0;
    cudaEvent_t drained = nullptr; // recorded behind the last copy out
    bool pending = false;
  };
  Staging staging_[2];
  int nextStaging_ = 0;

  std::unique_ptr<Module> library_;
  std::vector<std::unique_ptr<Module>> planModules_;
  std::unordered_map<std::string, Kernel> kernels_;
  std::vector<void *> argPointers_;

  cublasLtHandle_t lt_ = nullptr;
  void *workspace_ = nullptr;
  std::map<GemmKey, std::unique_ptr<GemmPlan>> gemmPlans_;

  bool capturing_ = false;
  std::vector<void *> releasedWhileCapturing_;
  std::vector<cudaGraphExec_t> graphs_;
};

CudaDevice::~CudaDevice() {
  // Errors are ignored: at exit the runtime may already be unloading, and
  // there is no one left to tell.
  cudaSetDevice(ordinal_);
  if (capturing_) {
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(compute_, &graph) == cudaSuccess && graph)
      cudaGraphDestroy(graph);
  }
  if (compute_)
    cudaStreamSynchronize(compute_);
  if (comm_)
    cudaStreamSynchronize(comm_);
  for (cudaGraphExec_t exec : graphs_)
    if (exec)
      cudaGraphExecDestroy(exec);
  gemmPlans_.clear();
  if (lt_)
    cublasLtDestroy(lt_);
  for (void *p : releasedWhileCapturing_)
    cudaFree(p);
  if (workspace_)
    cudaFree(workspace_);
  for (Staging &s : staging_) {
    if (s.host)
      cudaFreeHost(s.host);
    if (s.drained)
      cudaEventDestroy(s.drained);
  }
  for (auto &module : planModules_)
    cudaLibraryUnload(module->library);
  if (library_)
    cudaLibraryUnload(library_->library);
  for (cudaEvent_t e : {computeMark_, commMark_})
    if (e)
      cudaEventDestroy(e);
  for (cudaStream_t s : {compute_, comm_})
    if (s)
      cudaStreamDestroy(s);
}

Status CudaDevice::open() {
  if (Status s = current(); !s.ok())
    return s;
  for (cudaStream_t *s : {&compute_, &comm_})
    if (Status made = check(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking),
                            "cudaStreamCreateWithFlags");
        !made.ok())
      return made;
  for (cudaEvent_t *e :
       {&computeMark_, &commMark_, &staging_[0].drained, &staging_[1].drained})
    if (Status made = check(cudaEventCreateWithFlags(e, cudaEventDisableTiming),
                            "cudaEventCreateWithFlags");
        !made.ok())
      return made;
  if (Status made = check(cublasLtCreate(&lt_), "cublasLtCreate"); !made.ok())
    return made;
  if (Status made = check(cudaMalloc(&workspace_, kGemmWorkspaceBytes),
                          "cudaMalloc of cuBLASLt's 32 MiB workspace");
      !made.ok())
    return made;

  KernelCacheReport report;
  Result<std::string> cubin = compileCached(
      kKernelLibrarySource, "loom-kernel-library.cu", sm_, {}, &report);
  if (!cubin.ok())
    return Status::error("the CUDA kernel library does not compile for " +
                         description_ + ": " + cubin.message());
  if (!report.cacheHit && runtimeNotes())
    std::fprintf(
        stderr,
        "loom: the CUDA kernel library (sm_%d) compiled in %.2f s%s%s\n", sm_,
        report.seconds,
        report.cubinPath.empty() ? ", not cached: " : ", cached as ",
        report.cubinPath.empty() ? report.uncached.c_str()
                                 : report.cubinPath.c_str());
  Result<std::unique_ptr<Module>> module =
      loadModule(std::move(*cubin), "the CUDA kernel library");
  if (!module.ok())
    return Status::error(module.message());
  library_ = std::move(*module);
  return Status::success();
}

Result<std::unique_ptr<CudaDevice::Module>>
CudaDevice::loadModule(std::string cubin, const std::string &what) {
  auto module = std::make_unique<Module>();
  module->cubin = std::move(cubin);
  if (Status loaded =
          check(cudaLibraryLoadData(&module->library, module->cubin.data(),
                                    nullptr, nullptr, 0, nullptr, nullptr, 0),
                "cudaLibraryLoadData of " + what);
      !loaded.ok())
    return loaded;
  return module;
}

Result<void *> CudaDevice::allocate(size_t bytes, const std::string &what) {
  if (Status s = notCapturing("cannot allocate " + what); !s.ok())
    return s;
  if (Status s = current(); !s.ok())
    return s;
  void *p = nullptr;
  // cudaMalloc(0) gives null; a tensor of no elements still gets an address.
  cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError(); // not sticky: clear it for the calls that follow
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    return Status::error("cannot allocate " + std::to_string(bytes) +
                         " bytes for " + what + " on " + description_ + ": " +
                         std::to_string(free) + " bytes of " +
                         std::to_string(total) + " are free");
  }
  if (Status s = check(e, "cudaMalloc of " + std::to_string(bytes) +
                              " bytes for " + what);
      !s.ok())
    return s;
  // Device.h promises 256 bytes; cudaMalloc gives at least that. Checked,
  // not asserted, so that a release build would say so too.
  if (reinterpret_cast<uintptr_t>(p) % 256 != 0) {
    cudaFree(p);
    return Status::error("cudaMalloc returned an address not 256-byte "
                         "aligned for " +
                         what + " on " + description_);
  }
  return p;
}

void CudaDevice::release(void *p) {
  if (!p)
    return;
  // cudaFree waits for the device, which a capture forbids: free it after.
  if (capturing_) {
    releasedWhileCapturing_.push_back(p);
    return;
  }
  cudaSetDevice(ordinal_);
  cudaFree(p);
}

Status CudaDevice::loadPlanKernels(const std::string &cudaSource,
                                   const std::vector<std::string> &entries,
                                   Tracer *tracer, int traceTrack) {
  if (entries.empty())
    return Status::success();
  if (Status s = notCapturing("cannot load kernels"); !s.ok())
    return s;
  if (Status s = current(); !s.ok())
    return s;
  int64_t begin = tracer ? tracer->nowUs() : 0;
  auto start = std::chrono::steady_clock::now();
  KernelCacheReport report;
  Result<std::string> cubin =
      compileCached(cudaSource, "plan-kernels.cu", sm_, {}, &report);
  if (tracer)
    tracer->compileKernels(traceTrack, begin, tracer->nowUs() - begin,
                           report.cacheHit, report.seconds,
                           int64_t(entries.size()));
  if (!cubin.ok())
    return Status::error("the plan's " + std::to_string(entries.size()) +
                         " generated kernels do not compile for sm_" +
                         std::to_string(sm_) + ": " + cubin.message());
  for (const std::string &entry : entries)
    if (!imageHasEntry(*cubin, NvrtcOutput::Cubin, entry))
      return Status::error(
          "the plan's generated kernels have no entry point '" + entry +
          "' (compiled for sm_" + std::to_string(sm_) + ")");
  Result<std::unique_ptr<Module>> module =
      loadModule(std::move(*cubin), "the plan's generated kernels");
  if (!module.ok())
    return Status::error(module.message());
  std::vector<Kernel> found(entries.size());
  for (size_t i = 0; i < entries.size(); ++i)
    if (Status got =
            check(cudaLibraryGetKernel(&found[i].kernel, (*module)->library,
                                       entries[i].c_str()),
                  "cudaLibraryGetKernel(" + entries[i] + ")");
        !got.ok()) {
      cudaLibraryUnload((*module)->library);
      return got;
    }
  // The plan's kernel of a name wins over an earlier plan's.
  for (size_t i = 0; i < entries.size(); ++i)
    kernels_[entries[i]] = found[i];
  planModules_.push_back(std::move(*module));
  double seconds = secondsSince(start);
  if (!runtimeNotes()) {
    // A job's rank other than 0: rank 0 says it.
  } else if (report.cacheHit)
    std::fprintf(stderr,
                 "loom: %zu generated kernels (CUDA, sm_%d) loaded from the "
                 "cache in %.2f s\n",
                 entries.size(), sm_, seconds);
  else
    std::fprintf(stderr,
                 "loom: %zu generated kernels (CUDA, sm_%d) compiled in %.2f "
                 "s%s%s%s\n",
                 entries.size(), sm_, seconds,
                 report.rebuilt ? " (a damaged cache entry was rebuilt)" : "",
                 report.cubinPath.empty() ? ", not cached: " : ", cached as ",
                 report.cubinPath.empty() ? report.uncached.c_str()
                                          : report.cubinPath.c_str());
  return Status::success();
}

Result<CudaDevice::Kernel *> CudaDevice::kernelNamed(const std::string &name) {
  auto it = kernels_.find(name);
  if (it != kernels_.end())
    return &it->second;
  // Looked for in the images first: a failed cudaLibraryGetKernel would
  // leave an error behind for cudaGetLastError.
  const Module *holder = nullptr;
  if (library_ && imageHasEntry(library_->cubin, NvrtcOutput::Cubin, name))
    holder = library_.get();
  for (auto m = planModules_.rbegin(); !holder && m != planModules_.rend(); ++m)
    if (imageHasEntry((*m)->cubin, NvrtcOutput::Cubin, name))
      holder = m->get();
  if (!holder)
    return Status::error("no kernel '" + name +
                         "' in the CUDA kernel library or the plan's "
                         "generated kernels");
  Kernel kernel;
  if (Status s = check(
          cudaLibraryGetKernel(&kernel.kernel, holder->library, name.c_str()),
          "cudaLibraryGetKernel(" + name + ")");
      !s.ok())
    return s;
  return &kernels_.emplace(name, kernel).first->second;
}

Status CudaDevice::launch(const Launch &l) {
  if (l.block.x == 0 || l.block.y == 0 || l.block.z == 0)
    return Status::error("kernel " + l.kernel +
                         " launched with an empty block");
  // No blocks, no work (a tensor of no elements).
  if (l.grid.x == 0 || l.grid.y == 0 || l.grid.z == 0)
    return Status::success();
  if (Status s = current(); !s.ok())
    return s;
  Result<Kernel *> kernel = kernelNamed(l.kernel);
  if (!kernel.ok())
    return Status::error(kernel.message());
  Kernel &k = **kernel;
  if (l.sharedBytes > k.sharedLimit) {
    if (l.sharedBytes > size_t(INT_MAX))
      return Status::error("kernel " + l.kernel + " asks for " +
                           std::to_string(l.sharedBytes) +
                           " bytes of shared memory");
    // Past 48 KiB a kernel must opt in; the device's limit decides.
    if (Status s =
            check(cudaKernelSetAttributeForDevice(
                      k.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                      int(l.sharedBytes), ordinal_),
                  "kernel " + l.kernel + " asking for " +
                      std::to_string(l.sharedBytes) +
                      " bytes of dynamic shared memory");
        !s.ok())
      return s;
    k.sharedLimit = l.sharedBytes;
  }
  // cudaLaunchKernel reads each argument through a pointer to its value and
  // copies it before it returns (and into the graph when capturing).
  argPointers_.resize(l.args.size());
  for (size_t i = 0; i < l.args.size(); ++i) {
    KernelArg &a = const_cast<KernelArg &>(l.args[i]);
    switch (a.kind) {
    case KernelArg::Pointer:
      argPointers_[i] = &a.p;
      break;
    case KernelArg::I32:
      argPointers_[i] = &a.i32;
      break;
    case KernelArg::I64:
      argPointers_[i] = &a.i64;
      break;
    case KernelArg::F32:
      argPointers_[i] = &a.f32;
      break;
    case KernelArg::F64:
      argPointers_[i] = &a.f64;
      break;
    }
  }
  cudaError_t e = cudaLaunchKernel(
      reinterpret_cast<const void *>(k.kernel),
      dim3(l.grid.x, l.grid.y, l.grid.z), dim3(l.block.x, l.block.y, l.block.z),
      argPointers_.data(), l.sharedBytes, compute_);
  if (e != cudaSuccess) {
    cudaGetLastError(); // a launch error is not sticky; later launches may run
    return Status::error(
        "cannot launch kernel " + l.kernel + " (grid " +
        std::to_string(l.grid.x) + "x" + std::to_string(l.grid.y) + "x" +
        std::to_string(l.grid.z) + ", block " + std::to_string(l.block.x) +
        "x" + std::to_string(l.block.y) + "x" + std::to_string(l.block.z) +
        ", " + std::to_string(l.sharedBytes) + " bytes of shared memory) on " +
        description_ + ": " + cudaText(e));
  }
  return Status::success();
}

// Row-major C = op(A) · op(B) is, read as column-major, Cᵀ = op(B)ᵀ · op(A)ᵀ:
// a row-major R x C matrix is the column-major C x R matrix with leading
// dimension C, its transpose. So cuBLASLt (column-major) is handed our b as
// its A and our a as its B, each with its own transpose flag, and computes
// the n x m column-major D that is our m x n row-major c:
//   cuBLASLt A = b: rows (transB ? k : n), cols (transB ? n : k), op transB
//   cuBLASLt B = a: rows (transA ? m : k), cols (transA ? k : m), op transA
//   C = D = c:      rows n, cols m
// each with its leading dimension equal to its rows. A batch is a strided
// batch of all three; a broadcast side has batch stride 0.
Result<GemmPlan *> CudaDevice::gemmPlanFor(const GemmCall &call,
                                           cudaDataType_t aType,
                                           cudaDataType_t bType,
                                           cudaDataType_t cType) {
  const MatmulShape &s = call.shape;
  uint64_t aStride = s.broadcastA ? 0 : uint64_t(s.m * s.k);
  uint64_t bStride = s.broadcastB ? 0 : uint64_t(s.k * s.n);
  uint64_t cStride = uint64_t(s.m * s.n);
  bool batched = s.batch > 1;
  uint32_t aAlign =
      alignmentOf(call.a, batched ? aStride * bytesOf(call.aType) : 0);
  uint32_t bAlign =
      alignmentOf(call.b, batched ? bStride * bytesOf(call.bType) : 0);
  uint32_t cAlign =
      alignmentOf(call.c, batched ? cStride * bytesOf(call.cType) : 0);
  unsigned flags = unsigned(s.transposeA) | unsigned(s.transposeB) << 1 |
                   unsigned(s.broadcastA) << 2 | unsigned(s.broadcastB) << 3 |
                   unsigned(call.beta != 0) << 4;
  GemmKey key{s.batch,    s.m,        s.n,    s.k,    flags, call.aType,
              call.bType, call.cType, aAlign, bAlign, cAlign};
  auto it = gemmPlans_.find(key);
  if (it != gemmPlans_.end())
    return it->second.get();

  std::string what = gemmText(call);
  auto plan = std::make_unique<GemmPlan>();
  if (Status st = check(
          cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
          "cublasLtMatmulDescCreate for the " + what);
      !st.ok())
    return st;
  int32_t opFirst = s.transposeB ? CUBLAS_OP_T : CUBLAS_OP_N;
  int32_t opSecond = s.transposeA ? CUBLAS_OP_T : CUBLAS_OP_N;
  for (auto [attr, value] :
       {std::make_pair(CUBLASLT_MATMUL_DESC_TRANSA, &opFirst),
        std::make_pair(CUBLASLT_MATMUL_DESC_TRANSB, &opSecond)})
    if (Status st = check(cublasLtMatmulDescSetAttribute(
                              plan->desc, attr, value, sizeof(int32_t)),
                          "cublasLtMatmulDescSetAttribute for the " + what);
        !st.ok())
      return st;

  struct Side {
    cublasLtMatrixLayout_t *layout;
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t stride;
  };
  uint64_t k = uint64_t(s.k), m = uint64_t(s.m), n = uint64_t(s.n);
  Side sides[] = {
      {&plan->first, bType, s.transposeB ? k : n, s.transposeB ? n : k,
       int64_t(bStride)},
      {&plan->second, aType, s.transposeA ? m : k, s.transposeA ? k : m,
       int64_t(aStride)},
      {&plan->out, cType, n, m, int64_t(cStride)},
  };
  int32_t batch = int32_t(s.batch);
  for (const Side &side : sides) {
    if (Status st =
            check(cublasLtMatrixLayoutCreate(side.layout, side.type, side.rows,
                                             side.cols, int64_t(side.rows)),
                  "cublasLtMatrixLayoutCreate for the " + what);
        !st.ok())
      return st;
    if (!batched)
      continue;
    if (Status st = check(cublasLtMatrixLayoutSetAttribute(
                              *side.layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                              &batch, sizeof batch),
                          "the batch count of the " + what);
        !st.ok())
      return st;
    if (Status st =
            check(cublasLtMatrixLayoutSetAttribute(
                      *side.layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                      &side.stride, sizeof side.stride),
                  "the batch stride of the " + what);
        !st.ok())
      return st;
  }

  cublasLtMatmulPreference_t preference = nullptr;
  if (Status st = check(cublasLtMatmulPreferenceCreate(&preference),
                        "cublasLtMatmulPreferenceCreate for the " + what);
      !st.ok())
    return st;
  uint64_t workspace = kGemmWorkspaceBytes;
  cublasStatus_t set = cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
      sizeof workspace);
  // cuBLASLt's A is our b, its B our a; C and D are our c.
  std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, bAlign},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, aAlign},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, cAlign},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, cAlign}};
  for (auto &[attr, bytes] : alignments)
    if (set == CUBLAS_STATUS_SUCCESS)
      set = cublasLtMatmulPreferenceSetAttribute(preference, attr, &bytes,
                                                 sizeof bytes);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  if (set == CUBLAS_STATUS_SUCCESS)
    set = cublasLtMatmulAlgoGetHeuristic(lt_, plan->desc, plan->first,
                                         plan->second, plan->out, plan->out,
                                         preference, 1, &heuristic, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (Status st = check(set, "cuBLASLt's algorithm search for the " + what);
      !st.ok())
    return st;
  if (found == 0 || heuristic.state != CUBLAS_STATUS_SUCCESS)
    return Status::error(
        "cuBLASLt has no algorithm for the " + what + " on " + description_ +
        " (operands aligned to " + std::to_string(aAlign) + ", " +
        std::to_string(bAlign) + ", " + std::to_string(cAlign) + " bytes)");
  plan->algo = heuristic.algo;
  return gemmPlans_.emplace(key, std::move(plan)).first->second.get();
}

Status CudaDevice::gemm(const GemmCall &call) {
  const MatmulShape &s = call.shape;
  if (s.batch <= 0 || s.m <= 0 || s.n <= 0)
    return Status::success(); // an empty c
  if (s.batch > INT32_MAX)
    return Status::error("the " + gemmText(call) +
                         " has more batches than cuBLASLt takes");
  if (Status st = current(); !st.ok())
    return st;
  if (s.k <= 0) {
    // A sum of nothing: c = beta · c, which cuBLASLt may refuse for k = 0.
    if (call.beta == 1)
      return Status::success();
    if (call.beta == 0)
      return clear(call.c, size_t(s.batch * s.m * s.n) * bytesOf(call.cType),
                   Stream::Compute);
    return Status::error("the " + gemmText(call) +
                         " scales c by beta, which is not done for k = 0");
  }
  cudaDataType_t aType, bType, cType;
  if (!cudaTypeOf(call.aType, aType) || !cudaTypeOf(call.bType, bType) ||
      !cudaTypeOf(call.cType, cType))
    return Status::error("the " + gemmText(call) +
                         " is not on f32, bf16 or f16 operands");
  Result<GemmPlan *> plan = gemmPlanFor(call, aType, bType, cType);
  if (!plan.ok())
    return Status::error(plan.message());
  float alpha = call.alpha, beta = call.beta;
  return check(cublasLtMatmul(lt_, (*plan)->desc, &alpha, call.b,
                              (*plan)->first, call.a, (*plan)->second, &beta,
                              call.c, (*plan)->out, call.c, (*plan)->out,
                              &(*plan)->algo, workspace_, kGemmWorkspaceBytes,
                              compute_),
               "cublasLtMatmul for the " + gemmText(call));
}

Status CudaDevice::clear(void *p, size_t bytes, Stream stream) {
  if (bytes == 0)
    return Status::success();
  if (Status s = current(); !s.ok())
    return s;
  return check(cudaMemsetAsync(p, 0, bytes, streamOf(stream)),
               "cudaMemsetAsync of " + std::to_string(bytes) + " bytes");
}

Status CudaDevice::copy(void *dst, const void *src, size_t bytes,
                        Stream stream) {
  if (bytes == 0 || dst == src)
    return Status::success();
  if (Status s = current(); !s.ok())
    return s;
  return check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                               streamOf(stream)),
               "a device-to-device copy of " + std::to_string(bytes) +
                   " bytes");
}

Status CudaDevice::upload(void *dst, const void *src, size_t bytes,
                          Stream stream) {
  if (Status s = notCapturing("cannot upload host data"); !s.ok())
    return s;
  if (bytes == 0)
    return Status::success();
  if (Status s = current(); !s.ok())
    return s;
  const char *from = static_cast<const char *>(src);
  char *to = static_cast<char *>(dst);
  cudaStream_t s = streamOf(stream);
  while (bytes > 0) {
    size_t n = std::min(bytes, kStagingChunkBytes);
    Staging &staging = staging_[nextStaging_];
    nextStaging_ ^= 1;
    if (staging.pending) {
      if (Status st = check(cudaEventSynchronize(staging.drained),
                            "waiting for an upload's staging buffer");
          !st.ok())
        return st;
      staging.pending = false;
    }
    if (staging.bytes < n) {
      if (staging.host)
        cudaFreeHost(staging.host);
      staging.host = nullptr;
      staging.bytes = 0;
      size_t want = 1 << 20;
      while (want < n)
        want *= 2;
      want = std::min(want, kStagingChunkBytes);
      if (Status st = check(cudaMallocHost(&staging.host, want),
                            "cudaMallocHost of " + std::to_string(want) +
                                " bytes of pinned staging memory");
          !st.ok())
        return st;
      staging.bytes = want;
    }
    std::memcpy(staging.host, from, n);
    if (Status st = check(
            cudaMemcpyAsync(to, staging.host, n, cudaMemcpyHostToDevice, s),
            "an upload of " + std::to_string(n) + " bytes");
        !st.ok())
      return st;
    if (Status st = check(cudaEventRecord(staging.drained, s),
                          "cudaEventRecord after an upload");
        !st.ok())
      return st;
    staging.pending = true;
    from += n;
    to += n;
    bytes -= n;
  }
  return Status::success();
}

Status CudaDevice::download(void *dst, const void *src, size_t bytes,
                            Stream stream) {
  if (Status s = notCapturing("cannot download to the host"); !s.ok())
    return s;
  if (bytes == 0)
    return Status::success();
  if (Status s = current(); !s.ok())
    return s;
  cudaStream_t s = streamOf(stream);
  if (Status st =
          check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s),
                "a download of " + std::to_string(bytes) + " bytes");
      !st.ok())
    return st;
  // The copy's own failure and any earlier kernel's surface here.
  return check(cudaStreamSynchronize(s),
               "waiting for a download of " + std::to_string(bytes) +
                   " bytes (a kernel or copy enqueued before it may have "
                   "failed)");
}

Status CudaDevice::order(Stream signaller, Stream waiter) {
  if (signaller == waiter)
    return Status::success();
  if (Status s = current(); !s.ok())
    return s;
  cudaEvent_t mark = signaller == Stream::Comm ? commMark_ : computeMark_;
  // One event per direction is enough: a wait takes the event as it was
  // recorded last, before this call returns.
  if (Status s = check(cudaEventRecord(mark, streamOf(signaller)),
                       "cudaEventRecord for a stream order");
      !s.ok())
    return s;
  return check(cudaStreamWaitEvent(streamOf(waiter), mark, 0),
               "cudaStreamWaitEvent for a stream order");
}

Status CudaDevice::synchronize() {
  if (Status s = notCapturing("cannot wait for the device"); !s.ok())
    return s;
  if (Status s = current(); !s.ok())
    return s;
  for (cudaStream_t s : {compute_, comm_})
    if (Status st = check(cudaStreamSynchronize(s),
                          "waiting for the device (a kernel or copy enqueued "
                          "before may have failed)");
        !st.ok())
      return st;
  return Status::success();
}

Status CudaDevice::beginCapture() {
  if (capturing_)
    return Status::error("a CUDA graph capture inside another on " +
                         description_);
  if (Status s = current(); !s.ok())
    return s;
  // Thread-local: only this thread's unsafe calls (a cudaMalloc, a
  // synchronisation) break the capture, not other ranks' threads.
  if (Status s = check(
          cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal),
          "cudaStreamBeginCapture");
      !s.ok())
    return s;
  capturing_ = true;
  return Status::success();
}

Status CudaDevice::endCapture(int *graph) {
  if (!capturing_)
    return Status::error("endCapture without beginCapture on " + description_);
  if (Status s = current(); !s.ok())
    return s;
  cudaGraph_t captured = nullptr;
  cudaError_t ended = cudaStreamEndCapture(compute_, &captured);
  capturing_ = false;
  for (void *p : releasedWhileCapturing_)
    cudaFree(p);
  releasedWhileCapturing_.clear();
  if (ended != cudaSuccess) {
    if (captured)
      cudaGraphDestroy(captured);
    cudaGetLastError();
    return check(ended, "cudaStreamEndCapture (the capture was invalidated "
                        "by work CUDA graphs cannot hold)");
  }
  bool existing =
      *graph >= 0 && size_t(*graph) < graphs_.size() && graphs_[size_t(*graph)];
  if (existing) {
    cudaGraphExec_t &exec = graphs_[size_t(*graph)];
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(exec, captured, &info) == cudaSuccess) {
      cudaGraphDestroy(captured);
      return Status::success();
    }
    // Another topology or a changed node kind: instantiate anew.
    cudaGetLastError();
    cudaGraphExecDestroy(exec);
    exec = nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  cudaError_t made = cudaGraphInstantiate(&exec, captured, 0);
  // The executable graph is independent of the graph it came from.
  cudaGraphDestroy(captured);
  if (Status s = check(made, "cudaGraphInstantiate"); !s.ok())
    return s;
  if (existing) {
    graphs_[size_t(*graph)] = exec;
  } else {
    *graph = int(graphs_.size());
    graphs_.push_back(exec);
  }
  return Status::success();
}

Status CudaDevice::replay(int graph) {
  if (graph < 0 || size_t(graph) >= graphs_.size() || !graphs_[size_t(graph)])
    return Status::error("there is no CUDA graph " + std::to_string(graph) +
                         " on " + description_);
  if (Status s = current(); !s.ok())
    return s;
  return check(cudaGraphLaunch(graphs_[size_t(graph)], compute_),
               "cudaGraphLaunch of graph " + std::to_string(graph));
}

} // namespace

Result<std::unique_ptr<Device>> openCudaDevice(int ordinal) {
  // Left unwritten when there is no driver (TOOLCHAIN.md): start at 0.
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return Status::error("no usable GPU: cudaGetDeviceCount fails with " +
                         cudaText(e) +
                         " (no NVIDIA driver, or none this CUDA runtime can "
                         "use)");
  }
  if (count <= 0)
    return Status::error("no usable GPU: the CUDA driver sees no device");
  if (ordinal < 0 || ordinal >= count)
    return Status::error(
        "there is no GPU " + std::to_string(ordinal) + ": this machine has " +
        std::to_string(count) +
        (count == 1 ? " (device 0)"
                    : " (devices 0 to " + std::to_string(count - 1) + ")"));
  if (cudaError_t set = cudaSetDevice(ordinal); set != cudaSuccess)
    return Status::error("cannot use GPU " + std::to_string(ordinal) +
                         ": cudaSetDevice fails with " + cudaText(set));
  cudaDeviceProp prop;
  if (cudaError_t got = cudaGetDeviceProperties(&prop, ordinal);
      got != cudaSuccess)
    return Status::error("cannot read GPU " + std::to_string(ordinal) +
                         "'s properties: " + cudaText(got));
  auto device = std::make_unique<CudaDevice>(ordinal, prop);
  if (Status opened = device->open(); !opened.ok())
    return opened;
  return std::unique_ptr<Device>(std::move(device));
}

} // namespace cuda
} // namespace runtime
} // namespace loom
