//===- RandomStreams.h - keys of Loom's named random streams ----*- C++ -*-===//
//
// Every random number Loom draws comes from a Philox stream whose key is a
// hash of (seed, what the stream is for, a name, a counter). Parameters are
// keyed by their name; dropout masks by their site and the step. The purpose
// is hashed in, so a parameter and a dropout site of the same name get
// unrelated keys.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_RANDOMSTREAMS_H
#define LOOM_RUNTIME_RANDOMSTREAMS_H

#include <cstdint>
#include <string_view>

namespace loom {
namespace runtime {

enum class StreamPurpose : uint64_t {
  Parameter = 1,
  Dropout = 2,
  MaskedLm = 3
};

uint64_t streamKey(uint64_t seed, StreamPurpose purpose,
                   std::string_view name, uint64_t counter);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_RANDOMSTREAMS_H
