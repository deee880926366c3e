//===- Json.h - a strict JSON reader ----------------------------*- C++ -*-===//
//
// The runtime's one JSON reader (vocab.json, JSON lines, config.json,
// safetensors headers): RFC 8259, parsed strictly into a DOM. Strings are
// checked UTF-8 with every escape (surrogate pairs joined); numbers keep
// their literal text, so a caller reads an exact int64 or refuses a
// fraction; objects keep their members in order, and a key given twice is
// an error (JSON leaves it undefined; a file that does it is a wrong file).
// Nothing but whitespace may follow the value, and nesting is bounded, so a
// hostile file cannot exhaust the stack.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_JSON_H
#define LOOM_RUNTIME_JSON_H

#include "loom/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loom {
namespace runtime {

class JsonValue {
public:
  enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };
  using Member = std::pair<std::string, JsonValue>;

  Kind kind() const { return kind_; }
  /// "null", "a boolean", "a number", "a string", "an array", "an object":
  /// for messages such as "expected a string, found an array".
  static const char *kindName(Kind kind);
  const char *kindName() const { return kindName(kind_); }

  bool isNull() const { return kind_ == Kind::Null; }
  bool isBool() const { return kind_ == Kind::Bool; }
  bool isNumber() const { return kind_ == Kind::Number; }
  bool isString() const { return kind_ == Kind::String; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isObject() const { return kind_ == Kind::Object; }

  /// A boolean's value.
  bool boolean() const { return boolean_; }
  /// A string's value (UTF-8, escapes decoded), or a number's literal text
  /// exactly as written ("-12", "1.5e3").
  const std::string &text() const { return text_; }
  /// A number written as an integer (no fraction or exponent) that fits
  /// int64; nothing for any other value.
  std::optional<int64_t> integer() const;
  /// A number's value as the nearest double.
  double number() const;
  const std::vector<JsonValue> &array() const { return elements_; }
  const std::vector<Member> &object() const { return members_; }
  /// An object's member `key`, or null when it has none (or is no object).
  const JsonValue *find(std::string_view key) const;

  /// Where the value starts in the parsed text: 1-based line and column
  /// (in bytes), and the byte offset.
  size_t line() const { return line_; }
  size_t column() const { return column_; }
  size_t offset() const { return offset_; }

private:
  friend class JsonParser;
  Kind kind_ = Kind::Null;
  bool boolean_ = false;
  std::string text_;
  std::vector<JsonValue> elements_;
  std::vector<Member> members_;
  size_t line_ = 1, column_ = 1, offset_ = 0;
};

struct JsonOptions {
  /// Deeper arrays and objects are an error.
  int maxDepth = 128;
  /// The line the text starts on, for a value read out of a larger file
  /// (one line of JSON lines).
  size_t firstLine = 1;
  /// What the end of the text is called in "found the end of ...".
  const char *endName = "the file";
  /// Accept Python's NaN, Infinity and -Infinity as numbers (json.dumps
  /// writes them, json.loads reads them; RFC 8259 has none).
  bool allowNonFinite = false;
};

/// Parses `text`, one JSON value. Errors read
///   "WHAT, line L, column C: message"
/// with `what` naming the file ("the vocabulary 'vocab.json'").
Result<JsonValue> parseJson(std::string_view text, const std::string &what,
                            const JsonOptions &options = {});

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_JSON_H
