//===- Sha256.h - SHA-256 (FIPS 180-4) for content keys ---------*- C++ -*-===//
//
// The runtime names cached artefacts (the CPU backend's compiled kernels) by
// the SHA-256 of what produced them and checks the artefacts against their
// own SHA-256 on load. A cryptographic hash, not a CRC: two different
// sources must never share a cache entry silently.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SHA256_H
#define LOOM_RUNTIME_SHA256_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace loom {
namespace runtime {

/// An incremental SHA-256: update() any number of times, then digest() once.
class Sha256 {
public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();
  void update(const void *data, size_t size);
  void update(const std::string &bytes) { update(bytes.data(), bytes.size()); }
  /// Pads and finishes; the object must not be updated afterwards.
  Digest digest();
  /// digest() as 64 lowercase hex digits.
  std::string hexDigest();

private:
  void compress(const uint8_t *block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
};

/// The SHA-256 of `size` bytes at `data` (or of `bytes`) in lowercase hex.
std::string sha256Hex(const void *data, size_t size);
std::string sha256Hex(const std::string &bytes);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_SHA256_H
