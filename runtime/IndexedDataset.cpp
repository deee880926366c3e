//===- IndexedDataset.cpp - Megatron's .bin/.idx corpora, memory-mapped ---===//

#include "loom/runtime/IndexedDataset.h"
#include "loom/runtime/IndexedDatasetWriter.h"

#include <cstring>

namespace loom {
namespace runtime {

namespace {
const char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};

// The arrays start at byte 34, so their elements are not aligned: read them
// by copy, never by a cast pointer.
template <typename T> T load(const uint8_t *p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

bool isInteger(IndexedDType dtype) {
  return dtype != IndexedDType::Float32 && dtype != IndexedDType::Float64;
}

/// Token `i` of a .bin region of `dtype` elements, widened.
int64_t tokenAt(const uint8_t *p, IndexedDType dtype, int64_t i) {
  switch (dtype) {
  case IndexedDType::Uint8:
    return p[i];
  case IndexedDType::Int8:
    return load<int8_t>(p + i);
  case IndexedDType::Int16:
    return load<int16_t>(p + 2 * i);
  case IndexedDType::Uint16:
    return load<uint16_t>(p + 2 * i);
  case IndexedDType::Int32:
    return load<int32_t>(p + 4 * i);
  case IndexedDType::Int64:
    return load<int64_t>(p + 8 * i);
  default:
    return -1; // float dtypes are refused at open
  }
}
} // namespace

size_t indexedDTypeSize(IndexedDType dtype) {
  switch (dtype) {
  case IndexedDType::Uint8:
  case IndexedDType::Int8:
    return 1;
  case IndexedDType::Int16:
  case IndexedDType::Uint16:
    return 2;
  case IndexedDType::Int32:
  case IndexedDType::Float32:
    return 4;
  case IndexedDType::Int64:
  case IndexedDType::Float64:
    return 8;
  }
  return 0;
}

const char *indexedDTypeName(IndexedDType dtype) {
  switch (dtype) {
  case IndexedDType::Uint8:
    return "uint8";
  case IndexedDType::Int8:
    return "int8";
  case IndexedDType::Int16:
    return "int16";
  case IndexedDType::Int32:
    return "int32";
  case IndexedDType::Int64:
    return "int64";
  case IndexedDType::Float64:
    return "float64";
  case IndexedDType::Float32:
    return "float32";
  case IndexedDType::Uint16:
    return "uint16";
  }
  return "?";
}

Result<IndexedDataset> IndexedDataset::open(const std::string &prefix) {
  std::string idxPath = prefix + ".idx", binPath = prefix + ".bin";
  Result<MappedFile> idx = MappedFile::open(idxPath, "the dataset index");
  if (!idx.ok())
    return Status::error(idx.message());
  Result<MappedFile> bin = MappedFile::open(binPath, "the dataset's tokens");
  if (!bin.ok())
    return Status::error(bin.message());
  auto bad = [&](const std::string &what) {
    return Status::error("the dataset index '" + idxPath + "' " + what);
  };
  const uint8_t *p = idx->data();
  uint64_t size = idx->size();
  if (size < kIndexHeaderBytes)
    return bad("is " + std::to_string(size) + " bytes, shorter than the " +
               std::to_string(kIndexHeaderBytes) +
               "-byte header: is it truncated?");
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0)
    return bad("does not start with Megatron's \"MMIDIDX\\0\\0\": is it an "
               "indexed dataset's .idx?");
  uint64_t version = load<uint64_t>(p + 9);
  if (version != 1)
    return bad("has version " + std::to_string(version) +
               "; Megatron's indexed datasets are version 1");
  uint8_t code = p[17];
  if (code < 1 || code > 8)
    return bad("has dtype code " + std::to_string(code) +
               ", not one of Megatron's 1 to 8");
  IndexedDataset data;
  data.prefix_ = prefix;
  data.dtype_ = IndexedDType(code);
  if (!isInteger(data.dtype_))
    return bad(std::string("holds ") + indexedDTypeName(data.dtype_) +
               " values, not token ids");
  uint64_t sequences = load<uint64_t>(p + 18);
  uint64_t documents = load<uint64_t>(p + 26);
  // Bounded by the file before any product, so nothing below overflows.
  uint64_t body = size - kIndexHeaderBytes;
  if (sequences > body / 12 || documents > body / 8 ||
      (size != kIndexHeaderBytes + 12 * sequences + 8 * documents &&
       size != kIndexHeaderBytes + 13 * sequences + 8 * documents))
    return bad("is " + std::to_string(size) + " bytes, but " +
               std::to_string(sequences) + " sequences and " +
               std::to_string(documents) + " document indices take " +
               (sequences > body / 12 || documents > body / 8
                    ? std::string("more")
                    : std::to_string(kIndexHeaderBytes + 12 * sequences +
                                     8 * documents)) +
               " (a multimodal index " + std::to_string(sequences) +
               " more): is it truncated, or are the counts wrong?");
  if (documents < 1)
    return bad("has no document indices; it needs at least the leading 0");
  data.sequences_ = int64_t(sequences);
  data.documents_ = int64_t(documents);
  data.lengths_ = p + kIndexHeaderBytes;
  data.pointers_ = data.lengths_ + 4 * sequences;
  data.documentIndices_ = data.pointers_ + 8 * sequences;

