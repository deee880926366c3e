//===- Softmax.cu - the CUDA kernel library: attention's softmax ---------===//
//
// Part of the kernel library: see Common.cuh. The reference is
// runtime/cpu/Kernels.cpp (softmax, softmaxBackward): one block per row of
// `cols` keys, grid-stride over rows, so any grid is correct; the row's max
// and sum are block reductions (fixed-order trees: the same every run).
//
//===----------------------------------------------------------------------===//

/// The offset in the (unbroadcast) mask of element `e` of the scores:
/// `dims` holds `rank` sizes of the scores' dimensions (adjacent ones merged
/// by the binder) and then the mask's strides over them, 0 where the mask
/// broadcasts.
LOOM_LIB long long loom_softmax_mask_offset(long long e, const long long *dims,
                                            int rank) {
  long long offset = 0;
  for (int d = rank - 1; d >= 0; --d) {
    long long size = dims[d];
    offset += (e % size) * dims[rank + d];
    e /= size;
  }
  return offset;
}

/// y = softmax(scale · x) per row; a key is kept when it is visible under
/// the causal mask (row r is query r % queries; key j is hidden when
/// j > query + cols - queries) and, with a mask, its byte is nonzero. A
/// row with every key masked is 0. Needs blockDim.x a multiple of 32.
extern "C" __global__ void
loom_softmax_forward(const float *x, const unsigned char *mask,
                     const long long *maskDims, int maskRank, float *y,
                     long long rows, long long cols, long long queries,
                     int causal, float scale) {
  __shared__ float shared[32];
  const float negInf = loom_lib_float(0xFF800000u);
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    long long visible = cols;
    if (causal) {
      visible = r % queries + (cols - queries) + 1;
      visible = visible < 0 ? 0 : visible > cols ? cols : visible;
    }
    float m = negInf;
    for (long long j = threadIdx.x; j < visible; j += blockDim.x)
      if (!mask ||
          mask[loom_softmax_mask_offset(r * cols + j, maskDims, maskRank)])
        m = fmaxf(m, scale * xr[j]);
    m = loom_lib_block_max(m, shared);
    if (m == negInf) { // every key masked
      for (long long j = threadIdx.x; j < cols; j += blockDim.x)
        yr[j] = 0.0f;
      continue;
    }
    float sum = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
      bool kept =
          j < visible &&
          (!mask ||
           mask[loom_softmax_mask_offset(r * cols + j, maskDims, maskRank)]);
      float e = kept ? expf(scale * xr[j] - m) : 0.0f;
      yr[j] = e;
      sum += e;
    }
    sum = loom_lib_block_sum(sum, shared);
    // Each thread divides the keys it wrote itself: no barrier needed.
    for (long long j = threadIdx.x; j < cols; j += blockDim.x)
      yr[j] /= sum;
  }
}
LOOM_KERNEL_ENTRY(loom_softmax_forward)

/// dx = scale · y · (dy - sum(dy · y)) per row. Needs blockDim.x a multiple
/// of 32.
extern "C" __global__ void loom_softmax_backward(const float *y,
                                                 const float *dy, float *dx,
                                                 long long rows, long long cols,
                                                 float scale) {
  __shared__ float shared[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *yr = y + r * cols, *dyr = dy + r * cols;
    float dot = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x)
      dot += dyr[j] * yr[j];
    dot = loom_lib_block_sum(dot, shared);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x)
      dx[r * cols + j] = scale * yr[j] * (dyr[j] - dot);
  }
}
LOOM_KERNEL_ENTRY(loom_softmax_backward)
