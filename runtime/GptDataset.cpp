//===- GptDataset.cpp - Megatron's GPT sample index, splits, blends -------===//

#include "loom/runtime/GptDataset.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace loom {
namespace runtime {

NumpyRandomState::NumpyRandomState(uint32_t seed) {
  // numpy's mt19937_seed (init_genrand).
  for (int i = 0; i < 624; ++i) {
    state_[i] = seed;
    seed = 1812433253u * (seed ^ (seed >> 30)) + uint32_t(i + 1);
  }
}

uint32_t NumpyRandomState::next32() {
  if (position_ == 624) {
    for (int i = 0; i < 624; ++i) {
      uint32_t y =
          (state_[i] & 0x80000000u) | (state_[(i + 1) % 624] & 0x7fffffffu);
      state_[i] =
          state_[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) ? 0x9908b0dfu : 0);
    }
    position_ = 0;
  }
  uint32_t y = state_[position_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t NumpyRandomState::interval(uint64_t max) {
  if (max == 0)
    return 0;
  uint64_t mask = max;
  for (int shift : {1, 2, 4, 8, 16, 32})
    mask |= mask >> shift;
  uint64_t value;
  if (max <= 0xffffffffu) {
    while ((value = (next32() & mask)) > max) {
    }
  } else {
    do {
      uint64_t hi = next32();
      value = ((hi << 32) | next32()) & mask;
    } while (value > max);
  }
  return value;
}

Result<std::array<double, 3>> parseSplit(const std::string &split) {
  std::array<double, 3> weights = {0, 0, 0};
  std::stringstream in(split);
  std::string word;
  int count = 0;
  auto bad = [&](const std::string &why) {
    return Status::error("--split " + split + ": " + why +
                         "; give train,valid,test weights such as 98,2,0");
  };
  while (std::getline(in, word, ',')) {
    if (count == 3)
      return bad("more than three weights");
    char *end = nullptr;
    double w = std::strtod(word.c_str(), &end);
    if (word.empty() || *end || !std::isfinite(w) || w < 0)
      return bad("'" + word + "' is not a non-negative number");
    weights[size_t(count++)] = w;
  }
  double sum = weights[0] + weights[1] + weights[2];
  if (count == 0 || !(sum > 0))
    return bad("the weights sum to 0");
  for (double &w : weights)
    w /= sum;
  return weights;
}

std::pair<int64_t, int64_t> splitDocuments(const std::array<double, 3> &split,
                                           int which, int64_t documents) {
  // Megatron's convert_split_vector_to_split_matrix and round(): bounds at
  // the cumulative sums, rounded half to even (nearbyint's default).
  double lo = 0;
  for (int i = 0; i < which; ++i)
    lo += split[size_t(i)];
  double hi = lo + split[size_t(which)];
  return {int64_t(std::nearbyint(lo * double(documents))),
          int64_t(std::nearbyint(hi * double(documents)))};
}

Result<GptDataset> GptDataset::make(std::shared_ptr<const IndexedDataset> data,
                                    int64_t begin, int64_t end,
                                    int64_t seqLength, int64_t vocab) {
  if (seqLength < 1 || seqLength >= INT32_MAX)
    return Status::error("the sequence length must be in [1, 2^31 - 1), got " +
                         std::to_string(seqLength));
  if (begin < 0 || end < begin || end > data->numSequences())
    return Status::error("the documents [" + std::to_string(begin) + ", " +
                         std::to_string(end) + ") are not within the " +
                         std::to_string(data->numSequences()) +
                         " sequences of '" + data->prefix() + "'");
  GptDataset gpt;
  gpt.begin_ = begin;
  gpt.end_ = end;
  gpt.seq_ = seqLength;
  gpt.vocab_ = vocab;
  for (int64_t d = begin; d < end; ++d)
    gpt.tokensPerEpoch_ += data->sequenceLength(d);
  if (gpt.tokensPerEpoch_ < seqLength + 1)
    return Status::error(
        "the documents [" + std::to_string(begin) + ", " + std::to_string(end) +
        ") of '" + data->prefix() + "' hold " +
        std::to_string(gpt.tokensPerEpoch_) +
        " tokens; a sample needs seq + 1 = " + std::to_string(seqLength + 1));
  // build_sample_idx with drop_last_partial_sequence and one extra token.
  gpt.samplesPerEpoch_ = (gpt.tokensPerEpoch_ - 1) / seqLength;
  gpt.data_ = std::move(data);
  return gpt;
}

void GptDataset::shuffle(bool on, uint64_t seed) {
  std::lock_guard<std::mutex> guard(*lock_);
  shuffled_ = on;
  seed_ = seed;
  cached_.reset();
  cachedEpoch_ = -1;
}

uint32_t GptDataset::epochSeed(int64_t epoch) const {
  if (epoch == 0)
    return uint32_t(seed_);
  uint64_t z = seed_ + uint64_t(epoch) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return uint32_t(z ^ (z >> 31));
}

GptDataset::EpochIndex GptDataset::buildEpoch(int64_t epoch) const {
  EpochIndex index;
  NumpyRandomState random(epochSeed(epoch));
  // _build_document_index, one epoch.
  index.documentIndex.resize(size_t(end_ - begin_));
  for (int64_t d = begin_; d < end_; ++d)
    index.documentIndex[size_t(d - begin_)] = int32_t(d);
  if (shuffled_)
    random.shuffle(index.documentIndex);

  // build_sample_idx (helpers.cpp), add_extra_token_to_sequence = 1.
  int64_t samples = samplesPerEpoch_;
  index.sampleIndex.reserve(size_t(2 * (samples + 1)));
  int64_t position = 0, offset = 0;
  index.sampleIndex.push_back(position);
  index.sampleIndex.push_back(offset);
  int64_t last = int64_t(index.documentIndex.size()) - 1;
  for (int64_t s = 1; s <= samples; ++s) {
    int64_t remaining = seq_ + 1;
    while (remaining != 0) {
      int64_t length =
          data_->sequenceLength(index.documentIndex[size_t(position)]) - offset;
      remaining -= length;
      if (remaining <= 0) {
        offset += remaining + length - 1;
        remaining = 0;
      } else {
        if (position == last) {
          offset =
              data_->sequenceLength(index.documentIndex[size_t(position)]) - 1;
          break;
        }
        ++position;
        offset = 0;
      }
    }
    index.sampleIndex.push_back(position);
    index.sampleIndex.push_back(offset);
  }

  // _build_shuffle_index, one epoch: no separate final epoch.
  index.shuffleIndex.resize(size_t(samples));
  for (int64_t s = 0; s < samples; ++s)
    index.shuffleIndex[size_t(s)] = s;
  if (shuffled_)
    random.shuffle(index.shuffleIndex);
  return index;
}

Status GptDataset::readSample(int64_t globalIndex, int32_t *tokens,
                              int32_t *labels) const {
  if (globalIndex < 0)
    return Status::error("sample " + std::to_string(globalIndex) +
                         " does not exist; samples count from 0");
  int64_t epoch = globalIndex / samplesPerEpoch_;
  std::shared_ptr<const EpochIndex> index;
  {
    std::lock_guard<std::mutex> guard(*lock_);
    if (cachedEpoch_ != epoch) {
      cached_ = std::make_shared<const EpochIndex>(buildEpoch(epoch));
      cachedEpoch_ = epoch;
    }
    index = cached_;
  }
  int64_t k = index->shuffleIndex[size_t(globalIndex % samplesPerEpoch_)];
  int64_t first = index->sampleIndex[size_t(2 * k)];
  int64_t firstOffset = index->sampleIndex[size_t(2 * k + 1)];
  int64_t lastPosition = index->sampleIndex[size_t(2 * k + 2)];
  int64_t lastOffset = index->sampleIndex[size_t(2 * k + 3)];
  // GPTDataset._query_document_sample_shuffle_indices: the tail of the first
  // document, whole documents between, the head of the last.
  std::vector<int32_t> window(size_t(seq_ + 1));
  int64_t filled = 0;
  for (int64_t p = first; p <= lastPosition; ++p) {
    int64_t document = index->documentIndex[size_t(p)];
    int64_t from = p == first ? firstOffset : 0;
    int64_t to =
        p == lastPosition ? lastOffset + 1 : data_->sequenceLength(document);
    if (Status s = data_->read(document, from, to - from, vocab_,
                               window.data() + filled);
        !s.ok())
      return s;
    filled += to - from;
  }
  for (int64_t i = 0; i < seq_; ++i) {
    tokens[i] = window[size_t(i)];
    labels[i] = window[size_t(i + 1)];
  }
  return Status::success();
}

Result<BlendedDataset> BlendedDataset::make(std::vector<GptDataset> parts,
                                            std::vector<double> weights) {
  if (parts.empty() || parts.size() != weights.size())
    return Status::error("a blend needs one weight per dataset, and at least "
                         "one dataset");
  if (parts.size() > 32767)
    return Status::error("a blend takes at most 32767 datasets (Megatron's "
                         "int16 dataset index)");
  double sum = 0;
  for (double w : weights) {
    if (!(w > 0) || !std::isfinite(w))
      return Status::error("blend weight " + std::to_string(w) +
                           " is not positive; give each dataset a weight "
                           "above 0");
    sum += w;
  }
  BlendedDataset blend;
  for (double &w : weights)
    w /= sum;
  blend.parts_ = std::move(parts);
  blend.weights_ = std::move(weights);
  return blend;
}

void BlendedDataset::shuffle(bool on, uint64_t seed) {
  for (GptDataset &part : parts_)
    part.shuffle(on, seed);
}

std::pair<int, int64_t> BlendedDataset::locate(int64_t globalIndex) const {
  if (parts_.size() == 1)
    return {0, globalIndex};
  std::lock_guard<std::mutex> guard(*lock_);
  int64_t chunk = globalIndex / kChunk;
  if (chunk != cachedChunk_) {
    size_t n = parts_.size();
    if (chunkCounts_.empty())
      chunkCounts_.push_back(std::vector<int64_t>(n, 0));
    // build_blending_indices, a chunk at a time from the counts at its start.
    auto walk = [&](int64_t c, std::vector<int64_t> &counts,
                    std::vector<std::pair<int, int64_t>> *out) {
      for (int64_t s = c * kChunk; s < (c + 1) * kChunk; ++s) {
        double at = std::max(double(s), 1.0);
        size_t best = 0;
        double bestError = weights_[0] * at - double(counts[0]);
        for (size_t d = 1; d < n; ++d) {
          double error = weights_[d] * at - double(counts[d]);
          if (error > bestError) {
            bestError = error;
            best = d;
          }
        }
        if (out)
          out->push_back({int(best), counts[best]});
        ++counts[best];
      }
    };
    while (int64_t(chunkCounts_.size()) <= chunk) {
      std::vector<int64_t> counts = chunkCounts_.back();
      walk(int64_t(chunkCounts_.size()) - 1, counts, nullptr);
      chunkCounts_.push_back(std::move(counts));
    }
    std::vector<int64_t> counts = chunkCounts_[size_t(chunk)];
    chunk_.clear();
    walk(chunk, counts, &chunk_);
    cachedChunk_ = chunk;
  }
  return chunk_[size_t(globalIndex - chunk * kChunk)];
}

Status BlendedDataset::readSample(int64_t globalIndex, int32_t *tokens,
                                  int32_t *labels) const {
  if (globalIndex < 0)
    return Status::error("sample " + std::to_string(globalIndex) +
                         " does not exist; samples count from 0");
  std::pair<int, int64_t> at = locate(globalIndex);
  return parts_[size_t(at.first)].readSample(at.second, tokens, labels);
}

Result<std::vector<DataPathEntry>>
parseDataPath(const std::vector<std::string> &words) {
  if (words.size() == 1)
    return std::vector<DataPathEntry>{{1.0, words[0]}};
  if (words.empty() || words.size() % 2 != 0)
    return Status::error("--data-path takes PREFIX, or pairs W1 PREFIX1 W2 "
                         "PREFIX2 ...; got " +
                         std::to_string(words.size()) + " words");
  std::vector<DataPathEntry> entries;
  for (size_t i = 0; i < words.size(); i += 2) {
    char *end = nullptr;
    double w = std::strtod(words[i].c_str(), &end);
    if (words[i].empty() || *end || !std::isfinite(w) || !(w > 0))
      return Status::error("--data-path: '" + words[i] +
                           "' is not a positive weight; write W1 PREFIX1 W2 "
                           "PREFIX2 ...");
    entries.push_back({w, words[i + 1]});
  }
  return entries;
}

Result<BlendedDataset> openMegatronData(const std::vector<DataPathEntry> &path,
                                        const std::string &split, int which,
                                        int64_t seqLength, int64_t vocab) {
  Result<std::array<double, 3>> weights = parseSplit(split);
  if (!weights.ok())
    return Status::error(weights.message());
  static const char *names[] = {"train", "valid", "test"};
  std::vector<GptDataset> parts;
  std::vector<double> blend;
  for (const DataPathEntry &entry : path) {
    Result<IndexedDataset> data = IndexedDataset::open(entry.prefix);
    if (!data.ok())
      return Status::error(data.message());
    auto shared = std::make_shared<const IndexedDataset>(std::move(*data));
    // Split by sequence, as Megatron's GPTDataset.numel_low_level_dataset
    // does: its "documents" are the index's sequences. A document of no
    // sequences (preprocess_data.py writes one for an empty text) or of
    // several makes the two counts differ.
    std::pair<int64_t, int64_t> range =
        splitDocuments(*weights, which, shared->numSequences());
    Result<GptDataset> gpt =
        GptDataset::make(shared, range.first, range.second, seqLength, vocab);
    if (!gpt.ok())
      return Status::error("the " + std::string(names[which]) + " split (" +
                           split + ") of '" + entry.prefix +
                           "': " + gpt.message());
    parts.push_back(std::move(*gpt));
    blend.push_back(entry.weight);
  }
  return BlendedDataset::make(std::move(parts), std::move(blend));
}

} // namespace runtime
} // namespace loom
