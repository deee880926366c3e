//===- Philox.h - the counter-based generator (Philox4x32-10) ---*- C++ -*-===//
//
// Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11). Each
// output depends only on a 128-bit counter and a 64-bit key, never on how many
// numbers were drawn before it. Loom keys parameter initialisation and dropout
// masks by global element indices, so every mesh shape draws the same numbers
// (DESIGN.md, "Invariance").
//
// The header compiles as host C++ and as CUDA C++ (nvcc or NVRTC), so CPU and
// GPU kernels share one definition. It includes no headers for that reason.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_PHILOX_H
#define LOOM_RUNTIME_PHILOX_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define LOOM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LOOM_HOST_DEVICE inline
#endif

namespace loom {
namespace runtime {

using PhiloxWord = unsigned int; // 32 bits on every target Loom builds for
using PhiloxWide = unsigned long long; // 64 bits

struct PhiloxCounter {
  PhiloxWord word[4];
};

struct PhiloxKey {
  PhiloxWord word[2];
};

namespace philox_detail {
constexpr PhiloxWord kMultiplier0 = 0xD2511F53u;
constexpr PhiloxWord kMultiplier1 = 0xCD9E8D57u;
constexpr PhiloxWord kWeyl0 = 0x9E3779B9u; // golden ratio
constexpr PhiloxWord kWeyl1 = 0xBB67AE85u; // sqrt(3) - 1

LOOM_HOST_DEVICE PhiloxCounter round(PhiloxCounter c, PhiloxKey k) {
  PhiloxWide p0 = static_cast<PhiloxWide>(kMultiplier0) * c.word[0];
  PhiloxWide p1 = static_cast<PhiloxWide>(kMultiplier1) * c.word[2];
  PhiloxWord hi0 = static_cast<PhiloxWord>(p0 >> 32),
             lo0 = static_cast<PhiloxWord>(p0);
  PhiloxWord hi1 = static_cast<PhiloxWord>(p1 >> 32),
             lo1 = static_cast<PhiloxWord>(p1);
  return PhiloxCounter{
      {hi1 ^ c.word[1] ^ k.word[0], lo1, hi0 ^ c.word[3] ^ k.word[1], lo0}};
}
} // namespace philox_detail

/// Philox4x32 with 10 rounds: four independent 32-bit words for (counter, key).
LOOM_HOST_DEVICE PhiloxCounter philox4x32_10(PhiloxCounter counter,
                                             PhiloxKey key) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      key.word[0] += philox_detail::kWeyl0;
      key.word[1] += philox_detail::kWeyl1;
    }
    counter = philox_detail::round(counter, key);
  }
  return counter;
}

/// A uniform float in the open interval (0, 1) from the top 23 bits of `bits`:
/// (m + 0.5) / 2^23, so neither 0 nor 1 comes out (safe for log in Box–Muller).
/// 23 bits, not 24: m + 0.5 must be exact in a float's 24-bit significand, or
/// the largest m rounds up to exactly 1.
LOOM_HOST_DEVICE float uniformOpen01(PhiloxWord bits) {
  return (static_cast<float>(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_PHILOX_H
