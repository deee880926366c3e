//===- Elementwise.cu - the CUDA kernel library: elementwise ops ----------===//
//
// Part of the kernel library (see Common.cuh). The counterparts of the CPU
// reference kernels of runtime/cpu/Kernels.cpp: arithmetic with numpy
// broadcasting, scale/accumulate, activations and their gradients,
// broadcasts, fills and dropout. Bound by runtime/cuda/BindElementwise.cpp.
//
// A strided operand's geometry is `rank` dimensions of the output (already
// collapsed on the host: runtime/cuda/KernelGeometry.h), laid out as
// geometry[0, rank) the sizes, then for each operand its `rank` strides
// (two operands for the binary ops, one for the others).
// rank 0 means every operand is contiguous with the output.
//
// The formulas are the CPU's, written the same way and with the same f32
// constants (the CPU's double constants rounded to float), so under
// emulation the results are the CPU's bit for bit; on a GPU they differ by
// the device's expf/erff/tanhf and by FMA contraction only.
//
//===----------------------------------------------------------------------===//

/// The offsets in operands `a` and `b` of output element `i`: its digits
/// over the sizes, last dimension fastest, times each operand's strides.
LOOM_LIB void loom_elementwise_offsets(long long i, int rank,
                                       const long long *geometry, long long *a,
                                       long long *b) {
  long long ia = 0, ib = 0;
  for (int d = rank - 1; d >= 0; --d) {
    long long size = geometry[d];
    long long q = i / size;
    long long digit = i - q * size;
    ia += digit * geometry[rank + d];
    ib += digit * geometry[2 * rank + d];
    i = q;
  }
  *a = ia;
  *b = ib;
}

/// The offset in the one operand of a loop (sizes, then its strides) of
/// element `i`.
LOOM_LIB long long loom_elementwise_offset(long long i, int rank,
                                           const long long *geometry) {
  long long offset = 0;
  for (int d = rank - 1; d >= 0; --d) {
    long long size = geometry[d];
    long long q = i / size;
    offset += (i - q * size) * geometry[rank + d];
    i = q;
  }
  return offset;
}

/// y = a (kind) b with broadcasting; kind: 0 add, 1 sub, 2 mul, 3 div
/// (BinaryKind's order). Geometry: sizes, a's strides, b's strides.
extern "C" __global__ void
loom_elementwise_binary(const float *a, const float *b, float *y, long long n,
                        int kind, int rank, const long long *geometry) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    long long ia = i, ib = i;
    if (rank > 0)
      loom_elementwise_offsets(i, rank, geometry, &ia, &ib);
    float u = a[ia], v = b[ib];
    float r;
    switch (kind) {
    case 0:
      r = u + v;
      break;
    case 1:
      r = u - v;
      break;
    case 2:
      r = u * v;
      break;
    default:
      r = u / v;
      break;
    }
    y[i] = r;
  }
}
LOOM_KERNEL_ENTRY(loom_elementwise_binary)

/// y = x broadcast to y's shape. Geometry: sizes, then x's strides.
/// `+ 0.0f` as the CPU's broadcast (x plus a zero operand): -0 becomes +0
/// there too.
extern "C" __global__ void
loom_elementwise_broadcast(const float *x, float *y, long long n, int rank,
                           const long long *geometry) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    long long ix = rank > 0 ? loom_elementwise_offset(i, rank, geometry) : i;
    y[i] = x[ix] + 0.0f;
  }
}
LOOM_KERNEL_ENTRY(loom_elementwise_broadcast)

/// y = factor · x, or y += x with `accumulate` (neg is factor -1).
extern "C" __global__ void loom_elementwise_scale(const float *x, float *y,
                                                  long long n, float factor,
                                                  int accumulate) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = accumulate ? y[i] + x[i] : factor * x[i];
}
LOOM_KERNEL_ENTRY(loom_elementwise_scale)

/// y[i] = *value: the loss gradient's seed, the step's loss scale, read
/// from the instruction's step slot.
extern "C" __global__ void loom_elementwise_fill_slot(float *y, long long n,
                                                      const double *value) {
  long long stride = (long long)gridDim.x * blockDim.x;
  float v = float(*value);
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = v;
}
LOOM_KERNEL_ENTRY(loom_elementwise_fill_slot)

extern "C" __global__ void loom_elementwise_fill(float *y, long long n,
                                                 float value) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = value;
}
LOOM_KERNEL_ENTRY(loom_elementwise_fill)

// The CPU's constants (runtime/cpu/Kernels.cpp), rounded to float as its
// T(constant) does.
#define LOOM_ELEMENTWISE_SQRT_2_OVER_PI ((float)0.7978845608028654)
#define LOOM_ELEMENTWISE_INV_SQRT_2 ((float)0.7071067811865476)
#define LOOM_ELEMENTWISE_INV_SQRT_2PI ((float)0.3989422804014327)
#define LOOM_ELEMENTWISE_GELU_CUBIC ((float)0.044715)
#define LOOM_ELEMENTWISE_GELU_CUBIC_3 ((float)(3 * 0.044715))

