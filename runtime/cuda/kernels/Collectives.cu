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
