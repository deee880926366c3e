//===- Safetensors.h - Hugging Face safetensors files -----------*- C++ -*-===//
//
// The format Hugging Face's save_pretrained writes weights in
// (github.com/huggingface/safetensors): a little-endian u64 header length
// N, N bytes of JSON (an object: per tensor {"dtype", "shape",
// "data_offsets": [begin, end]} relative to the data, and an optional
// "__metadata__" of string values), then the data. Read as strictly as the
// Rust library reads it (its `validate`), so a file Loom accepts is one
// `safetensors` loads: the header within the file and at most 100 MB, JSON
// starting with '{', offsets that tile the data from 0 without gaps or
// overlaps, each tensor's bytes its elements times its dtype's size. Read
// mapped: a tensor is converted to f32 when asked for, never the whole file
// at once. F32, F16 and BF16 are read (both widen to f32 exactly); other
// dtypes are refused by name.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SAFETENSORS_H
#define LOOM_RUNTIME_SAFETENSORS_H

#include "loom/runtime/Files.h"
#include "loom/runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom {
namespace runtime {

enum class SafetensorsDType : uint8_t { F32, F16, BF16 };
/// "F32", "F16", "BF16": the header's spelling.
const char *safetensorsDTypeName(SafetensorsDType dtype);
size_t safetensorsDTypeBytes(SafetensorsDType dtype);

/// The Rust library's bound on the header (MAX_HEADER_SIZE).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100000000;

/// One tensor of a file: where its bytes are in the mapped file.
struct SafetensorsEntry {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::vector<int64_t> shape;
  int64_t elements = 0;
  uint64_t begin = 0, end = 0; // byte offsets in the data section
};

class SafetensorsFile {
public:
  /// Maps and checks `path`. Errors read "the safetensors file 'PATH': ..."
  /// and name the tensor when one is at fault.
  static Result<SafetensorsFile> open(const std::string &path);
  /// Checks the bytes of a file (kept by the caller while this lives): the
  /// fuzzer's and the tests' entry. `what` starts every message.
  static Result<SafetensorsFile> parse(const uint8_t *data, uint64_t size,
                                       const std::string &what);

  /// The tensors in header order.
  const std::vector<SafetensorsEntry> &tensors() const { return tensors_; }
  const SafetensorsEntry *find(std::string_view name) const;
  /// `__metadata__`, in order (empty without one).
  const std::vector<std::pair<std::string, std::string>> &metadata() const {
    return metadata_;
  }
  /// A tensor's values as f32 (F16 and BF16 widened exactly).
  std::vector<float> read(const SafetensorsEntry &entry) const;
  const std::string &what() const { return what_; }

private:
  MappedFile file_;
  const uint8_t *data_ = nullptr; // the data section
  std::vector<SafetensorsEntry> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::string what_;
};

/// A tensor to write: f32 values, stored as `dtype`.
struct SafetensorsOutput {
  std::string name;
  std::vector<int64_t> shape;
  const float *data = nullptr; // shape's elements
};

/// The file's bytes as the Rust library serializes them: the header compact
/// JSON with `__metadata__` first and the tensors in name order (all of
/// one dtype), padded with spaces to a multiple of 8 bytes, the data in the
/// same order. F16 and BF16 round to nearest even; a finite value beyond
/// F16's range (or a NaN or infinity) is an error naming the tensor and
/// element, not a silent infinity.
Result<std::vector<uint8_t>> serializeSafetensors(
    std::vector<SafetensorsOutput> tensors, SafetensorsDType dtype,
    const std::vector<std::pair<std::string, std::string>> &metadata = {
        {"format", "pt"}});

/// serializeSafetensors, written to `path` through a temporary name.
Status writeSafetensors(
    const std::string &path, std::vector<SafetensorsOutput> tensors,
    SafetensorsDType dtype,
    const std::vector<std::pair<std::string, std::string>> &metadata = {
        {"format", "pt"}});

/// The exact conversions: a half or bfloat16's bits to the float they
/// denote, and a float to the nearest (ties to even) half / bfloat16.
float halfToFloat(uint16_t bits);
float bfloat16ToFloat(uint16_t bits);
uint16_t floatToHalf(float value);
uint16_t floatToBfloat16(float value);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_SAFETENSORS_H