/// kind: 0 relu, 1 silu, 2 gelu (erf), 3 gelu (tanh): Activation's order.
LOOM_LIB float loom_elementwise_activate(int kind, float v) {
  switch (kind) {
  case 0:
    return v > 0.0f ? v : 0.0f;
  case 1:
    return v / (1.0f + expf(-v));
  case 2:
    return 0.5f * v * (1.0f + erff(v * LOOM_ELEMENTWISE_INV_SQRT_2));
  default:
    return 0.5f * v *
           (1.0f + tanhf(LOOM_ELEMENTWISE_SQRT_2_OVER_PI *
                         (v + LOOM_ELEMENTWISE_GELU_CUBIC * v * v * v)));
  }
}

/// f'(v), as activationBackward computes it.
LOOM_LIB float loom_elementwise_derivative(int kind, float v) {
  switch (kind) {
  case 0:
    return v > 0.0f ? 1.0f : 0.0f;
  case 1: {
    float s = 1.0f / (1.0f + expf(-v));
    return s * (1.0f + v * (1.0f - s));
  }
  case 2:
    return 0.5f * (1.0f + erff(v * LOOM_ELEMENTWISE_INV_SQRT_2)) +
           v * LOOM_ELEMENTWISE_INV_SQRT_2PI * expf(-0.5f * v * v);
  default: {
    float u = LOOM_ELEMENTWISE_SQRT_2_OVER_PI *
              (v + LOOM_ELEMENTWISE_GELU_CUBIC * v * v * v);
    float t = tanhf(u);
    return 0.5f * (1.0f + t) +
           0.5f * v * (1.0f - t * t) * LOOM_ELEMENTWISE_SQRT_2_OVER_PI *
               (1.0f + LOOM_ELEMENTWISE_GELU_CUBIC_3 * v * v);
  }
  }
}

extern "C" __global__ void loom_elementwise_activation(const float *x, float *y,
                                                       long long n, int kind) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = loom_elementwise_activate(kind, x[i]);
}
LOOM_KERNEL_ENTRY(loom_elementwise_activation)

/// dx = dy · f'(x).
extern "C" __global__ void
loom_elementwise_activation_grad(const float *x, const float *dy, float *dx,
                                 long long n, int kind) {
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride)
    dx[i] = dy[i] * loom_elementwise_derivative(kind, x[i]);
}
LOOM_KERNEL_ENTRY(loom_elementwise_activation_grad)

/// Dropout of elements whose global indices are first, first + 1, ...:
/// y = x · keepScale where kept, 0 elsewhere. A thread takes one Philox
/// block (four global indices) at a time, so each block is drawn once, as
/// the CPU draws it.
extern "C" __global__ void
loom_elementwise_dropout(const float *x, float *y, long long n,
                         const long long *step, float rate, float keepScale) {
  // step: the block's first element in the microbatch's tensor, the key
  // and whether the step trains (else x passes unchanged: evaluation), in
  // the instruction's step slots (device memory: Bind.h).
  long long first = step[0], key = step[1];
  if (n <= 0)
    return;
  if (!step[2]) {
    long long all = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += all)
      y[i] = x[i];
    return;
  }
  long long firstBlock = first >> 2, lastBlock = (first + n - 1) >> 2;
  loom::runtime::PhiloxKey k = {
      {(unsigned int)key, (unsigned int)((unsigned long long)key >> 32)}};
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long block =
           firstBlock + (long long)blockIdx.x * blockDim.x + threadIdx.x;
       block <= lastBlock; block += stride) {
    loom::runtime::PhiloxCounter c = loom::runtime::philox4x32_10(
        {{(unsigned int)block, (unsigned int)((unsigned long long)block >> 32),
          0u, 0u}},
        k);
    for (int w = 0; w < 4; ++w) {
      long long i = block * 4 + w - first;
      if (i < 0 || i >= n)
        continue;
      bool keep = loom::runtime::uniformOpen01(c.word[w]) >= rate;
      y[i] = keep ? x[i] * keepScale : 0.0f;
    }
  }
}
LOOM_KERNEL_ENTRY(loom_elementwise_dropout)

/// Dropout of a rank's block of a split tensor: local element i has global
/// index first + its strided offset (geometry: the block's sizes, then the
/// whole tensor's strides). One Philox
/// draw per element: the block's rows need not start on a multiple of 4.
extern "C" __global__ void loom_elementwise_dropout_strided(
    const float *x, float *y, long long n, const long long *step, float rate,
    float keepScale, int rank, const long long *geometry) {
  long long first = step[0], key = step[1];
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    if (!step[2]) { // not training: x passes unchanged
      y[i] = x[i];
      continue;
    }
    long long g = rank > 0 ? loom_elementwise_offset(i, rank, geometry) : i;
    bool keep = loom_lib_dropout_keep((unsigned long long)key, first + g, rate);
    y[i] = keep ? x[i] * keepScale : 0.0f;
  }
}
LOOM_KERNEL_ENTRY(loom_elementwise_dropout_strided)
