//===- MaskedLmDataset.cpp - BERT's masked-LM samples by global index -----===//
//
// See MaskedLmDataset.h for what a sample is and why every draw is keyed by
// the sample's global index.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/MaskedLmDataset.h"
#include "loom/runtime/Philox.h"
#include "loom/runtime/RandomStreams.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

namespace loom {
namespace runtime {

namespace {

/// The draws of one sample: Philox words from the (seed, index) stream, in
/// order, four per counter.
class SampleRng {
public:
  SampleRng(uint64_t seed, int64_t index)
      : key_(streamKey(seed, StreamPurpose::MaskedLm, "sample",
                       uint64_t(index))) {}
  uint32_t next() {
    if (used_ == 4) {
      PhiloxCounter c{{PhiloxWord(counter_), PhiloxWord(counter_ >> 32), 0, 0}};
      PhiloxKey k{{PhiloxWord(key_), PhiloxWord(key_ >> 32)}};
      block_ = philox4x32_10(c, k);
      ++counter_;
      used_ = 0;
    }
    return block_.word[used_++];
  }
  /// Uniform in (0, 1).
  double uniform() { return uniformOpen01(next()); }
  /// Uniform in [0, n), n >= 1 (by 64-bit multiply-shift: the bias is
  /// below 2^-32 for any n a sample has).
  int64_t below(int64_t n) {
    uint64_t wide = (uint64_t(next()) << 32) | next();
    return int64_t((unsigned __int128)wide * uint64_t(n) >> 64);
  }

private:
  uint64_t key_;
  uint64_t counter_ = 0;
  PhiloxCounter block_{};
  int used_ = 4;
};

} // namespace

Status parseSpecialIds(const std::string &text, const std::string &what,
                       MaskedLmOptions &options) {
  int32_t *ids[] = {&options.padId, &options.clsId, &options.sepId,
                    &options.maskId};
  size_t at = 0;
  for (int k = 0; k < 4; ++k) {
    size_t end = text.find(',', at);
    std::string word = text.substr(
        at, end == std::string::npos ? std::string::npos : end - at);
    int32_t v = 0;
    auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (word.empty() || ec != std::errc() || ptr != word.data() + word.size() ||
        v < 0)
      return Status::error(what + " " + text +
                           ": expected four ids PAD,CLS,SEP,MASK (integers "
                           ">= 0), e.g. 0,101,102,103 (BERT's)");
    *ids[k] = v;
    if ((k < 3) != (end != std::string::npos))
      return Status::error(what + " " + text +
                           ": expected four ids PAD,CLS,SEP,MASK, e.g. "
                           "0,101,102,103 (BERT's)");
    at = end + 1;
  }
  return Status::success();
}

Result<MaskedLmDataset> MaskedLmDataset::make(const SampleSource &text,
                                              const MaskedLmOptions &o) {
  if (o.seqLength < 5)
    return Status::error("a masked-LM sample of " +
                         std::to_string(o.seqLength) +
                         " tokens has no room for [CLS] A [SEP] B [SEP]: the "
                         "model's seq must be 5 or more");
  std::pair<const char *, int32_t> ids[] = {
      {"PAD", o.padId}, {"CLS", o.clsId}, {"SEP", o.sepId}, {"MASK", o.maskId}};
  for (auto [name, id] : ids)
    if (id < 0 || id >= o.vocab)
      return Status::error(std::string("the special id ") + name + " = " +
                           std::to_string(id) +
                           " is outside the model's vocabulary [0, " +
                           std::to_string(o.vocab) + ")");
  for (size_t a = 0; a < 4; ++a)
    for (size_t b = a + 1; b < 4; ++b)
      if (ids[a].second == ids[b].second)
        return Status::error(std::string("the special ids ") + ids[a].first +
                             " and " + ids[b].first + " are both " +
                             std::to_string(ids[a].second) +
                             "; each needs its own id");
  if (!(o.maskProb > 0 && o.maskProb <= 1))
    return Status::error("the mask probability " + std::to_string(o.maskProb) +
                         " must be in (0, 1] (BERT's is 0.15)");
  if (!(o.shortSeqProb >= 0 && o.shortSeqProb <= 1))
    return Status::error("the short-sequence probability " +
                         std::to_string(o.shortSeqProb) +
                         " must be in [0, 1] (Megatron's is 0.1)");
  return MaskedLmDataset(text, o);
}

Status MaskedLmDataset::readFields(int64_t globalIndex,
                                   int32_t *const *out) const {
  const MaskedLmOptions &o = options_;
  int64_t seq = o.seqLength;
  int32_t *tokens = out[0], *types = out[1], *mask = out[2], *labels = out[3];
  std::vector<int32_t> text(static_cast<size_t>(seq)),
      next(static_cast<size_t>(seq));
  if (Status s = text_->readSample(globalIndex, text.data(), next.data());
      !s.ok())
    return s;
  SampleRng rng(o.seed, globalIndex);
  int64_t n = seq - 3;
  if (rng.uniform() < o.shortSeqProb)
    n = 2 + rng.below(n - 1);       // [2, seq - 3]
  int64_t a = 1 + rng.below(n - 1); // A is text[0, a), B text[a, n)
  // [CLS] A [SEP] B [SEP] [PAD]...
  std::fill(tokens, tokens + seq, o.padId);
  std::fill(types, types + seq, 0);
  std::fill(mask, mask + seq, 0);
  std::fill(labels, labels + seq, o.ignoreIndex);
  std::vector<int64_t> positions; // of the text in the sample
  int64_t p = 0;
  tokens[p++] = o.clsId;
  for (int64_t t = 0; t < n; ++t) {
    if (t == a)
      tokens[p++] = o.sepId;
    positions.push_back(p);
    tokens[p++] = text[size_t(t)];
  }
  tokens[p++] = o.sepId;
  for (int64_t k = a + 2; k < p; ++k)
    types[k] = 1;
  std::fill(mask, mask + p, 1);
  // Megatron's create_masked_lm_predictions: the candidates shuffled, the
  // first num_to_predict predicted, num_to_predict = round(p · the
  // sample's n + 3 tokens, [CLS] and [SEP]s counted) rounded half to even
  // as Python's round (nearbyint in the default rounding mode), at least 1.
  // (Its cap, p · the sample's length, never binds: a count above the cap
  // ends its loop at the cap's ceiling, the same number.)
  int64_t predict = std::min<int64_t>(
      int64_t(positions.size()),
      std::max<int64_t>(1,
                        int64_t(std::nearbyint(double(n + 3) * o.maskProb))));
  for (int64_t k = int64_t(positions.size()); k > 1; --k)
    std::swap(positions[size_t(k - 1)], positions[size_t(rng.below(k))]);
  for (int64_t k = 0; k < predict; ++k) {
    int64_t at = positions[size_t(k)];
    labels[at] = tokens[at];
    if (rng.uniform() < 0.8)
      tokens[at] = o.maskId;
    else if (rng.uniform() < 0.5)
      ; // kept
    else
      tokens[at] = int32_t(rng.below(o.vocab));
  }
  return Status::success();
}

Status MaskedLmDataset::readSample(int64_t globalIndex, int32_t *tokens,
                                   int32_t *labels) const {
  std::vector<int32_t> types(static_cast<size_t>(options_.seqLength)),
      mask(static_cast<size_t>(options_.seqLength));
  int32_t *out[] = {tokens, types.data(), mask.data(), labels};
  return readFields(globalIndex, out);
}

} // namespace runtime
} // namespace loom
