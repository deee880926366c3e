//===- Common.cuh - what the hand-written CUDA kernels share ----*- CUDA -*-===//
//
// The first file of the kernel library (docs/architecture.md, "The CUDA
// backend"). The library is one translation unit: include/loom/runtime/
// Philox.h, this file, then every runtime/cuda/kernels/*.cu in the order
// runtime/CMakeLists.txt lists them. NVRTC compiles it for the device
// (CudaDevice.cpp); the host compiler compiles the same text under
// runtime/cuda/emulation/CudaEmulation.h for the tests and the
// `cuda-emulated` backend (emulation/LibraryKernels.cpp). So a kernel file
// includes nothing, and every entry point is `extern "C" __global__`, named
// loom_<family>_<what>, with a LOOM_KERNEL_ENTRY(name) line after it.
//
// Kernels are f32 (16-bit operands come widened into f32 shadows: Bind.h);
// element counts and indices are `long long`.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_CUDA_EMULATION
// Under NVRTC: the entry list is the image's symbol table.
#define LOOM_KERNEL_ENTRY(name)
#define LOOM_EXTERN_SHARED(T, name)                                            \
  extern __shared__ __align__(16) unsigned char loom_dynamic_shared[];         \
  T *name = reinterpret_cast<T *>(loom_dynamic_shared)
#define LOOM_LIB static __device__ __forceinline__
#else
#define LOOM_LIB static inline
#endif

LOOM_LIB float loom_lib_float(unsigned int bits) { return __uint_as_float(bits); }
LOOM_LIB unsigned int loom_lib_bits(float f) { return __float_as_uint(f); }

/// Sum (or max) over the block, every thread gets the result: warp
/// shuffles, then one value per warp through `shared` (32 floats). Has
/// barriers: every thread of the block must call it.
template <bool Max> LOOM_LIB float loom_lib_block_reduce(float v, float *shared) {
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = Max ? fmaxf(v, w) : v + w;
  }
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  int warps = (blockDim.x + 31) >> 5;
  float t = lane < warps ? shared[lane] : (Max ? loom_lib_float(0xFF800000u) : 0.0f);
  for (int o = 16; o > 0; o >>= 1) {
    float w = __shfl_xor_sync(0xffffffffu, t, o);
    t = Max ? fmaxf(t, w) : t + w;
  }
  return t;
}
LOOM_LIB float loom_lib_block_sum(float v, float *shared) {
  return loom_lib_block_reduce<false>(v, shared);
}
LOOM_LIB float loom_lib_block_max(float v, float *shared) {
  return loom_lib_block_reduce<true>(v, shared);
}
/// The same in double (for sums the CPU reference takes in double).
LOOM_LIB double loom_lib_block_sum_double(double v, double *shared) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  int warps = (blockDim.x + 31) >> 5;
  double t = lane < warps ? shared[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1)
    t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

/// Dropout's stream, as the CPU's (runtime/cpu/Kernels.cpp, dropout) and
/// the generated kernels' (lib/Codegen/Prelude.cpp): element g of a tensor
/// keeps when the uniform of word g % 4 of the Philox4x32-10 block g / 4
/// under `key` is at least `rate`.
LOOM_LIB unsigned int loom_lib_philox_word(unsigned long long key, long long g) {
  unsigned long long block = (unsigned long long)g >> 2;
  loom::runtime::PhiloxCounter c = loom::runtime::philox4x32_10(
      {{(unsigned int)block, (unsigned int)(block >> 32), 0u, 0u}},
      {{(unsigned int)key, (unsigned int)(key >> 32)}});
  unsigned int w = (unsigned int)(g & 3);
  return w == 0u ? c.word[0] : w == 1u ? c.word[1] : w == 2u ? c.word[2] : c.word[3];
}
LOOM_LIB bool loom_lib_dropout_keep(unsigned long long key, long long g, float rate) {
  return loom::runtime::uniformOpen01(loom_lib_philox_word(key, g)) >= rate;
}
