//===- Safetensors.cpp - Hugging Face safetensors files -------------------===//
//
// The checks follow the Rust library's read_metadata and Metadata::validate
// (safetensors/src/tensor.rs), so Loom accepts what `safetensors` loads and
// refuses what it refuses, with a message that says which tensor and why.
// The writer reproduces its serializer byte for byte (the test compares
// with safetensors.numpy.save_file).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Safetensors.h"
#include "loom/runtime/Json.h"
#include "loom/runtime/Trace.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace loom {
namespace runtime {

const char *safetensorsDTypeName(SafetensorsDType dtype) {
  switch (dtype) {
  case SafetensorsDType::F32:
    return "F32";
  case SafetensorsDType::F16:
    return "F16";
  case SafetensorsDType::BF16:
    return "BF16";
  }
  return "?";
}

size_t safetensorsDTypeBytes(SafetensorsDType dtype) {
  return dtype == SafetensorsDType::F32 ? 4 : 2;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f,
           mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13); // infinity or NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign; // zero
  } else {
    // A subnormal: normalise (every half subnormal is a normal float).
    int e = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (uint32_t(e) << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bfloat16ToFloat(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {
/// `value >> shift` rounded to nearest, ties to even (0 < shift < 32).
uint32_t shiftRoundEven(uint32_t value, int shift) {
  uint32_t q = value >> shift, rem = value & ((1u << shift) - 1),
           half = 1u << (shift - 1);
  return rem > half || (rem == half && (q & 1)) ? q + 1 : q;
}
} // namespace

uint16_t floatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  int32_t exp = int32_t((bits >> 23) & 0xff);
  uint32_t mant = bits & 0x7fffff;
  if (exp == 0xff) // infinity, or a quiet NaN
    return uint16_t(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
  int32_t e = exp - 127 + 15;
  if (e >= 31)
    return uint16_t(sign | 0x7c00);
  if (e <= 0) {
    // A half subnormal is m · 2^-24: the float's 24-bit significand
    // shifted right by 14 - e. Below 2^-25 it rounds to zero.
    if (e < -10)
      return sign;
    return uint16_t(sign | shiftRoundEven(mant | 0x800000, 14 - e));
  }
  // A carry out of the mantissa steps the exponent, as it should (up to
  // infinity).
  return uint16_t(sign | shiftRoundEven((uint32_t(e) << 23) | mant, 13));
}

uint16_t floatToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) // NaN: keep it a (quiet) NaN
    return uint16_t((bits >> 16) | 0x40);
  return uint16_t(shiftRoundEven(bits, 16));
}

// --- Reading --------------------------------------------------------------

namespace {
std::string shapeText(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// A non-negative integer of the header, or a message.
bool headerCount(const JsonValue &v, uint64_t &out) {
  std::optional<int64_t> i = v.integer();
  if (!i || *i < 0)
    return false;
  out = uint64_t(*i);
  return true;
}
} // namespace

Result<SafetensorsFile> SafetensorsFile::open(const std::string &path) {
  std::string what = "the safetensors file '" + path + "'";
  Result<MappedFile> mapped = MappedFile::open(path, "the safetensors file");
  if (!mapped.ok())
    return Status::error(mapped.message());
  Result<SafetensorsFile> file = parse(mapped->data(), mapped->size(), what);
  if (!file.ok())
    return file;
  file->file_ = std::move(*mapped); // the mapping, and data_, stay put
  return file;
}

Result<SafetensorsFile> SafetensorsFile::parse(const uint8_t *data,
                                               uint64_t size,
                                               const std::string &what) {
  auto bad = [&](const std::string &why) {
    return Status::error(what + ": " + why);
  };
  if (size < 8)
    return bad("it is " + std::to_string(size) +
               " bytes, too short for the 8-byte header length: truncated, "
               "or not a safetensors file");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= uint64_t(data[i]) << (8 * i);
  if (n > kMaxSafetensorsHeaderBytes)
    return bad("its header length is " + std::to_string(n) +
               " bytes, over the format's limit of 100 MB: not a "
               "safetensors file?");
  if (n > size - 8)
    return bad("its header length is " + std::to_string(n) +
               " bytes, more than the " + std::to_string(size - 8) +
               " bytes after it: truncated?");
  std::string_view header(reinterpret_cast<const char *>(data + 8), size_t(n));
  if (header.empty() || header.front() != '{')
    return bad("its header does not start with '{': not a safetensors file?");
  JsonOptions options;
  options.endName = "the header";
  Result<JsonValue> json = parseJson(header, what + "'s header", options);
  if (!json.ok())
    return Status::error(json.message());
  if (!json->isObject())
    return bad("its header is not a JSON object");

  SafetensorsFile file;
  file.what_ = what;
  for (const auto &[name, value] : json->object()) {
    if (name == "__metadata__") {
      if (!value.isObject())
        return bad("its __metadata__ is " + std::string(value.kindName()) +
                   ", not an object of strings");
      for (const auto &[key, text] : value.object()) {
        if (!text.isString())
          return bad("its __metadata__ '" + key + "' is " + text.kindName() +
                     ", not a string");
        file.metadata_.push_back({key, text.text()});
      }
      continue;
    }
    auto badTensor = [&](const std::string &why) {
      return bad("tensor '" + name + "' " + why);
    };
    if (!value.isObject())
      return badTensor("is described by " + std::string(value.kindName()) +
                       ", not an object");
    SafetensorsEntry e;
    e.name = name;
    const JsonValue *dtype = value.find("dtype");
    const JsonValue *shape = value.find("shape");
    const JsonValue *offsets = value.find("data_offsets");
    for (auto [field, v] :
         {std::pair{"dtype", dtype}, std::pair{"shape", shape},
          std::pair{"data_offsets", offsets}})
      if (!v)
        return badTensor(std::string("has no \"") + field + "\"");
    if (!dtype->isString())
      return badTensor("has a dtype that is " + std::string(dtype->kindName()) +
                       ", not a string");
    if (dtype->text() == "F32")
      e.dtype = SafetensorsDType::F32;
    else if (dtype->text() == "F16")
      e.dtype = SafetensorsDType::F16;
    else if (dtype->text() == "BF16")
      e.dtype = SafetensorsDType::BF16;
    else
      return badTensor("has dtype \"" + dtype->text() +
                       "\"; Loom reads F32, F16 and BF16 weights");
    if (!shape->isArray())
      return badTensor("has a shape that is " + std::string(shape->kindName()) +
                       ", not an array");
    uint64_t elements = 1;
    for (const JsonValue &d : shape->array()) {
      uint64_t dim;
      if (!headerCount(d, dim))
        return badTensor("has a shape entry '" + d.text() +
                         "' that is not a whole number >= 0");
      // 2^48 elements is the most any Loom buffer holds; it also keeps the
      // byte count below from overflowing.
      if (dim && elements > (uint64_t(1) << 48) / dim)
        return badTensor("has a shape too large to address");
      elements *= dim;
      e.shape.push_back(int64_t(dim));
    }
    e.elements = int64_t(elements);
    if (!offsets->isArray() || offsets->array().size() != 2 ||
        !headerCount(offsets->array()[0], e.begin) ||
        !headerCount(offsets->array()[1], e.end))
      return badTensor("has data_offsets that are not [begin, end] whole "
                       "numbers >= 0");
    if (e.end < e.begin)
      return badTensor("has data_offsets [" + std::to_string(e.begin) + ", " +
                       std::to_string(e.end) + "] that end before they begin");
    uint64_t bytes = elements * safetensorsDTypeBytes(e.dtype);
    if (e.end - e.begin != bytes)
      return badTensor(
          "has data_offsets [" + std::to_string(e.begin) + ", " +
          std::to_string(e.end) + "] (" + std::to_string(e.end - e.begin) +
          " bytes) but its shape " + shapeText(e.shape) + " of " +
          dtype->text() + " is " + std::to_string(bytes) + " bytes");
    file.tensors_.push_back(std::move(e));
  }

  // The tensors in data order must tile the data section from 0.
  std::vector<const SafetensorsEntry *> order;
  for (const SafetensorsEntry &e : file.tensors_)
    order.push_back(&e);
  std::stable_sort(order.begin(), order.end(),
                   [](const SafetensorsEntry *a, const SafetensorsEntry *b) {
                     return a->begin < b->begin ||
                            (a->begin == b->begin && a->end < b->end);
                   });
  uint64_t at = 0;
  const SafetensorsEntry *previous = nullptr;
  for (const SafetensorsEntry *e : order) {
    auto range = [](const SafetensorsEntry &t) {
      return "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
    };
    if (e->begin < at)
      return bad("tensor '" + e->name + "' has data_offsets " + range(*e) +
                 " that overlap tensor '" + previous->name + "''s " +
                 range(*previous));
    if (e->begin > at)
      return bad("tensor '" + e->name + "' has data_offsets " + range(*e) +
                 " that leave bytes [" + std::to_string(at) + ", " +
                 std::to_string(e->begin) + ") of the data unused" +
                 (previous ? " after tensor '" + previous->name + "'" : ""));
    at = e->end;
    previous = e;
  }
  uint64_t dataBytes = size - 8 - n;
  if (at != dataBytes)
    return bad("its tensors cover " + std::to_string(at) +
               " bytes of data but the file holds " +
               std::to_string(dataBytes) +
               (at > dataBytes ? ": truncated?" : ": extra bytes at the end"));
  file.data_ = data + 8 + n;
  return file;
}

const SafetensorsEntry *SafetensorsFile::find(std::string_view name) const {
  for (const SafetensorsEntry &e : tensors_)
    if (e.name == name)
      return &e;
  return nullptr;
}

std::vector<float> SafetensorsFile::read(const SafetensorsEntry &e) const {
  std::vector<float> out(size_t(e.elements));
  const uint8_t *p = data_ + e.begin;
  for (size_t i = 0; i < out.size(); ++i) {
    if (e.dtype == SafetensorsDType::F32) {
      uint32_t bits = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 |
                      uint32_t(p[4 * i + 2]) << 16 |
                      uint32_t(p[4 * i + 3]) << 24;
      std::memcpy(&out[i], &bits, 4);
    } else {
      uint16_t bits = uint16_t(p[2 * i] | p[2 * i + 1] << 8);
      out[i] = e.dtype == SafetensorsDType::F16 ? halfToFloat(bits)
                                                : bfloat16ToFloat(bits);
    }
  }
  return out;
}

// --- Writing --------------------------------------------------------------

Result<std::vector<uint8_t>> serializeSafetensors(
    std::vector<SafetensorsOutput> tensors, SafetensorsDType dtype,
    const std::vector<std::pair<std::string, std::string>> &metadata) {
  // The Rust library orders tensors by dtype (all one here), then name.
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const SafetensorsOutput &a, const SafetensorsOutput &b) {
                     return a.name < b.name;
                   });
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i)
      header += (i ? "," : "") + jsonQuote(metadata[i].first) + ":" +
                jsonQuote(metadata[i].second);
    header += "}";
  }
  uint64_t at = 0;
  size_t width = safetensorsDTypeBytes(dtype);
  for (size_t t = 0; t < tensors.size(); ++t) {
    const SafetensorsOutput &o = tensors[t];
    if (o.name == "__metadata__")
      return Status::error("a tensor cannot be named __metadata__");
    for (size_t u = 0; u < t; ++u)
      if (tensors[u].name == o.name)
        return Status::error("tensor '" + o.name + "' is given twice");
    uint64_t elements = 1;
    std::string shape = "[";
    for (size_t d = 0; d < o.shape.size(); ++d) {
      elements *= uint64_t(o.shape[d]);
      shape += (d ? "," : "") + std::to_string(o.shape[d]);
    }
    shape += "]";
    if (!metadata.empty() || t)
      header += ",";
    header += jsonQuote(o.name) + ":{\"dtype\":\"" +
              safetensorsDTypeName(dtype) + "\",\"shape\":" + shape +
              ",\"data_offsets\":[" + std::to_string(at) + "," +
              std::to_string(at + elements * width) + "]}";
    at += elements * width;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + size_t(at));
  for (int i = 0; i < 8; ++i)
    out.push_back(uint8_t(uint64_t(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const SafetensorsOutput &o : tensors) {
    int64_t elements = 1;
    for (int64_t d : o.shape)
      elements *= d;
    for (int64_t i = 0; i < elements; ++i) {
      float v = o.data[i];
      if (dtype == SafetensorsDType::F32) {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        for (int b = 0; b < 4; ++b)
          out.push_back(uint8_t(bits >> (8 * b)));
        continue;
      }
      uint16_t bits =
          dtype == SafetensorsDType::F16 ? floatToHalf(v) : floatToBfloat16(v);
      float back = dtype == SafetensorsDType::F16 ? halfToFloat(bits)
                                                  : bfloat16ToFloat(bits);
      if (!std::isfinite(back))
        return Status::error(
            "tensor '" + o.name + "' element " + std::to_string(i) + " is " +
            jsonDouble(v) + ", which " + safetensorsDTypeName(dtype) +
            " cannot hold (it would be " + (std::isnan(back) ? "NaN" : "inf") +
            "); write it as f32" +
            (dtype == SafetensorsDType::F16 ? " or bf16" : ""));
      out.push_back(uint8_t(bits));
      out.push_back(uint8_t(bits >> 8));
    }
  }
  return out;
}

Status writeSafetensors(
    const std::string &path, std::vector<SafetensorsOutput> tensors,
    SafetensorsDType dtype,
    const std::vector<std::pair<std::string, std::string>> &metadata) {
  Result<std::vector<uint8_t>> bytes =
      serializeSafetensors(std::move(tensors), dtype, metadata);
  if (!bytes.ok())
    return Status::error("cannot write the safetensors file '" + path +
                         "': " + bytes.message());
  return writeFileAtomically(path, *bytes);
}

} // namespace runtime
} // namespace loom
