//===- IndexedDatasetWriter.h - Megatron .bin/.idx, streamed ----*- C++ -*-===//
//
// Writes an indexed dataset (IndexedDataset.h gives the format) as
// Megatron's IndexedDatasetBuilder does, byte for byte, but streaming: each
// sequence goes to the .bin as it is added, and only the index arrays
// (12 bytes a sequence, 8 a document) stay in memory, so a corpus larger
// than memory can be written (loom-preprocess).
//
// Both files are written under temporary names (PREFIX.bin.tmp,
// PREFIX.idx.tmp) and renamed by finish, the .bin first: a killed run
// leaves no half dataset under the final names, and an index never
// describes a .bin that is not there.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_INDEXEDDATASETWRITER_H
#define LOOM_RUNTIME_INDEXEDDATASETWRITER_H

#include "loom/runtime/IndexedDataset.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// Fails when `dtype` holds no token ids (a float), or a token does not
/// fit it, or there are more tokens than the index's int32 lengths count.
Status checkIndexedTokens(IndexedDType dtype, const int64_t *tokens,
                          size_t count);

class IndexedDatasetWriter {
public:
  /// Creates PREFIX.bin.tmp (a stale one from a killed run is replaced);
  /// fails naming it, e.g. when its directory is missing.
  static Result<IndexedDatasetWriter> create(const std::string &prefix,
                                             IndexedDType dtype);
  IndexedDatasetWriter(IndexedDatasetWriter &&other) noexcept;
  IndexedDatasetWriter &operator=(IndexedDatasetWriter &&other) = delete;
  IndexedDatasetWriter(const IndexedDatasetWriter &) = delete;
  /// Without finish, removes the temporary files.
  ~IndexedDatasetWriter();

  /// Appends one sequence (Megatron's add_item); fails when a token does
  /// not fit the dtype, or the .bin cannot be written.
  Status addItem(const int64_t *tokens, size_t count);
  Status addItem(const std::vector<int64_t> &tokens) {
    return addItem(tokens.data(), tokens.size());
  }
  /// Closes the current document after the sequences added so far
  /// (end_document); a document may hold no sequence.
  void endDocument();
  /// Flushes the .bin, writes the .idx, renames both into place
  /// (prepare() then commit()).
  Status finish();
  /// The two halves of finish(), for a tool writing several datasets at
  /// once (loom-preprocess: one per JSON key): prepare every one (the .bin
  /// flushed, the .idx written, both under .tmp names), then commit every
  /// one (the renames), so a failure in any leaves none in place.
  Status prepare();
  Status commit();

  const std::string &prefix() const { return prefix_; }
  int64_t numSequences() const { return int64_t(lengths_.size()); }
  int64_t numDocuments() const { return int64_t(documentIndices_.size()) - 1; }
  uint64_t binBytes() const { return binBytes_; }

private:
  IndexedDatasetWriter(std::string prefix, IndexedDType dtype, FILE *bin);
  Status writeIndex(const std::string &path) const;

  std::string prefix_;
  IndexedDType dtype_;
  FILE *bin_ = nullptr;
  std::vector<uint8_t> buffer_; // one sequence's bytes, reused
  uint64_t binBytes_ = 0;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> documentIndices_{0};
  bool prepared_ = false, finished_ = false;
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_INDEXEDDATASETWRITER_H
