//===- Data.h - token datasets sampled by global index ----------*- C++ -*-===//
//
// A training corpus is one stream of token ids: a text file read as bytes
// (vocabulary 256), or a raw token file of little-endian uint16 or int32 ids.
// Sample i is the window of seq + 1 tokens starting at token
// (i mod windows) · seq, where windows = (tokens - 1) / seq: its tokens are
// window[0, seq) and its labels window[1, seq]. A sample depends only on its
// global index, so for one global batch size every mesh shape trains on the
// same sequences in the same step. With shuffle(seed), each epoch visits the
// windows in a permutation keyed by (seed, epoch), as Megatron's shuffle
// index does: still a function of the global index alone.
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

/// The most tokens a corpus may hold (and the longest sequence): the whole
/// file is read into memory as int32 ids, so 2^32 tokens is 16 GiB there. A
/// larger corpus is a Megatron indexed dataset (IndexedDataset.h), mapped.
constexpr int64_t kMaxDataTokens = int64_t(1) << 32;

/// What a training step reads (Session::step): sample i's seq tokens and seq
/// labels, a function of the global index i alone. A corpus of raw ids
/// (TokenDataset) and Megatron's GPT datasets (GptDataset.h) are both one.
class SampleSource {
public:
  virtual ~SampleSource() = default;
  /// Fails, naming the file, when the sample cannot be read (an id outside
  /// the vocabulary of a corpus checked as it is read).
  virtual Status readSample(int64_t globalIndex, int32_t *tokens,
                            int32_t *labels) const = 0;
  /// The model inputs a sample gives, by name: tokens and labels, and for
  /// a masked-LM source (MaskedLmDataset.h) token_types and padding_mask
  /// too. Session::step feeds each model input the field of its name.
  virtual std::vector<std::string> fields() const {
    return {"tokens", "labels"};
  }
  /// Writes sample `globalIndex`'s fields, seq int32 values each, into
  /// out[k] for fields()[k] (an i1 field as 0 or 1).
  virtual Status readFields(int64_t globalIndex, int32_t *const *out) const {
    return readSample(globalIndex, out[0], out[1]);
  }
};

class TokenDataset : public SampleSource {
public:
  /// Reads `path`. Fails, naming the file, when it is missing or unreadable,
  /// not a regular file (a directory, a FIFO, /dev/zero), over
  /// kMaxDataTokens tokens, empty, shorter than seq + 1 tokens, not a whole
  /// number of tokens, or holds an id outside [0, vocab).
  static Result<TokenDataset> open(const std::string &path, TokenFormat format,
                                   int64_t seqLength, int64_t vocab);

  int64_t numTokens() const { return int64_t(tokens_.size()); }
  /// Distinct samples before the stream repeats.
  int64_t samplesPerEpoch() const { return windows_; }
  /// Visit the windows of each epoch in a seeded random order.
  void shuffle(uint64_t seed) {
    shuffled_ = true;
    shuffleSeed_ = seed;
    order_.clear();
  }
  /// Writes sample `globalIndex`'s seq tokens and seq labels.
  void sample(int64_t globalIndex, int32_t *tokens, int32_t *labels) const;
  /// The same; the ids were checked when the file was read.
  Status readSample(int64_t globalIndex, int32_t *tokens,
                    int32_t *labels) const override {
    sample(globalIndex, tokens, labels);
    return Status::success();
  }

private:
  std::vector<int32_t> tokens_;
  int64_t seq_ = 0, windows_ = 0;
  bool shuffled_ = false;
  uint64_t shuffleSeed_ = 0;
  // The current epoch's permutation, built when first needed.
  mutable std::vector<int64_t> order_;
  mutable int64_t epoch_ = -1;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_DATA_H
