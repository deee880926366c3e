//===- Data.cpp - token datasets sampled by global index ------------------===//

#include "loom/runtime/Data.h"
#include "loom/runtime/Files.h"

namespace loom {
namespace runtime {

Result<TokenDataset> TokenDataset::open(const std::string &path,
                                        TokenFormat format, int64_t seqLength,
                                        int64_t vocab) {
  // Bounded so seq + 1 and the window arithmetic cannot overflow.
  if (seqLength < 1 || seqLength > kMaxDataTokens)
    return Status::error("the sequence length must be in [1, 2^32], got " +
                         std::to_string(seqLength));
  size_t width = format == TokenFormat::Bytes    ? 1
                 : format == TokenFormat::Uint16 ? 2
                                                 : 4;
  Result<std::vector<uint8_t>> read =
      readWholeFile(path, "the data file", uint64_t(kMaxDataTokens) * width);
  if (!read.ok())
    return Status::error(read.message());
  const std::vector<uint8_t> &bytes = *read;
  if (bytes.empty())
    return Status::error("the data file '" + path +
                         "' is empty; training needs at least seq + 1 = " +
                         std::to_string(seqLength + 1) + " tokens");

  TokenDataset data;
  if (bytes.size() % width != 0)
    return Status::error(
        "the data file '" + path + "' has " + std::to_string(bytes.size()) +
        " bytes, not a whole number of " + std::to_string(width) +
        "-byte tokens: is it truncated, or another format?");
  size_t count = bytes.size() / width;
  data.tokens_.resize(count);
  const uint8_t *raw = bytes.data();
  for (size_t i = 0; i < count; ++i) {
    const uint8_t *p = raw + i * width;
    int64_t id =
        width == 1 ? p[0]
        : width == 2
            ? int64_t(p[0] | (p[1] << 8))
            : int64_t(int32_t(uint32_t(p[0]) | (uint32_t(p[1]) << 8) |
                              (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24)));
    if (id < 0 || id >= vocab)
      return Status::error(
          "the data file '" + path + "' has token id " + std::to_string(id) +
          " at position " + std::to_string(i) +
          ", outside the model's vocabulary of " + std::to_string(vocab));
    data.tokens_[i] = int32_t(id);
  }
  if (int64_t(count) < seqLength + 1)
    return Status::error("the data file '" + path + "' has " +
                         std::to_string(count) +
                         " tokens; training needs at least seq + 1 = " +
                         std::to_string(seqLength + 1));
  data.seq_ = seqLength;
  data.windows_ = (int64_t(count) - 1) / seqLength;
  return data;
}

void TokenDataset::sample(int64_t globalIndex, int32_t *tokens,
                          int32_t *labels) const {
  int64_t index = ((globalIndex % windows_) + windows_) % windows_;
  if (shuffled_) {
    int64_t epoch = globalIndex >= 0 ? globalIndex / windows_ : 0;
    if (epoch != epoch_ || order_.empty()) {
      // Fisher-Yates with splitmix64 keyed by (seed, epoch): the same
      // permutation on every platform and every mesh.
      order_.resize(size_t(windows_));
      for (int64_t i = 0; i < windows_; ++i)
        order_[size_t(i)] = i;
      uint64_t state = shuffleSeed_ * 0x9E3779B97F4A7C15ull + uint64_t(epoch);
      auto next = [&state] {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
      };
      for (int64_t i = windows_ - 1; i > 0; --i) {
        int64_t j = int64_t((unsigned __int128)next() * uint64_t(i + 1) >> 64);
        std::swap(order_[size_t(i)], order_[size_t(j)]);
      }
      epoch_ = epoch;
    }
    index = order_[size_t(index)];
  }
  int64_t start = index * seq_;
  for (int64_t i = 0; i < seq_; ++i) {
    tokens[i] = tokens_[start + i];
    labels[i] = tokens_[start + i + 1];
  }
}

} // namespace runtime
} // namespace loom
