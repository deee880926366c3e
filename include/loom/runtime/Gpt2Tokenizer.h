//===- Gpt2Tokenizer.h - GPT-2 byte-level BPE -------------------*- C++ -*-===//
//
// GPT-2's tokenizer from the standard vocab.json (token -> id) and
// merges.txt (one "a b" merge per line, in rank order), giving the ids
// Hugging Face `tokenizers` gives on the same files (ByteLevel pre-tokenizer
// with GPT-2's regex, no prefix space; BPE without dropout, unknown token or
// subword affixes; ByteLevel decoder). docs/data.md, "GPT-2 BPE".
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_GPT2TOKENIZER_H
#define LOOM_RUNTIME_GPT2TOKENIZER_H

#include "loom/runtime/Status.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace loom {
namespace runtime {

/// A flat JSON object of string keys and non-negative integer values
/// ({"a": 0, "\u0120b": 1}), read with parseJson (Json.h, so strictly:
/// checked UTF-8, no duplicate keys, nothing after the object), each value
/// an integer without fraction or exponent below 2^31. Errors name `what`
/// and the line and column.
Result<std::vector<std::pair<std::string, int64_t>>>
parseJsonStringToIntObject(std::string_view text, const std::string &what);

/// The pieces GPT-2's pre-tokenizer regex
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// splits UTF-8 `text` into (views into `text`; together they are all of
/// it). \s is Unicode White_Space, \p{L} and \p{N} the letter and number
/// categories. A byte that is not part of valid UTF-8 counts as a code point
/// that is neither space, letter nor number.
std::vector<std::string_view> gpt2PreTokenize(std::string_view text);

class Gpt2Tokenizer {
public:
  /// Loads `vocabPath` (vocab.json) and `mergesPath` (merges.txt). Refuses,
  /// naming the file and line: a malformed file, a vocabulary without the
  /// 256 byte tokens or with an id used twice, a merge line that is not two
  /// tokens, or one whose tokens or result are not in the vocabulary.
  static Result<Gpt2Tokenizer> open(const std::string &vocabPath,
                                    const std::string &mergesPath);
  /// The same from the files' contents; `vocabName` and `mergesName` name
  /// them in messages.
  static Result<Gpt2Tokenizer> fromContents(std::string_view vocabJson,
                                            std::string_view mergesText,
                                            const std::string &vocabName,
                                            const std::string &mergesName);

  /// The ids of `text` (bytes, UTF-8 expected). Thread-safe.
  std::vector<int32_t> encode(std::string_view text) const;
  /// The bytes `ids` stand for; an id not in the vocabulary is an error
  /// naming it and its position. (HF returns a string, with U+FFFD for
  /// bytes that are not valid UTF-8; this returns the bytes themselves.)
  Result<std::string> decode(const std::vector<int32_t> &ids) const;

  /// The id of a vocabulary entry (its byte-level form, e.g. "<|endoftext|>"
  /// or "\u0120the"), if there is one.
  std::optional<int32_t> tokenId(std::string_view token) const;
  /// One more than the largest id (50257 for GPT-2's vocabulary).
  int64_t vocabSize() const { return int64_t(idToToken_.size()); }
  size_t mergeCount() const { return merges_.size(); }

private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  /// BPE of one pre-tokenized piece, its bytes already mapped to token ids.
  std::vector<int32_t> mergeWord(std::vector<int32_t> symbols) const;

  std::unordered_map<std::string, int32_t> tokenToId_;
  std::vector<std::optional<std::string>> idToToken_; // byte-level form
  std::vector<std::string> idToBytes_;                // decoded bytes
  int32_t byteId_[256] = {};                          // the byte tokens
  std::unordered_map<uint64_t, Merge> merges_;        // (left, right) ids
  /// Pieces already merged (HF keeps such a cache too); bounded.
  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  std::shared_ptr<Cache> cache_ = std::make_shared<Cache>();
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_GPT2TOKENIZER_H
