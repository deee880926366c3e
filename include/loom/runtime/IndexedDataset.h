//===- IndexedDataset.h - Megatron's .bin/.idx corpora, memory-mapped -*- C++
//-*-===//
//
// Megatron-LM's indexed dataset (megatron/core/datasets/indexed_dataset.py):
// PREFIX.bin holds every sequence's token ids back to back, PREFIX.idx says
// where each one is. The index, little-endian:
//
//   9 bytes  "MMIDIDX\0\0"
//   u64      version, 1
//   u8       dtype code: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
//            6 float64, 7 float32, 8 uint16
//   u64      sequence count N
//   u64      document count D (document indices, so documents + 1)
//   i32 x N  sequence lengths, in tokens
//   i64 x N  sequence pointers, byte offsets into the .bin
//   i64 x D  document indices: 0, then the sequence index that ends each
//            document
//   (i8 x N  sequence modes, in a multimodal dataset; ignored here)
//
// Both files are mapped, never read into memory, and checked once when
// opened; token ids are checked against the vocabulary as they are read.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_INDEXEDDATASET_H
#define LOOM_RUNTIME_INDEXEDDATASET_H

#include "loom/runtime/Files.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loom {
namespace runtime {

/// Megatron's DType codes.
enum class IndexedDType : uint8_t {
  Uint8 = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float64 = 6,
  Float32 = 7,
  Uint16 = 8,
};

/// Bytes per element of `dtype`.
size_t indexedDTypeSize(IndexedDType dtype);
const char *indexedDTypeName(IndexedDType dtype);

/// The 34 bytes before the sequence lengths.
constexpr uint64_t kIndexHeaderBytes = 9 + 8 + 1 + 8 + 8;

class IndexedDataset {
public:
  /// Maps PREFIX.idx and PREFIX.bin and checks that they agree. Fails,
  /// naming the file, on a missing or irregular file, a bad magic, version
  /// or dtype (a float dtype holds no token ids), counts that do not match
  /// the index's size, pointers that are not the running sum of the
  /// lengths or that leave the .bin (or do not cover it exactly), and
  /// document indices that do not rise from 0 to the sequence count.
  static Result<IndexedDataset> open(const std::string &prefix);

  const std::string &prefix() const { return prefix_; }
  IndexedDType dtype() const { return dtype_; }
  int64_t numSequences() const { return sequences_; }
  /// Documents, not document indices (which number one more).
  int64_t numDocuments() const { return documents_ - 1; }
  int32_t sequenceLength(int64_t sequence) const;
  int64_t sequencePointer(int64_t sequence) const;
  /// Entry `i` of the document indices, i in [0, numDocuments()].
  int64_t documentIndex(int64_t i) const;

  /// Writes `length` tokens of `sequence` from `offset` into `out`; fails,
  /// naming the .bin, when one is outside [0, vocab).
  Status read(int64_t sequence, int64_t offset, int64_t length, int64_t vocab,
              int32_t *out) const;

private:
  std::string prefix_;
  // Shared: the dataset is copied into each split and blend component.
  std::shared_ptr<const MappedFile> idx_, bin_;
  IndexedDType dtype_ = IndexedDType::Uint16;
  int64_t sequences_ = 0, documents_ = 0;
  const uint8_t *lengths_ = nullptr, *pointers_ = nullptr,
                *documentIndices_ = nullptr;
};

/// Writes an indexed dataset the way Megatron's IndexedDatasetBuilder does,
/// byte for byte: add_item / end_document / add_document, then finalize.
/// Holds the sequences in memory until finish, which hands them to an
/// IndexedDatasetWriter (IndexedDatasetWriter.h: the streaming writer that
/// large corpora use) for PREFIX.bin and PREFIX.idx.
class IndexedDatasetBuilder {
public:
  explicit IndexedDatasetBuilder(IndexedDType dtype);
  /// Appends one sequence; fails when a token does not fit the dtype.
  Status addItem(const std::vector<int64_t> &tokens);
  /// Closes the current document after the sequences added so far.
  void endDocument();
  /// One document of one sequence.
  Status addDocument(const std::vector<int64_t> &tokens);
  /// Writes PREFIX.bin, then PREFIX.idx, each through a temporary file and a
  /// rename, so a reader never sees a half-written pair's index.
  Status finish(const std::string &prefix) const;

private:
  IndexedDType dtype_;
  std::vector<std::vector<int64_t>> items_;
  std::vector<int64_t> documentIndices_{0};
};

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_INDEXEDDATASET_H
