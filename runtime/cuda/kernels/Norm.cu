//===- Norm.cu - the CUDA kernel library: layernorm and rmsnorm ----------===//
//
// Part of the kernel library: see Common.cuh. The reference is
// runtime/cpu/Kernels.cpp (layerNorm, layerNormBackward, rmsNorm,
// rmsNormBackward) as runtime/cpu/BindNorm.cpp calls them.
//
// The forward is one block per row (grid-stride over rows). The backward is
// four launches, so that dx may alias x or dy:
//   1. loom_norm_backward_stats: per row (a block each) mean, rstd and the
//      two means the dx formula needs, into scratch;
//   2. loom_norm_backward_partials: the column sums of dweight (and dbias)
//      over fixed chunks of rows, one thread per (column, chunk), the rows
//      of a chunk in order, into scratch;
//   3. loom_norm_backward_columns: one thread per column adds the chunks'
//      partials in chunk order and writes dweight (and dbias): overwritten,
//      as the CPU backend zeroes them before accumulating;
//   4. loom_norm_backward_dx: elementwise.
// The chunking depends on the `chunks` argument, never on the grid: the
// results are the same every run and for every grid.
//
//===----------------------------------------------------------------------===//

/// Row r's mean (layernorm; 0 for rmsnorm) and 1 / sqrt(mean((x - mean)^2)
/// + eps), as the CPU's kernels compute them; every thread of the block
/// gets both (block reductions: every thread must call it).
LOOM_LIB void loom_norm_row_stats(const float *xr, long long cols, bool layer,
                                  float eps, float *shared, float &mean,
                                  float &rstd) {
  mean = 0.0f;
  if (layer) {
    float s = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x)
      s += xr[j];
    mean = loom_lib_block_sum(s, shared) / float(cols);
  }
  float sq = 0.0f;
  for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
    float c = xr[j] - mean;
    sq += c * c;
  }
  rstd = 1.0f / sqrtf(loom_lib_block_sum(sq, shared) / float(cols) + eps);
}

/// layernorm (bias not null) or rmsnorm (bias null) of each row of `cols`:
/// y = (x - mean) · rstd · weight + bias, or x · rstd · weight. Needs
/// blockDim.x a multiple of 32.
extern "C" __global__ void
loom_norm_forward(const float *x, const float *weight, const float *bias,
                  float *y, long long rows, long long cols, float eps) {
  __shared__ float shared[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float mean, rstd;
    loom_norm_row_stats(xr, cols, bias != nullptr, eps, shared, mean, rstd);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x)
      yr[j] = bias ? (xr[j] - mean) * rstd * weight[j] + bias[j]
                   : xr[j] * rstd * weight[j];
  }
}
LOOM_KERNEL_ENTRY(loom_norm_forward)

/// Step 1 of the backward: stats[4r..4r+3] = mean, rstd, mean(g) and
/// mean(g · xhat) of row r (layernorm, `layer` != 0) or 0, rstd, 0 and
/// mean(g · x) (rmsnorm), with g = dy · weight. Needs blockDim.x a multiple
/// of 32.
extern "C" __global__ void
loom_norm_backward_stats(const float *x, const float *weight, const float *dy,
                         float *stats, long long rows, long long cols,
                         int layer, float eps) {
  __shared__ float shared[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * cols, *dyr = dy + r * cols;
    float mean, rstd;
    loom_norm_row_stats(xr, cols, layer != 0, eps, shared, mean, rstd);
    float g = 0.0f, gx = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
      float gj = dyr[j] * weight[j];
      g += gj;
      gx += layer ? gj * ((xr[j] - mean) * rstd) : gj * xr[j];
    }
    float meanG = layer ? loom_lib_block_sum(g, shared) / float(cols) : 0.0f;
    float meanGX = loom_lib_block_sum(gx, shared) / float(cols);
    if (threadIdx.x == 0) {
      stats[4 * r] = mean;
      stats[4 * r + 1] = rstd;
      stats[4 * r + 2] = meanG;
      stats[4 * r + 3] = meanGX;
    }
  }
}
LOOM_KERNEL_ENTRY(loom_norm_backward_stats)

/// Step 2: for chunk c of `chunks` (rows [c·chunkRows, (c+1)·chunkRows)),
/// partial[c·cols + j] = the sum over its rows of dy · xhat (layernorm) or
/// dy · x · rstd (rmsnorm), and with layernorm partial[(chunks + c)·cols + j]
/// = the sum of dy. Grid-stride over chunks · cols items.
extern "C" __global__ void
loom_norm_backward_partials(const float *x, const float *dy, const float *stats,
                            float *partial, long long rows, long long cols,
                            long long chunks, int layer) {
  long long chunkRows = (rows + chunks - 1) / chunks;
  long long items = chunks * cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       i < items; i += (long long)gridDim.x * blockDim.x) {
    long long c = i / cols, j = i % cols;
    long long end = min(rows, (c + 1) * chunkRows);
    float dw = 0.0f, db = 0.0f;
    for (long long r = c * chunkRows; r < end; ++r) {
      float d = dy[r * cols + j], mean = stats[4 * r], rstd = stats[4 * r + 1];
      dw += layer ? d * ((x[r * cols + j] - mean) * rstd)
                  : d * x[r * cols + j] * rstd;
      db += d;
    }
    partial[c * cols + j] = dw;
    if (layer)
      partial[(chunks + c) * cols + j] = db;
  }
}
LOOM_KERNEL_ENTRY(loom_norm_backward_partials)

/// Step 3: dweight[j] (and dbias[j], when not null) = the chunks' partials
/// added in chunk order.
extern "C" __global__ void
loom_norm_backward_columns(const float *partial, float *dweight, float *dbias,
                           long long cols, long long chunks) {
  for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < cols;
       j += (long long)gridDim.x * blockDim.x) {
    float dw = 0.0f, db = 0.0f;
    for (long long c = 0; c < chunks; ++c) {
      dw += partial[c * cols + j];
      if (dbias)
        db += partial[(chunks + c) * cols + j];
    }
    dweight[j] = dw;
    if (dbias)
      dbias[j] = db;
  }
}
LOOM_KERNEL_ENTRY(loom_norm_backward_columns)

/// Step 4: dx = rstd · (dy · weight - mean(g) - xhat · mean(g · xhat))
/// (layernorm) or rstd · (dy · weight - x · rstd² · mean(g · x)) (rmsnorm).
extern "C" __global__ void
loom_norm_backward_dx(const float *x, const float *weight, const float *dy,
                      const float *stats, float *dx, long long rows,
                      long long cols, int layer) {
  long long n = rows * cols;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    long long r = i / cols, j = i % cols;
    const float *s = stats + 4 * r;
    float rstd = s[1], xi = x[i], g = dy[i] * weight[j];
    dx[i] = layer ? rstd * (g - s[2] - ((xi - s[0]) * rstd) * s[3])
                  : rstd * (g - xi * rstd * rstd * s[3]);
  }
}
LOOM_KERNEL_ENTRY(loom_norm_backward_dx)
