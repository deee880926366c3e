//===- Json.cpp - a strict JSON reader ------------------------------------===//
//
// A recursive-descent parser over the text, RFC 8259's grammar and nothing
// more (no comments, NaN, trailing commas or single quotes). Lines are
// counted as whitespace is skipped: a raw newline can appear nowhere else
// (a string refuses control characters), so each value's line and column
// cost nothing.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Json.h"
#include "loom/runtime/Utf8.h"

#include <cerrno>
#include <cstdlib>
#include <unordered_map>

namespace loom {
namespace runtime {

const char *JsonValue::kindName(Kind kind) {
  switch (kind) {
  case Kind::Null:
    return "null";
  case Kind::Bool:
    return "a boolean";
  case Kind::Number:
    return "a number";
  case Kind::String:
    return "a string";
  case Kind::Array:
    return "an array";
  case Kind::Object:
    return "an object";
  }
  return "?";
}

std::optional<int64_t> JsonValue::integer() const {
  if (kind_ != Kind::Number || text_.find_first_of(".eE") != std::string::npos)
    return std::nullopt;
  bool negative = text_[0] == '-';
  // Accumulated negatively: INT64_MIN has no positive counterpart.
  int64_t value = 0;
  for (size_t i = negative ? 1 : 0; i < text_.size(); ++i) {
    int digit = text_[i] - '0';
    if (value < (INT64_MIN + digit) / 10)
      return std::nullopt;
    value = value * 10 - digit;
  }
  if (!negative) {
    if (value == INT64_MIN)
      return std::nullopt;
    value = -value;
  }
  return value;
}

double JsonValue::number() const {
  return kind_ == Kind::Number ? std::strtod(text_.c_str(), nullptr) : 0.0;
}

const JsonValue *JsonValue::find(std::string_view key) const {
  for (const Member &member : members_)
    if (member.first == key)
      return &member.second;
  return nullptr;
}

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }
} // namespace

class JsonParser {
public:
  JsonParser(std::string_view text, const std::string &what,
             const JsonOptions &options)
      : text_(text), what_(what), options_(options), line_(options.firstLine) {}

  Result<JsonValue> parse() {
    JsonValue value;
    skipSpace();
    if (Status s = parseValue(value, 0); !s.ok())
      return s;
    skipSpace();
    if (pos_ != text_.size())
      return fail(std::string("unexpected text after the ") +
                  (value.isObject()  ? "object"
                   : value.isArray() ? "array"
                                     : "value"));
    return value;
  }

private:
  bool consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void skipSpace() {
    for (; pos_ < text_.size(); ++pos_) {
      char c = text_[pos_];
      if (c == '\n') {
        ++line_;
        lineStart_ = pos_ + 1;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        break;
      }
    }
  }
  /// "line L, column C" of `at`, which is on the current line.
  std::string position(size_t at) const {
    return "line " + std::to_string(line_) + ", column " +
           std::to_string(at - lineStart_ + 1);
  }
  Status failAt(size_t at, const std::string &message) const {
    return Status::error(what_ + ", " + position(at) + ": " + message);
  }
  Status fail(const std::string &message) const {
    if (pos_ >= text_.size())
      return failAt(pos_, message + ", found the end of " + options_.endName);
    return failAt(pos_, message);
  }
  void place(JsonValue &value) const {
    value.line_ = line_;
    value.column_ = pos_ - lineStart_ + 1;
    value.offset_ = pos_;
  }

  Status parseValue(JsonValue &value, int depth) {
    place(value);
    if (pos_ >= text_.size())
      return fail("expected a value");
    char c = text_[pos_];
    switch (c) {
    case '{':
    case '[':
      if (depth >= options_.maxDepth)
        return fail("arrays and objects nested deeper than " +
                    std::to_string(options_.maxDepth) + " levels");
      return c == '{' ? parseObject(value, depth + 1)
                      : parseArray(value, depth + 1);
    case '"':
      value.kind_ = JsonValue::Kind::String;
      return parseString(value.text_);
    case 't':
    case 'f':
    case 'n':
      return parseLiteral(value);
    default:
      if (c == '-' || isDigit(c))
        return parseNumber(value);
      return fail("expected a value (a string, number, object, array, true, "
                  "false or null)");
    }
  }

  Status parseObject(JsonValue &value, int depth) {
    value.kind_ = JsonValue::Kind::Object;
    ++pos_; // '{'
    skipSpace();
    if (consume('}'))
      return Status::success();
    // Where each key was first given, for the message on a second one.
    std::unordered_map<std::string, std::pair<size_t, size_t>> seen;
    while (true) {
      skipSpace();
      size_t keyAt = pos_;
      std::string key;
      if (pos_ >= text_.size() || text_[pos_] != '"')
        return fail("expected a string key");
      if (Status s = parseString(key); !s.ok())
        return s;
      auto [it, inserted] =
          seen.emplace(key, std::make_pair(line_, keyAt - lineStart_ + 1));
      if (!inserted)
        return failAt(keyAt,
                      "the key \"" + key + "\" appears twice (first at line " +
                          std::to_string(it->second.first) + ", column " +
                          std::to_string(it->second.second) + ")");
      skipSpace();
      if (!consume(':'))
        return fail("expected ':' after the key");
      skipSpace();
      value.members_.emplace_back(std::move(key), JsonValue());
      if (Status s = parseValue(value.members_.back().second, depth); !s.ok())
        return s;
      skipSpace();
      if (consume('}'))
        return Status::success();
      if (!consume(','))
        return fail("expected ',' or '}' after a value");
    }
  }