  // Pointers are the running sum of lengths (in bytes), from 0, and the
  // sequences tile the .bin exactly: a .bin from another index fails here.
  uint64_t width = indexedDTypeSize(data.dtype_);
  uint64_t binSize = bin->size();
  uint64_t expected = 0;
  for (int64_t i = 0; i < data.sequences_; ++i) {
    int32_t length = data.sequenceLength(i);
    int64_t pointer = data.sequencePointer(i);
    if (length < 0)
      return bad("gives sequence " + std::to_string(i) + " the length " +
                 std::to_string(length));
    if (pointer < 0 || uint64_t(pointer) != expected)
      return bad("points sequence " + std::to_string(i) + " at byte " +
                 std::to_string(pointer) + ", but the lengths before it " +
                 "end at byte " + std::to_string(expected) +
                 ": the pointers and lengths disagree");
    if (uint64_t(length) * width > binSize - expected)
      return bad("puts sequence " + std::to_string(i) + " (" +
                 std::to_string(length) + " tokens at byte " +
                 std::to_string(pointer) + ") past the end of '" + binPath +
                 "', which is " + std::to_string(binSize) + " bytes");
    expected += uint64_t(length) * width;
  }
  if (expected != binSize)
    return bad("describes " + std::to_string(expected) +
               " bytes of tokens, "
               "but '" +
               binPath + "' is " + std::to_string(binSize) +
               " bytes: are they from the same dataset?");
  int64_t previous = 0;
  for (int64_t i = 0; i < data.documents_; ++i) {
    int64_t index = data.documentIndex(i);
    if (i == 0 && index != 0)
      return bad("has document indices starting at " + std::to_string(index) +
                 ", not 0");
    if (index < previous || index > data.sequences_)
      return bad("has document index " + std::to_string(index) +
                 " at position " + std::to_string(i) + " after " +
                 std::to_string(previous) +
                 "; they must rise from 0 to the sequence count " +
                 std::to_string(data.sequences_));
    previous = index;
  }
  if (previous != data.sequences_)
    return bad("has document indices ending at " + std::to_string(previous) +
               ", not at the sequence count " +
               std::to_string(data.sequences_));
  data.idx_ = std::make_shared<const MappedFile>(std::move(*idx));
  data.bin_ = std::make_shared<const MappedFile>(std::move(*bin));
  return data;
}

int32_t IndexedDataset::sequenceLength(int64_t sequence) const {
  return load<int32_t>(lengths_ + 4 * sequence);
}
int64_t IndexedDataset::sequencePointer(int64_t sequence) const {
  return load<int64_t>(pointers_ + 8 * sequence);
}
int64_t IndexedDataset::documentIndex(int64_t i) const {
  return load<int64_t>(documentIndices_ + 8 * i);
}

Status IndexedDataset::read(int64_t sequence, int64_t offset, int64_t length,
                            int64_t vocab, int32_t *out) const {
  const uint8_t *p = bin_->data() + sequencePointer(sequence) +
                     offset * int64_t(indexedDTypeSize(dtype_));
  for (int64_t i = 0; i < length; ++i) {
    int64_t id = tokenAt(p, dtype_, i);
    if (id < 0 || id >= vocab)
      return Status::error(
          "the dataset's tokens '" + bin_->path() + "' have token id " +
          std::to_string(id) + " in sequence " + std::to_string(sequence) +
          " at position " + std::to_string(offset + i) +
          ", outside the model's vocabulary of " + std::to_string(vocab));
    out[i] = int32_t(id);
  }
  return Status::success();
}

IndexedDatasetBuilder::IndexedDatasetBuilder(IndexedDType dtype)
    : dtype_(dtype) {}

Status IndexedDatasetBuilder::addItem(const std::vector<int64_t> &tokens) {
  if (Status s = checkIndexedTokens(dtype_, tokens.data(), tokens.size());
      !s.ok())
    return s;
  items_.push_back(tokens);
  return Status::success();
}

void IndexedDatasetBuilder::endDocument() {
  documentIndices_.push_back(int64_t(items_.size()));
}

Status IndexedDatasetBuilder::addDocument(const std::vector<int64_t> &tokens) {
  if (Status s = addItem(tokens); !s.ok())
    return s;
  endDocument();
  return Status::success();
}

Status IndexedDatasetBuilder::finish(const std::string &prefix) const {
  Result<IndexedDatasetWriter> writer =
      IndexedDatasetWriter::create(prefix, dtype_);
  if (!writer.ok())
    return Status::error(writer.message());
  size_t item = 0;
  for (size_t d = 1; d <= documentIndices_.size(); ++d) {
    size_t end = d < documentIndices_.size() ? size_t(documentIndices_[d])
                                             : items_.size();
    for (; item < end; ++item)
      if (Status s = writer->addItem(items_[item]); !s.ok())
        return s;
    if (d < documentIndices_.size())
      writer->endDocument();
  }
  return writer->finish();
}

} // namespace runtime
} // namespace loom
