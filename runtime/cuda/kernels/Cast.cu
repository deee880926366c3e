//===- Cast.cu - the CUDA kernel library: casts and 16-bit shadows -*- CUDA -*-===//
//
// The hand-written kernels compute in f32; a bf16 or f16 operand is widened
// into an f32 shadow before an instruction and rounded back after it
// (runtime/cuda/Bind.h). The conversions are the CPU's bit for bit
// (include/loom/runtime/cpu/Float16.h): round to nearest even, NaN stays a
// quiet NaN, f16 overflow to infinity at 65520, subnormal halves. Part of
// the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//

LOOM_LIB float loom_cast_bf16_to_float(unsigned short h) {
  return loom_lib_float((unsigned int)h << 16);
}
LOOM_LIB unsigned short loom_cast_float_to_bf16(float f) {
  unsigned int x = loom_lib_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u)
    return (unsigned short)((x >> 16) | 0x0040u);
  return (unsigned short)((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
LOOM_LIB float loom_cast_f16_to_float(unsigned short h) {
  unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
  unsigned int e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0) {
    float v = float(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (e == 31)
    return loom_lib_float(sign | 0x7F800000u | (m << 13));
  return loom_lib_float(sign | ((e - 15 + 127) << 23) | (m << 13));
}
LOOM_LIB unsigned short loom_cast_float_to_f16(float f) {
  unsigned int x = loom_lib_bits(f);
  unsigned short sign = (unsigned short)((x >> 16) & 0x8000u);
  unsigned int a = x & 0x7FFFFFFFu;
  if (a >= 0x7F800000u)
    return (unsigned short)(sign | (a > 0x7F800000u ? 0x7E00u : 0x7C00u));
  if (a >= 0x477FF000u)
    return (unsigned short)(sign | 0x7C00u);
  if (a < 0x38800000u)
    return (unsigned short)(sign | (unsigned int)rintf(loom_lib_float(a) * 16777216.0f));
  unsigned int h = ((((a >> 23) - 127 + 15) << 10) | ((a & 0x7FFFFFu) >> 13));
  unsigned int rest = a & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h;
  return (unsigned short)(sign | h);
}

/// y[i] = float(x[i]) for 16-bit x (`bf16` 1: bfloat16, 0: half).
extern "C" __global__ void loom_cast_widen(const unsigned short *x, float *y,
                                           long long n, int bf16) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    y[i] = bf16 ? loom_cast_bf16_to_float(x[i]) : loom_cast_f16_to_float(x[i]);
}
LOOM_KERNEL_ENTRY(loom_cast_widen)

/// y[i] = x[i] rounded to 16 bits.
extern "C" __global__ void loom_cast_round(const float *x, unsigned short *y,
                                           long long n, int bf16) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    y[i] = bf16 ? loom_cast_float_to_bf16(x[i]) : loom_cast_float_to_f16(x[i]);
}
LOOM_KERNEL_ENTRY(loom_cast_round)

/// y (+)= x between f32 views (a cast between float types: the 16-bit sides
/// are widened and rounded around it).
extern "C" __global__ void loom_cast_copy(const float *x, float *y, long long n,
                                          int accumulate) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    y[i] = accumulate ? y[i] + x[i] : x[i];
}
LOOM_KERNEL_ENTRY(loom_cast_copy)

extern "C" __global__ void loom_cast_from_i32(const int *x, float *y,
                                              long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    y[i] = float(x[i]);
}
LOOM_KERNEL_ENTRY(loom_cast_from_i32)
