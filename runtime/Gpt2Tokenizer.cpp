//===- Gpt2Tokenizer.cpp - GPT-2 byte-level BPE ---------------------------===//
//
// Follows Hugging Face tokenizers (ByteLevel pre-tokenizer, BPE model,
// ByteLevel decoder) step by step, so the ids are the same, not merely
// similar: the regex's alternatives are tried in its order, and merges are
// applied lowest (rank, position) first, as HF's Word::merge_all does.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Gpt2Tokenizer.h"
#include "loom/runtime/Files.h"
#include "loom/runtime/Json.h"
#include "loom/runtime/Utf8.h"

#include <algorithm>
#include <cstdio>
#include <queue>

namespace loom {
namespace runtime {

namespace {

//===----------------------------------------------------------------------===//
// Code points and their classes
//===----------------------------------------------------------------------===//

enum class CodePointClass : uint8_t { Letter, Number, Space, Other };

struct CodePointRange {
  uint32_t first, last;
  CodePointClass cls;
};

const CodePointRange kLetterNumberRanges[] = {
#include "UnicodeCategories.inc"
};

/// Unicode's White_Space property: what Oniguruma's \s matches (HF's regex
/// engine). Not Python's str.isspace, which adds U+001C..U+001F.
bool isWhiteSpace(uint32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

CodePointClass classify(uint32_t cp) {
  if (isWhiteSpace(cp))
    return CodePointClass::Space;
  const CodePointRange *end = std::end(kLetterNumberRanges);
  const CodePointRange *it = std::upper_bound(
      std::begin(kLetterNumberRanges), end, cp,
      [](uint32_t c, const CodePointRange &r) { return c < r.first; });
  if (it == std::begin(kLetterNumberRanges))
    return CodePointClass::Other;
  --it;
  return cp <= it->last ? it->cls : CodePointClass::Other;
}

/// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
/// the other 68 for U+0100 upwards in byte order, so every byte is a
/// visible character and vocab.json never holds a space or control byte.
struct ByteMap {
  uint32_t toCodePoint[256];
  ByteMap() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                       (b >= 0xAE && b <= 0xFF);
      toCodePoint[b] = printable ? b : next++;
    }
  }
  /// The byte `cp` stands for, or -1.
  int toByte(uint32_t cp) const {
    if (cp < 512)
      for (int b = 0; b < 256; ++b)
        if (toCodePoint[b] == cp)
          return b;
    return -1;
  }
};

const ByteMap &byteMap() {
  static const ByteMap map;
  return map;
}

/// Where ids stop: GPT-2 has 50257, the largest vocabularies in use ~256k;
/// the bound keeps a wrong file from sizing the id table at 2^31.
constexpr int64_t kMaxTokenId = (int64_t(1) << 24) - 1;

constexpr size_t kCacheEntries = 1 << 16;

uint64_t pairKey(int32_t left, int32_t right) {
  return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
}

} // namespace

Result<std::vector<std::pair<std::string, int64_t>>>
parseJsonStringToIntObject(std::string_view text, const std::string &what) {
  // Anything but an object is refused before parsing, so that an empty or
  // wrong file gets the message that says what the file must be.
  size_t at = text.find_first_not_of(" \t\r\n");
  if (at == std::string_view::npos || text[at] != '{') {
    size_t line = 1, lineStart = 0;
    for (size_t i = 0; i < at && i < text.size(); ++i)
      if (text[i] == '\n')
        line += 1, lineStart = i + 1;
    size_t end = at == std::string_view::npos ? text.size() : at;
    return Status::error(
        what + ", line " + std::to_string(line) + ", column " +
        std::to_string(end - lineStart + 1) +
        ": expected '{': the file must be one JSON object of token -> id" +
        (at == std::string_view::npos ? ", found the end of the file" : ""));
  }
  Result<JsonValue> object = parseJson(text, what);
  if (!object.ok())
    return Status::error(object.message());
  std::vector<std::pair<std::string, int64_t>> entries;
  entries.reserve(object->object().size());
  for (const JsonValue::Member &member : object->object()) {
    const JsonValue &value = member.second;
    auto bad = [&](const std::string &message) {
      return Status::error(what + ", line " + std::to_string(value.line()) +
                           ", column " + std::to_string(value.column()) + ": " +
                           message);
    };
    if (!value.isNumber())
      return bad(std::string("expected an integer id, found ") +
                 value.kindName());
    if (value.text()[0] == '-')
      return bad("a negative id; ids are 0 or more");
    std::optional<int64_t> id = value.integer();
    if (value.text().find_first_of(".eE") != std::string::npos)
      return bad("an id that is not an integer");
    if (!id || *id > INT32_MAX)
      return bad("an id above 2^31 - 1");
    entries.emplace_back(member.first, *id);
  }
  return entries;
}

//===----------------------------------------------------------------------===//
// The pre-tokenizer
//===----------------------------------------------------------------------===//

std::vector<std::string_view> gpt2PreTokenize(std::string_view text) {
  // Classes and offsets of the code points, once.
  std::vector<CodePointClass> cls;
  std::vector<uint32_t> cps;
  std::vector<size_t> offset;
  for (size_t i = 0; i < text.size();) {
    auto [cp, length] = decodeUtf8(text, i);
    cps.push_back(cp);
    cls.push_back(cp == kInvalidCodePoint ? CodePointClass::Other
                                          : classify(cp));
    offset.push_back(i);
    i += length;
  }
  size_t n = cps.size();
  offset.push_back(text.size());

  std::vector<std::string_view> pieces;
  auto emit = [&](size_t from, size_t to) {
    pieces.push_back(text.substr(offset[from], offset[to] - offset[from]));
  };
  // The end of the run of `c` starting at `from`.
  auto runOf = [&](size_t from, CodePointClass c) {
    while (from < n && cls[from] == c)
      ++from;
    return from;
  };
  auto runOfOther = [&](size_t from) {
    while (from < n && cls[from] == CodePointClass::Other)
      ++from;
    return from;
  };
  for (size_t i = 0; i < n;) {
    // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, ASCII apostrophe).
    if (cps[i] == '\'' && i + 1 < n) {
      uint32_t a = cps[i + 1], b = i + 2 < n ? cps[i + 2] : 0;
      size_t length = 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd')
        length = 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
               (a == 'l' && b == 'l'))
        length = 3;
      if (length) {
        emit(i, i + length);
        i += length;
        continue;
      }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional U+0020
    // then a run of one class.
    size_t start = cps[i] == ' ' && i + 1 < n ? i + 1 : i;
    CodePointClass c = cls[start];
    if (c != CodePointClass::Space) {
      size_t end =
          c == CodePointClass::Other ? runOfOther(start) : runOf(start, c);
      emit(i, end);
      i = end;
      continue;
    }
    // `\s+(?!\S)`: the whitespace run, less its last code point when a
    // non-space follows (so " x" keeps its space for the word); when that
    // leaves nothing, `\s+` takes the single space.
    size_t end = runOf(i, CodePointClass::Space);
    if (end < n && end - i > 1)
      --end;
    emit(i, end);
    i = end;
  }
  return pieces;
}

//===----------------------------------------------------------------------===//
// The tokenizer
//===----------------------------------------------------------------------===//

Result<Gpt2Tokenizer> Gpt2Tokenizer::open(const std::string &vocabPath,
                                          const std::string &mergesPath) {
  Result<std::vector<uint8_t>> vocab =
      readWholeFile(vocabPath, "the vocabulary (vocab.json)");
  if (!vocab.ok())
    return Status::error(vocab.message());
  Result<std::vector<uint8_t>> merges =
      readWholeFile(mergesPath, "the merges (merges.txt)");
  if (!merges.ok())
    return Status::error(merges.message());
  return fromContents(
      std::string_view(reinterpret_cast<const char *>(vocab->data()),
                       vocab->size()),
      std::string_view(reinterpret_cast<const char *>(merges->data()),
                       merges->size()),
      "the vocabulary '" + vocabPath + "'", "the merges '" + mergesPath + "'");
}

Result<Gpt2Tokenizer> Gpt2Tokenizer::fromContents(
    std::string_view vocabJson, std::string_view mergesText,
    const std::string &vocabName, const std::string &mergesName) {
  Result<std::vector<std::pair<std::string, int64_t>>> entries =
      parseJsonStringToIntObject(vocabJson, vocabName);
  if (!entries.ok())
    return Status::error(entries.message());
  if (entries->empty())
    return Status::error(vocabName + " is an empty object; a byte-level BPE "
                                     "vocabulary has at least the 256 byte "
                                     "tokens");

  Gpt2Tokenizer t;
  int64_t maxId = 0;
  for (const auto &[token, id] : *entries)
    maxId = std::max(maxId, id);
  if (maxId > kMaxTokenId)
    return Status::error(vocabName + " has id " + std::to_string(maxId) +
                         ", above the largest supported, " +
                         std::to_string(kMaxTokenId));
  t.idToToken_.resize(size_t(maxId + 1));
  t.tokenToId_.reserve(entries->size());
  for (auto &[token, id] : *entries) {
    std::optional<std::string> &slot = t.idToToken_[size_t(id)];
    if (slot)
      return Status::error(vocabName + " gives id " + std::to_string(id) +
                           " to both \"" + *slot + "\" and \"" + token +
                           "\"; each id must name one token");
    slot = token;
    t.tokenToId_.emplace(std::move(token), int32_t(id));
  }

  // The bytes each token stands for (a code point outside the byte map, as
  // in an added token, stands for its own UTF-8, as in HF's decoder).
  const ByteMap &map = byteMap();
  t.idToBytes_.resize(t.idToToken_.size());
  for (size_t id = 0; id < t.idToToken_.size(); ++id) {
    if (!t.idToToken_[id])
      continue;
    const std::string &token = *t.idToToken_[id];
    std::string &bytes = t.idToBytes_[id];
    for (size_t i = 0; i < token.size();) {
      auto [cp, length] = decodeUtf8(token, i);
      int b = map.toByte(cp);
      if (b >= 0)
        bytes += char(b);
      else
        bytes.append(token.substr(i, length));
      i += length;
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string token;
    appendUtf8(token, map.toCodePoint[b]);
    auto it = t.tokenToId_.find(token);
    if (it == t.tokenToId_.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      return Status::error(vocabName + " has no token for the byte " + hex +
                           " (\"" + token +
                           "\"): a byte-level BPE vocabulary has all 256, "
                           "so any text can be encoded");
    }
    t.byteId_[b] = it->second;
  }

  // merges.txt: "#version" lines skipped (as HF does), then "left right"
  // per line, rank by order.
  size_t lineNo = 0;
  int32_t rank = 0;
  for (size_t at = 0; at < mergesText.size();) {
    size_t newline = mergesText.find('\n', at);
    size_t lineEnd =
        newline == std::string_view::npos ? mergesText.size() : newline;
    std::string_view line = mergesText.substr(at, lineEnd - at);
    at = lineEnd + 1;
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    auto where = [&] {
      return mergesName + ", line " + std::to_string(lineNo);
    };
    if (line.substr(0, 8) == "#version")
      continue;
    size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 ||
        space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos)
      return Status::error(where() + ": \"" + std::string(line) +
                           "\" is not a merge: expected two tokens "
                           "separated by one space");
    std::string left(line.substr(0, space)), right(line.substr(space + 1));
    std::string joined = left + right;
    for (const std::string *token : {&left, &right, &joined})
      if (!t.tokenToId_.count(*token))
        return Status::error(where() + ": the merge \"" + std::string(line) +
                             "\" names \"" + *token + "\", which is not in " +
                             vocabName);
    auto [it, inserted] =
        t.merges_.emplace(pairKey(t.tokenToId_[left], t.tokenToId_[right]),
                          Merge{rank, t.tokenToId_[joined]});
    if (!inserted)
      return Status::error(where() + ": the merge \"" + std::string(line) +
                           "\" repeats an earlier line's (rank " +
                           std::to_string(it->second.rank) + ")");
    ++rank;
  }
  return t;
}

std::vector<int32_t> Gpt2Tokenizer::mergeWord(std::vector<int32_t> ids) const {
  // HF's Word::merge_all: a heap of (rank, position) over adjacent pairs,
  // symbols as a linked list; an entry whose pair has changed is skipped.
  struct Symbol {
    int32_t id;
    int prev, next;
    bool alive;
  };
  struct Entry {
    int32_t rank;
    int pos;
    int32_t result;
    bool operator>(const Entry &o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  int n = int(ids.size());
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    sym[size_t(i)] = {ids[size_t(i)], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int pos) {
    int next = sym[size_t(pos)].next;
    if (next < 0)
      return;
    auto it = merges_.find(pairKey(sym[size_t(pos)].id, sym[size_t(next)].id));
    if (it != merges_.end())
      heap.push({it->second.rank, pos, it->second.result});
  };
  for (int i = 0; i + 1 < n; ++i)
    push(i);
  while (!heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    Symbol &s = sym[size_t(top.pos)];
    if (!s.alive || s.next < 0)
      continue;
    auto it = merges_.find(pairKey(s.id, sym[size_t(s.next)].id));
    if (it == merges_.end() || it->second.result != top.result)
      continue;
    Symbol &right = sym[size_t(s.next)];
    right.alive = false;
    s.id = top.result;
    s.next = right.next;
    if (s.next >= 0)
      sym[size_t(s.next)].prev = top.pos;
    if (s.prev >= 0)
      push(s.prev);
    push(top.pos);
  }
  std::vector<int32_t> out;
  for (int i = n ? 0 : -1; i >= 0; i = sym[size_t(i)].next)
    out.push_back(sym[size_t(i)].id);
  return out;
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  for (std::string_view piece : gpt2PreTokenize(text)) {
    std::string key(piece);
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      auto it = cache_->words.find(key);
      if (it != cache_->words.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    std::vector<int32_t> ids;
    ids.reserve(piece.size());
    for (char c : piece)
      ids.push_back(byteId_[uint8_t(c)]);
    ids = mergeWord(std::move(ids));
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (cache_->words.size() < kCacheEntries)
      cache_->words.emplace(std::move(key), std::move(ids));
  }
  return out;
}

Result<std::string>
Gpt2Tokenizer::decode(const std::vector<int32_t> &ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    if (id < 0 || size_t(id) >= idToToken_.size() || !idToToken_[size_t(id)])
      return Status::error("cannot decode token id " + std::to_string(id) +
                           " at position " + std::to_string(i) +
                           ": it is not in the vocabulary (" +
                           std::to_string(tokenToId_.size()) + " tokens, ids " +
                           "below " + std::to_string(idToToken_.size()) + ")");
    out += idToBytes_[size_t(id)];
  }
  return out;
}

std::optional<int32_t> Gpt2Tokenizer::tokenId(std::string_view token) const {
  auto it = tokenToId_.find(std::string(token));
  if (it == tokenToId_.end())
    return std::nullopt;
  return it->second;
}

} // namespace runtime
} // namespace loom
