//===- Optimizer.cu - the CUDA kernel library: grad norm and AdamW --------===//
//
// Part of the kernel library (see Common.cuh). The counterparts of
// runtime/cpu/Optimizer.cpp (sumOfSquares, adamwStep) and of the CPU
// binder's norm (runtime/cpu/BindOptimizer.cpp). Bound by
// runtime/cuda/BindOptimizer.cpp.
//
// The gradient norm never leaves the device within a step: grad_norm's
// kernels write it (and whether it is finite) into the executor's
// DeviceStepValues, and adamw reads it there. Sums of squares are in double
// and deterministic: each block of loom_optimizer_squares writes its own
// partial, and one block adds the partials in a fixed tree.
//
//===----------------------------------------------------------------------===//

/// partials[blockIdx.x] = the sum of g[i]² (in double) over the i this
/// block's threads take (i = blockIdx.x · blockDim.x + threadIdx.x, then by
/// the grid's size). blockDim.x a multiple of 32.
extern "C" __global__ void loom_optimizer_squares(const float *g, long long n,
                                                  double *partials) {
  __shared__ double shared[32];
  double acc = 0.0;
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    double v = (double)g[i];
    acc += v * v;
  }
  double sum = loom_lib_block_sum_double(acc, shared);
  if (threadIdx.x == 0)
    partials[blockIdx.x] = sum;
}
LOOM_KERNEL_ENTRY(loom_optimizer_squares)

/// Adds the `count` partials in one block (launch with one block; a
/// multiple of 32 threads), then by `mode`:
///   0: *sum = the total (for the host to all-reduce over the mesh axis);
///   1: *gradSquares += the total (a pipeline chunk's partial norm);
///   2: *gradNorm = sqrt(total) · gradScale, *nonFinite = whether it is
///      inf or nan (then adamw skips the step).
extern "C" __global__ void
loom_optimizer_norm(const double *partials, long long count, int mode,
                    double gradScale, double *sum, double *gradSquares,
                    double *gradNorm, int *nonFinite) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x)
    acc += partials[i];
  double total = loom_lib_block_sum_double(acc, shared);
  if (threadIdx.x != 0 || blockIdx.x != 0)
    return;
  if (mode == 0) {
    *sum = total;
  } else if (mode == 1) {
    *gradSquares += total;
  } else {
    double norm = sqrt(total) * gradScale;
    *gradNorm = norm;
    // inf - inf and nan - nan are nan: the test is false exactly when norm
    // is not finite (isfinite's spelling differs between NVRTC and the host).
    *nonFinite = (norm - norm == 0.0) ? 0 : 1;
  }
}
LOOM_KERNEL_ENTRY(loom_optimizer_norm)

/// Megatron's clipping factor, as runtime/Optimizer.cpp's clipCoefficient:
/// min(1, maxNorm / (norm + 1e-6)), 1 when clipping is off (maxNorm <= 0).
LOOM_LIB double loom_optimizer_clip(double norm, double maxNorm) {
  if (maxNorm <= 0)
    return 1.0;
  double c = maxNorm / (norm + 1e-6);
  return c < 1.0 ? c : 1.0; // std::min(1.0, c)
}

/// A fused optimizer kernel's norm-dependent step value, written into its
/// step slot `out` on the device (lib/Codegen's GradCoef and Skipped):
/// `skipped` 1: 1 when the step is skipped, else 0; 0: out[0] (the step's
/// gradScale, which the slot holds from the host) times the clip
/// coefficient of *gradNorm under *maxNorm. One thread.
extern "C" __global__ void loom_optimizer_norm_scalar(const double *gradNorm,
                                                      const int *nonFinite,
                                                      double *out, int skipped,
                                                      const double *maxNorm) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  out[0] = skipped ? (*nonFinite ? 1.0 : 0.0)
                   : out[0] * loom_optimizer_clip(*gradNorm, *maxNorm);
}
LOOM_KERNEL_ENTRY(loom_optimizer_norm_scalar)

/// One AdamW step over f32 masters, as runtime/cpu/Optimizer.cpp's
/// adamwStep: the gradient scaled by gradScale · clip(*gradNorm, clipGrad)
/// (rounded to float once), nothing done when *nonFinite. The step's
/// constants (b1, b2, 1 - b1, 1 - b2, the inverse bias corrections, eps,
/// the learning rate and the decay) come rounded to float as adamwStep
/// rounds them.
extern "C" __global__ void
loom_optimizer_adamw(float *param, const float *grad, float *m, float *v,
                     long long n, const double *gradNorm, const int *nonFinite,
                     double gradScale, double clipGrad, float b1, float b2,
                     float c1, float c2, float inv1, float inv2, float eps,
                     float rate, float decay) {
  if (*nonFinite)
    return; // a skipped step changes nothing
  const float scale =
      (float)(gradScale * loom_optimizer_clip(*gradNorm, clipGrad));
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float g = grad[i] * scale;
    float mi = b1 * m[i] + c1 * g;
    float vi = b2 * v[i] + c2 * g * g;
    m[i] = mi;
    v[i] = vi;
    float update = (mi * inv1) / (sqrtf(vi * inv2) + eps);
    param[i] -= rate * (update + decay * param[i]);
  }
}
LOOM_KERNEL_ENTRY(loom_optimizer_adamw)
