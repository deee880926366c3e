//===- Data.h - token datasets sampled by global index ----------*- C++ -*-===//
//
// A training corpus is one stream of token ids: a text file read as bytes
// (vocabulary 256), or a raw token file of little-endian uint16 or int32 ids.
// Sample i is the window of seq + 1 tokens starting at token
// (i mod windows) · seq, where windows = (tokens - 1) / seq: its tokens are
// window[0, seq) and its labels window[1, seq]. A sample depends only on its
// global index, so for one global batch size every mesh shape trains on the
// same sequences in the same step.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_DATA_H
#define LOOM_RUNTIME_DATA_H

#include "loom/runtime/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

enum class TokenFormat { Bytes, Uint16, Int32 };

class TokenDataset {
public:
  /// Reads `path`. Fails, naming the file, when it is missing or unreadable,
  /// empty, shorter than seq + 1 tokens, not a whole number of tokens, or
  /// holds an id outside [0, vocab).
  static Result<TokenDataset> open(const std::string &path, TokenFormat format,
                                   int64_t seqLength, int64_t vocab);

  int64_t numTokens() const { return int64_t(tokens_.size()); }
  /// Distinct samples before the stream repeats.
  int64_t samplesPerEpoch() const { return windows_; }
  /// Writes sample `globalIndex`'s seq tokens and seq labels.
  void sample(int64_t globalIndex, int32_t *tokens, int32_t *labels) const;

private:
  std::vector<int32_t> tokens_;
  int64_t seq_ = 0, windows_ = 0;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_DATA_H
