//===- RandomStreams.cpp - keys of Loom's named random streams ------------===//

#include "loom/runtime/RandomStreams.h"

namespace loom {
namespace runtime {

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
} // namespace

uint64_t streamKey(uint64_t seed, StreamPurpose purpose, std::string_view name,
                   uint64_t counter) {
  uint64_t h = 0xCBF29CE484222325ull; // FNV-1a over the name
  for (char c : name) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001B3ull;
  }
  uint64_t key = splitmix64(seed ^ h);
  key = splitmix64(key ^ static_cast<uint64_t>(purpose));
  return splitmix64(key ^ counter);
}

} // namespace runtime
} // namespace loom