  Status parseArray(JsonValue &value, int depth) {
    value.kind_ = JsonValue::Kind::Array;
    ++pos_; // '['
    skipSpace();
    if (consume(']'))
      return Status::success();
    while (true) {
      skipSpace();
      value.elements_.emplace_back();
      if (Status s = parseValue(value.elements_.back(), depth); !s.ok())
        return s;
      skipSpace();
      if (consume(']'))
        return Status::success();
      if (!consume(','))
        return fail("expected ',' or ']' after an element");
    }
  }

  Status parseLiteral(JsonValue &value) {
    for (std::string_view word : {"true", "false", "null"}) {
      if (text_.substr(pos_, word.size()) != word)
        continue;
      pos_ += word.size();
      value.kind_ =
          word == "null" ? JsonValue::Kind::Null : JsonValue::Kind::Bool;
      value.boolean_ = word == "true";
      return Status::success();
    }
    return fail("expected a value (a string, number, object, array, true, "
                "false or null)");
  }

  Status parseNumber(JsonValue &value) {
    size_t start = pos_;
    consume('-');
    if (pos_ >= text_.size() || !isDigit(text_[pos_]))
      return fail("expected a digit in the number");
    if (text_[pos_] == '0' && pos_ + 1 < text_.size() &&
        isDigit(text_[pos_ + 1]))
      return fail("a number with a leading zero");
    while (pos_ < text_.size() && isDigit(text_[pos_]))
      ++pos_;
    if (consume('.')) {
      if (pos_ >= text_.size() || !isDigit(text_[pos_]))
        return fail("expected a digit after the decimal point");
      while (pos_ < text_.size() && isDigit(text_[pos_]))
        ++pos_;
    }
    if (consume('e') || consume('E')) {
      if (!consume('+'))
        consume('-');
      if (pos_ >= text_.size() || !isDigit(text_[pos_]))
        return fail("expected a digit in the exponent");
      while (pos_ < text_.size() && isDigit(text_[pos_]))
        ++pos_;
    }
    value.kind_ = JsonValue::Kind::Number;
    value.text_ = std::string(text_.substr(start, pos_ - start));
    return Status::success();
  }

  /// Four hex digits at pos_.
  bool hex4(uint32_t &out) {
    if (pos_ + 4 > text_.size())
      return false;
    out = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text_[pos_ + k];
      int digit = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
      if (digit < 0)
        return false;
      out = out * 16 + uint32_t(digit);
    }
    pos_ += 4;
    return true;
  }

  Status parseString(std::string &out) {
    ++pos_; // '"'
    while (true) {
      // The run up to the next quote, backslash or byte to check, at once:
      // most of a string is plain ASCII.
      size_t run = pos_;
      while (run < text_.size()) {
        uint8_t c = uint8_t(text_[run]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
          break;
        ++run;
      }
      out.append(text_.substr(pos_, run - pos_));
      pos_ = run;
      if (pos_ >= text_.size())
        return fail("unterminated string");
      uint8_t c = uint8_t(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return Status::success();
      }
      if (c < 0x20)
        return fail("a control character in a string (escape it)");
      if (c == '\\') {
        if (Status s = parseEscape(out); !s.ok())
          return s;
        continue;
      }
      auto [cp, length] = decodeUtf8(text_, pos_);
      if (cp == kInvalidCodePoint)
        return fail("bytes that are not valid UTF-8");
      out.append(text_.substr(pos_, length));
      pos_ += length;
    }
  }

  Status parseEscape(std::string &out) {
    size_t escapeAt = pos_++;
    if (pos_ >= text_.size())
      return fail("unterminated string");
    char e = text_[pos_++];
    switch (e) {
    case '"':
    case '\\':
    case '/':
      out += e;
      return Status::success();
    case 'b':
      out += '\b';
      return Status::success();
    case 'f':
      out += '\f';
      return Status::success();
    case 'n':
      out += '\n';
      return Status::success();
    case 'r':
      out += '\r';
      return Status::success();
    case 't':
      out += '\t';
      return Status::success();
    case 'u': {
      uint32_t cp;
      if (!hex4(cp))
        return failAt(escapeAt, "\\u needs four hex digits");
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return failAt(escapeAt, "a low surrogate without a high one");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t low;
        if (!consume('\\') || !consume('u') || !hex4(low) || low < 0xDC00 ||
            low > 0xDFFF)
          return failAt(escapeAt,
                        "a high surrogate not followed by a \\u low one");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      }
      appendUtf8(out, cp);
      return Status::success();
    }
    default:
      return failAt(escapeAt, std::string("unknown escape \\") + e);
    }
  }

  std::string_view text_;
  const std::string &what_;
  const JsonOptions &options_;
  size_t pos_ = 0;
  size_t line_, lineStart_ = 0;
};

Result<JsonValue> parseJson(std::string_view text, const std::string &what,
                            const JsonOptions &options) {
  return JsonParser(text, what, options).parse();
}

} // namespace runtime
} // namespace loom
