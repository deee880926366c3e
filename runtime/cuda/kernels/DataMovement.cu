//===- DataMovement.cu - the CUDA kernel library: reductions, copies ------===//
//
// Part of the kernel library (see Common.cuh). The counterparts of
// runtime/cpu/DataMovementKernels.cpp and the CPU's transpose: reductions
// over any set of dimensions, transposes, split and concat. Bound by
// runtime/cuda/BindDataMovement.cpp.
//
// A reduction's geometry (built on the host: runtime/cuda/KernelGeometry.h)
// is two collapsed loops over x: the kept dimensions (sizes, then x's
// strides; output o is their row-major index) and the reduced ones (the
// same), laid out one after the other: geometry[0, 2·keptRank) then
// [2·keptRank, 2·keptRank + 2·reducedRank).
//
// Reductions accumulate in double, as the CPU's, and are deterministic:
// every output's terms are added in an order fixed by the launch geometry,
// never by timing.
//
//===----------------------------------------------------------------------===//

/// The offset in x of index i of a collapsed loop (sizes, then strides).
LOOM_LIB long long loom_data_offset(long long i, int rank,
                                    const long long *loop) {
  long long offset = 0;
  for (int d = rank - 1; d >= 0; --d) {
    long long size = loop[d];
    long long q = i / size;
    offset += (i - q * size) * loop[rank + d];
    i = q;
  }
  return offset;
}

/// The CPU's max step, std::max(acc, v): a NaN term never replaces acc.
LOOM_LIB double loom_data_max(double acc, double v) {
  return acc < v ? v : acc;
}

/// op: 0 sum, 1 mean (the sum divided by `count`), 2 max.
LOOM_LIB float loom_data_finish(double acc, int op, double count) {
  return (float)(op == 1 ? acc / count : acc);
}

/// One thread per output, its terms added one after another in x's
/// row-major order: the CPU's order, so its result bit for bit. For many
/// outputs with few terms each (a bias gradient's columns).
extern "C" __global__ void
loom_data_reduce_serial(const float *x, float *y, long long outputs,
                        long long terms, int keptRank, int reducedRank,
                        const long long *geometry, int op, double count) {
  const long long *reduced = geometry + 2 * keptRank;
  // The innermost reduced dimension is walked by stride, without divisions.
  long long inner = 1, innerStride = 0;
  int outerRank = reducedRank;
  if (reducedRank > 0) {
    inner = reduced[reducedRank - 1];
    innerStride = reduced[2 * reducedRank - 1];
    outerRank = reducedRank - 1;
  }
  long long outerTerms = inner > 0 ? terms / inner : 0;
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x;
       o < outputs; o += stride) {
    long long base = loom_data_offset(o, keptRank, geometry);
    double acc = op == 2 ? (double)loom_lib_float(0xFF800000u) : 0.0;
    for (long long r = 0; r < outerTerms; ++r) {
      // The outer reduced dimensions' offset, from the strides that follow
      // the sizes: a loop of outerRank dimensions laid out in place.
      long long offset = 0, q = r;
      for (int d = outerRank - 1; d >= 0; --d) {
        long long size = reduced[d];
        long long next = q / size;
        offset += (q - next * size) * reduced[reducedRank + d];
        q = next;
      }
      const float *row = x + base + offset;
      for (long long k = 0; k < inner; ++k) {
        double v = row[k * innerStride];
        acc = op == 2 ? loom_data_max(acc, v) : acc + v;
      }
    }
    y[o] = loom_data_finish(acc, op, count);
  }
}
LOOM_KERNEL_ENTRY(loom_data_reduce_serial)

/// One block per output (grid-stride over outputs): each thread adds every
/// blockDim.x-th term, then a fixed tree over the block. For few outputs
/// with many terms each (a whole-tensor sum). blockDim.x a multiple of 32.
extern "C" __global__ void
loom_data_reduce_tree(const float *x, float *y, long long outputs,
                      long long terms, int keptRank, int reducedRank,
                      const long long *geometry, int op, double count) {
  __shared__ double partial[32];
  __shared__ float partialMax[32];
  const long long *reduced = geometry + 2 * keptRank;
  for (long long o = blockIdx.x; o < outputs; o += gridDim.x) {
    long long base = loom_data_offset(o, keptRank, geometry);
    if (op == 2) {
      float acc = loom_lib_float(0xFF800000u);
      for (long long r = threadIdx.x; r < terms; r += blockDim.x) {
        float v = x[base + loom_data_offset(r, reducedRank, reduced)];
        acc = acc < v ? v : acc;
      }
      // fmaxf drops NaN as the CPU's max does; the partials are never NaN.
      float m = loom_lib_block_max(acc, partialMax);
      if (threadIdx.x == 0)
        y[o] = m;
    } else {
      double acc = 0.0;
      for (long long r = threadIdx.x; r < terms; r += blockDim.x)
        acc += (double)x[base + loom_data_offset(r, reducedRank, reduced)];
      double sum = loom_lib_block_sum_double(acc, partial);
      if (threadIdx.x == 0)
        y[o] = loom_data_finish(sum, op, count);
    }
  }
}
LOOM_KERNEL_ENTRY(loom_data_reduce_tree)

/// y[o] = x[offset of o]: geometry is y's sizes then x's stride along each
/// (collapsed on the host); rank 0 is a plain copy.
extern "C" __global__ void loom_data_transpose(const float *x, float *y,
                                               long long n, int rank,
                                               const long long *geometry) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = x[rank > 0 ? loom_data_offset(i, rank, geometry) : i];
}
LOOM_KERNEL_ENTRY(loom_data_transpose)

/// One piece of a split (whole -> piece) or concat (piece -> whole): the
/// whole is `outer` rows of wholeAxis · inner elements; the piece is its
/// `size` slices along the axis from `first`, outer rows of size · inner.
extern "C" __global__ void
loom_data_split_concat(float *whole, float *piece, long long outer,
                       long long inner, long long wholeAxis, long long first,
                       long long size, int split) {
  long long row = size * inner;
  long long n = outer * row;
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    long long o = i / row, c = i - o * row;
    long long w = (o * wholeAxis + first) * inner + c;
    if (split)
      piece[i] = whole[w];
    else
      whole[w] = piece[i];
  }
}
LOOM_KERNEL_ENTRY(loom_data_split_concat)
