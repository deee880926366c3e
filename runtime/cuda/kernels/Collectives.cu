//===- Collectives.cu - the CUDA kernel library: collectives' local parts -*- CUDA -*-===//
//
// all_slice keeps the rank's block of a tensor every rank holds: no
// communication, raw bytes of any element type. Part of the kernel
// library: see Common.cuh.
//
//===----------------------------------------------------------------------===//

/// For each of `outer` rows of `parts` blocks of `bytes` bytes, y's row is
/// block `g` of x's.
extern "C" __global__ void loom_coll_slice(const unsigned char *x,
                                           unsigned char *y, long long outer,
                                           long long bytes, long long parts,
                                           long long g) {
  long long total = outer * bytes;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < total; i += (long long)gridDim.x * blockDim.x) {
    long long row = i / bytes, at = i % bytes;
    y[i] = x[(row * parts + g) * bytes + at];
  }
}
LOOM_KERNEL_ENTRY(loom_coll_slice)

/// NCCL's all-gather leaves x as [parts][outer][bytes] (each member's whole
/// block in turn); y is the gather along the inner dim, [outer][parts][bytes].
extern "C" __global__ void loom_coll_interleave(const unsigned char *x,
                                                unsigned char *y,
                                                long long outer,
                                                long long bytes,
                                                long long parts) {
  long long total = parts * outer * bytes;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < total; i += (long long)gridDim.x * blockDim.x) {
    long long at = i % bytes, rest = i / bytes;
    long long g = rest % parts, row = rest / parts;
    y[i] = x[(g * outer + row) * bytes + at];
  }
}
LOOM_KERNEL_ENTRY(loom_coll_interleave)

/// The other way, before NCCL's reduce-scatter: x is [outer][parts][bytes],
/// y is [parts][outer][bytes], so member g's block is contiguous.
extern "C" __global__ void loom_coll_deinterleave(const unsigned char *x,
                                                  unsigned char *y,
                                                  long long outer,
                                                  long long bytes,
                                                  long long parts) {
  long long total = parts * outer * bytes;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < total; i += (long long)gridDim.x * blockDim.x) {
    long long at = i % bytes, rest = i / bytes;
    long long row = rest % outer, g = rest / outer;
    y[i] = x[(row * parts + g) * bytes + at];
  }
}
LOOM_KERNEL_ENTRY(loom_coll_deinterleave)
