//===- Float16.h - bf16 and f16 storage conversions -------------*- C++ -*-===//
//
// The CPU backend stores 16-bit tensors as 16-bit and computes in f32: each
// instruction widens its 16-bit inputs and rounds its 16-bit outputs, so
// values are rounded at every op boundary as on a GPU. Rounding is to
// nearest, ties to even; f16 overflows to infinity (what dynamic loss
// scaling detects).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_FLOAT16_H
#define LOOM_RUNTIME_CPU_FLOAT16_H

#include <cmath>
#include <cstdint>
#include <cstring>

namespace loom {
namespace runtime {
namespace cpu {

inline uint32_t floatBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
inline float bitsFloat(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

inline uint16_t floatToBf16(float f) {
  uint32_t x = floatBits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) // NaN stays a (quiet) NaN
    return uint16_t((x >> 16) | 0x0040u);
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
inline float bf16ToFloat(uint16_t h) { return bitsFloat(uint32_t(h) << 16); }

inline uint16_t floatToF16(float f) {
  uint32_t x = floatBits(f);
  uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  uint32_t a = x & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) // infinity or NaN
    return uint16_t(sign | (a > 0x7F800000u ? 0x7E00u : 0x7C00u));
  if (a >= 0x477FF000u) // 65520 and above round to infinity
    return uint16_t(sign | 0x7C00u);
  if (a < 0x38800000u) // below 2^-14: a subnormal half, m · 2^-24
    return uint16_t(sign | uint32_t(std::nearbyint(bitsFloat(a) * 16777216.0f)));
  uint32_t h = ((((a >> 23) - 127 + 15) << 10) | ((a & 0x7FFFFFu) >> 13));
  uint32_t rest = a & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h; // a carry into the exponent is the right rounding too
  return uint16_t(sign | h);
}
inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0) {
    float v = float(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (e == 31)
    return bitsFloat(sign | 0x7F800000u | (m << 13));
  return bitsFloat(sign | ((e - 15 + 127) << 23) | (m << 13));
}

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_FLOAT16_H
