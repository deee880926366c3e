//===- Prelude.cpp - the definitions every generated kernel shares --------===//
//
// One text for both targets: the scalar math the kernels call (exp and tanh
// written out, so the host compiler can vectorise them and the GPU computes
// the same values) and the Philox stream of the reference dropout kernel
// (include/loom/runtime/Philox.h's own text, embedded at build time, drawn
// per element). Only the function
// qualifiers and the bit casts differ between host C++ and CUDA C++.
//
//===----------------------------------------------------------------------===//

#include "loom/Codegen/Emit.h"

namespace loom {
namespace codegen {

extern const char *const kPhiloxHeader; // PhiloxSource.cpp (generated)

namespace {

// The shared part, after LOOM_FN and loom_bits/loom_float are defined.
const char *kSharedMath = R"(
// exp: Cephes expf's polynomial after reducing by n ln 2, n = round(x log2 e)
// taken with the 1.5 * 2^23 trick (its bits hold n, so 2^n is built from
// integers), relative error under 8e-8 (measured against double exp). Below
// -87 it returns 0 (the true value is under 1.7e-38), above 88.7 infinity.
// Comparisons, not fminf/floorf, and no float-to-int conversion: GCC
// vectorises this only in that form without -ffast-math.
LOOM_FN float loom_exp(float x) {
  float c = x < -87.0f ? -87.0f : x;
  c = c > 88.5f ? 88.5f : c;
  float km = c * 1.44269504088896341f + 12582912.0f;
  float fx = km - 12582912.0f;
  unsigned int n = loom_bits(km) - 0x4B400000u;
  float z = c - fx * 0.693359375f;
  z = z - fx * -2.12194440e-4f;
  float zz = z * z;
  float y = ((((( 1.9875691500e-4f * z + 1.3981999507e-3f) * z +
                8.3334519073e-3f) * z + 4.1665795894e-2f) * z +
                1.6666665459e-1f) * z + 5.0000001201e-1f) * zz + z + 1.0f;
  float r = y * loom_float((n + 126u) << 23) * 2.0f; // y 2^(n-1) 2
  r = x > 88.72283f ? loom_float(0x7F800000u) : r;
  r = x < -87.0f ? 0.0f : r;
  return x != x ? x : r;
}

// tanh: Cephes tanhf's odd polynomial below 0.625, 1 - 2 / (exp(2|x|) + 1)
// above; relative error under 1.4e-7 (measured against double tanh).
LOOM_FN float loom_tanh(float x) {
  float a = fabsf(x);
  float z = x * x;
  float p = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z -
               5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
               3.33332819422e-1f) * z * x + x;
  float e = loom_exp(2.0f * (a < 10.0f ? a : 10.0f));
  float q = copysignf(1.0f - 2.0f / (e + 1.0f), x);
  return a < 0.625f ? p : q;
}

LOOM_FN float loom_log(float x) { return logf(x); }
LOOM_FN float loom_erf(float x) { return erff(x); }
LOOM_FN float loom_sqrt(float x) { return sqrtf(x); }
LOOM_FN float loom_rsqrt(float x) { return 1.0f / sqrtf(x); }

// Dropout's stream: element g of a tensor uses word g % 4 of the Philox4x32-10
// block at counter g / 4 under the key (runtime/cpu/Kernels.cpp, dropout),
// drawn with include/loom/runtime/Philox.h itself (printed above).
LOOM_FN unsigned int loom_philox_word(unsigned long long key, long long g) {
  unsigned long long block = (unsigned long long)g >> 2;
  loom::runtime::PhiloxCounter c = loom::runtime::philox4x32_10(
      {{(unsigned int)block, (unsigned int)(block >> 32), 0u, 0u}},
      {{(unsigned int)key, (unsigned int)(key >> 32)}});
  unsigned int w = (unsigned int)(g & 3);
  return w == 0u ? c.word[0] : w == 1u ? c.word[1] : w == 2u ? c.word[2]
                                                             : c.word[3];
}

LOOM_FN bool loom_dropout_keep(unsigned long long key, long long g,
                               float rate) {
  return loom::runtime::uniformOpen01(loom_philox_word(key, g)) >= rate;
}
)";

} // namespace

std::string hostPrelude() {
  return std::string(R"(// Loom generated kernels: host C++ (docs/codegen.md).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <omp.h>
#define LOOM_FN static inline
LOOM_FN float loom_float(unsigned int bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
LOOM_FN unsigned int loom_bits(float f) {
  unsigned int bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}
)") + kPhiloxHeader + kSharedMath;
}

std::string cudaPrelude() {
  return std::string(R"(// Loom generated kernels: CUDA C++ (docs/codegen.md).
#define LOOM_FN static __device__ __forceinline__
LOOM_FN float loom_float(unsigned int bits) { return __uint_as_float(bits); }
LOOM_FN unsigned int loom_bits(float f) { return __float_as_uint(f); }
)") + kPhiloxHeader + kSharedMath +
         R"(
// Block reductions: warp shuffles, then one value per warp through shared
// memory; every thread gets the result.
template <bool Max> LOOM_FN float loom_combine(float a, float b) {
  return Max ? fmaxf(a, b) : a + b;
}
template <bool Max> LOOM_FN float loom_block_reduce(float v, float *shared) {
  for (int o = 16; o > 0; o >>= 1)
    v = loom_combine<Max>(v, __shfl_xor_sync(0xffffffffu, v, o));
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  int warps = (blockDim.x + 31) >> 5;
  float t = lane < warps ? shared[lane] : (Max ? loom_float(0xFF800000u) : 0.0f);
  for (int o = 16; o > 0; o >>= 1)
    t = loom_combine<Max>(t, __shfl_xor_sync(0xffffffffu, t, o));
  return t;
}
LOOM_FN float loom_block_sum(float v, float *shared) {
  return loom_block_reduce<false>(v, shared);
}
LOOM_FN float loom_block_max(float v, float *shared) {
  return loom_block_reduce<true>(v, shared);
}
)";
}

std::string hostModule(const std::string &prelude,
                       const std::vector<std::string> &kernels) {
  std::string out = prelude;
  for (const std::string &k : kernels)
    out += "\n" + k;
  return out;
}

} // namespace codegen
} // namespace loom
