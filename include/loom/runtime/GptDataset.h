//===- GptDataset.h - Megatron's GPT sample index, splits, blends -*- C++
//-*-===//
//
// Megatron-LM's GPTDataset (megatron/core/datasets/gpt_dataset.py) over an
// indexed dataset, epoch by epoch:
//  - the document index: the split's documents, shuffled by numpy's
//    RandomState(seed) (MT19937; reproduced here bit for bit);
//  - the sample index (helpers.cpp build_sample_idx): sample k is seq + 1
//    tokens from (document, offset) pair k to pair k + 1, running across
//    document boundaries; consecutive samples share one token;
//  - the shuffle index: the samples in an order drawn from the same state.
// Epoch 0 is Megatron's index for a run of at most one epoch, exactly.
// Megatron builds all epochs of a run at once, so its later epochs depend on
// the run's length; here epoch e is built alone, keyed by (seed, e), so
// sample i is a function of (i, seed, seq) and never of --steps.
//
// BlendedDataset is Megatron's: global sample i goes to the component whose
// realised count lags its weight the most (helpers.cpp
// build_blending_indices), and is that component's next sample.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_GPTDATASET_H
#define LOOM_RUNTIME_GPTDATASET_H

#include "loom/runtime/Data.h"
#include "loom/runtime/IndexedDataset.h"

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace loom {
namespace runtime {

/// numpy's legacy numpy.random.RandomState(seed): MT19937 seeded by
/// init_genrand, and shuffle() as RandomState does it (Fisher-Yates from the
/// end, j drawn by masked rejection), so the permutations are Megatron's.
class NumpyRandomState {
public:
  explicit NumpyRandomState(uint32_t seed);
  uint32_t next32();
  /// Uniform in [0, max], as numpy's random_interval.
  uint64_t interval(uint64_t max);
  template <typename T> void shuffle(std::vector<T> &values) {
    for (size_t i = values.size(); i-- > 1;)
      std::swap(values[i], values[size_t(interval(i))]);
  }

private:
  uint32_t state_[624];
  int position_ = 624;
};

/// Megatron's --split "98,2,0": up to three non-negative weights (missing
/// ones 0), normalised to sum to 1.
Result<std::array<double, 3>> parseSplit(const std::string &split);
/// The documents [begin, end) of split `which` (0 train, 1 valid, 2 test)
/// of `documents`, rounded as Megatron rounds (half to even).
std::pair<int64_t, int64_t> splitDocuments(const std::array<double, 3> &split,
                                           int which, int64_t documents);

class GptDataset : public SampleSource {
public:
  /// Documents [begin, end) of `data`. Megatron's GPTDataset uses a
  /// document id as a sequence id (sequence_lengths[document]); an index
  /// written one sequence per document, as preprocess_data.py writes it
  /// without sentence splitting, makes the two the same. Fails when the
  /// documents hold fewer than seq + 1 tokens.
  static Result<GptDataset> make(std::shared_ptr<const IndexedDataset> data,
                                 int64_t begin, int64_t end, int64_t seqLength,
                                 int64_t vocab);

  /// Shuffle the documents and samples by `seed` (the default, seed 0), or
  /// not: the documents in order and the samples in order.
  void shuffle(bool on, uint64_t seed);
  int64_t samplesPerEpoch() const { return samplesPerEpoch_; }
  int64_t tokensPerEpoch() const { return tokensPerEpoch_; }

  Status readSample(int64_t globalIndex, int32_t *tokens,
                    int32_t *labels) const override;

  /// One epoch's indices, as Megatron names them.
  struct EpochIndex {
    std::vector<int32_t> documentIndex;
    std::vector<int64_t> sampleIndex; // (document position, offset) pairs
    std::vector<int64_t> shuffleIndex;
  };
  EpochIndex buildEpoch(int64_t epoch) const;
  /// The RandomState seed of epoch `epoch`: the seed's low 32 bits for
  /// epoch 0 (Megatron's, for seeds below 2^32), a mix of both after.
  uint32_t epochSeed(int64_t epoch) const;

private:
  std::shared_ptr<const IndexedDataset> data_;
  int64_t begin_ = 0, end_ = 0, seq_ = 0, vocab_ = 0;
  int64_t tokensPerEpoch_ = 0, samplesPerEpoch_ = 0;
  bool shuffled_ = true;
  uint64_t seed_ = 0;
  // The last epoch's indices, built when first needed (steps read their
  // samples in order, so one epoch is cached).
  std::unique_ptr<std::mutex> lock_ = std::make_unique<std::mutex>();
  mutable std::shared_ptr<const EpochIndex> cached_;
  mutable int64_t cachedEpoch_ = -1;
};

class BlendedDataset : public SampleSource {
public:
  /// `weights` need not sum to 1 (they are normalised) but must be positive
  /// and one per part.
  static Result<BlendedDataset> make(std::vector<GptDataset> parts,
                                     std::vector<double> weights);
  void shuffle(bool on, uint64_t seed);
  /// Global sample i: (part, that part's sample index).
  std::pair<int, int64_t> locate(int64_t globalIndex) const;
  Status readSample(int64_t globalIndex, int32_t *tokens,
                    int32_t *labels) const override;
  const std::vector<GptDataset> &parts() const { return parts_; }

private:
  std::vector<GptDataset> parts_;
  std::vector<double> weights_;
  // The choice for sample i depends on every earlier one, so the counts per
  // part are kept at each chunk's start, and the chunk last asked for is
  // kept whole: locating any sample walks at most one chunk.
  static constexpr int64_t kChunk = 4096;
  std::unique_ptr<std::mutex> lock_ = std::make_unique<std::mutex>();
  mutable std::vector<std::vector<int64_t>> chunkCounts_;
  mutable int64_t cachedChunk_ = -1;
  mutable std::vector<std::pair<int, int64_t>> chunk_;
};

/// `--data-path` words: PREFIX alone, or W1 PREFIX1 W2 PREFIX2 ...
struct DataPathEntry {
  double weight;
  std::string prefix;
};
Result<std::vector<DataPathEntry>>
parseDataPath(const std::vector<std::string> &words);

/// Split `which` of each prefix's indexed dataset, blended by the weights.
Result<BlendedDataset> openMegatronData(const std::vector<DataPathEntry> &path,
                                        const std::string &split, int which,
                                        int64_t seqLength, int64_t vocab);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_GPTDATASET_H
