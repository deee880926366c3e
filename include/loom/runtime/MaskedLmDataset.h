//===- MaskedLmDataset.h - BERT's masked-LM samples by global index -*- C++
//-*-===//
//
// The samples a masked language model trains on, made as Megatron's BERT
// dataset makes them (megatron/core/datasets/bert_dataset.py with
// masking.py's create_masked_lm_predictions), from the text of another
// sample source (bytes, raw ids, Megatron indexed datasets, blends):
//  - sample i's text is the first n tokens of the text source's sample i,
//    n = seq - 3, or with probability short_seq_prob a length drawn in
//    [2, seq - 3] (Megatron's short_seq_prob, 0.1);
//  - it is cut in two at a drawn point: [CLS] A [SEP] B [SEP], token types 0
//    up to the first [SEP] and 1 after it, then [PAD] with padding_mask
//    false, token type 0 and no label;
//  - max(1, round(0.15 · (n + 3))) of the text's positions (Megatron counts
//    the [CLS] and [SEP]s; round half to even, as Python's) are predicted: each
//    becomes [MASK] with probability 0.8, stays itself with 0.1, becomes a
//    uniformly drawn id of [0, vocab) with 0.1; its label is the original id,
//    every other label -100.
// Every draw comes from a Philox stream keyed by (seed, global index), so a
// sample is a function of its global index alone: every mesh masks the
// same tokens (DESIGN.md, "Invariance"). There is no next-sentence label:
// B is A's continuation (Megatron's --bert-no-binary-head).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_MASKEDLMDATASET_H
#define LOOM_RUNTIME_MASKEDLMDATASET_H

#include "loom/runtime/Data.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

struct MaskedLmOptions {
  int64_t seqLength = 0;
  /// Random replacements are drawn from [0, vocab).
  int64_t vocab = 0;
  int32_t padId = 0, clsId = 101, sepId = 102, maskId = 103; // BERT's ids
  double maskProb = 0.15;
  double shortSeqProb = 0.1;
  uint64_t seed = 0;
  /// The label of a position that is not predicted.
  int32_t ignoreIndex = -100;
};

/// Parses "PAD,CLS,SEP,MASK" (four ids) into `options`; the message names
/// the flag (`what`) and what is wrong.
Status parseSpecialIds(const std::string &text, const std::string &what,
                       MaskedLmOptions &options);

class MaskedLmDataset : public SampleSource {
public:
  /// Fails when seq < 5 (no room for [CLS] A [SEP] B [SEP]), an id is
  /// outside [0, vocab), two special ids are equal, or a probability is
  /// outside [0, 1] (mask_prob in (0, 1]).
  static Result<MaskedLmDataset> make(const SampleSource &text,
                                      const MaskedLmOptions &options);

  std::vector<std::string> fields() const override {
    return {"tokens", "token_types", "padding_mask", "labels"};
  }
  Status readFields(int64_t globalIndex, int32_t *const *out) const override;
  /// The tokens and labels fields alone.
  Status readSample(int64_t globalIndex, int32_t *tokens,
                    int32_t *labels) const override;
  const MaskedLmOptions &options() const { return options_; }

private:
  MaskedLmDataset(const SampleSource &text, const MaskedLmOptions &options)
      : text_(&text), options_(options) {}
  const SampleSource *text_;
  MaskedLmOptions options_;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_MASKEDLMDATASET_H
