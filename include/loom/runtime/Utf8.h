//===- Utf8.h - UTF-8 code points, strictly -----------------------*- C++
//-*-===//
//
// What the JSON reader and the GPT-2 tokenizer share: decoding one code point
// (shortest form only, no surrogates, nothing past U+10FFFF: what Python and
// Hugging Face accept) and encoding one.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_UTF8_H
#define LOOM_RUNTIME_UTF8_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace loom {
namespace runtime {

constexpr uint32_t kInvalidCodePoint = 0xFFFFFFFF;

/// The code point at `text[i]` and its length in bytes; a byte that does not
/// start a valid (shortest-form, non-surrogate) sequence is one invalid
/// code point (kInvalidCodePoint) of length 1.
inline std::pair<uint32_t, size_t> decodeUtf8(std::string_view text, size_t i) {
  uint8_t b0 = uint8_t(text[i]);
  if (b0 < 0x80)
    return {b0, 1};
  size_t length = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 0;
  if (length == 0 || b0 > 0xF4 || i + length > text.size())
    return {kInvalidCodePoint, 1};
  uint32_t cp = b0 & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    uint8_t b = uint8_t(text[i + k]);
    if ((b & 0xC0) != 0x80)
      return {kInvalidCodePoint, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return {kInvalidCodePoint, 1};
  return {cp, length};
}

/// Appends code point `cp` (at most U+10FFFF) as UTF-8.
inline void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_UTF8_H
