//===- Gpt2TokenizerTest.cpp - GPT-2 byte-level BPE against HF ------------===//
//
// Hand-made vocabularies check the pieces (the byte map, the regex, merge
// order, the errors); MatchesHuggingFace checks the whole against the ids
// Hugging Face tokenizers gives on a BPE it trains
// (Inputs/hf_bpe_reference.py).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Gpt2Tokenizer.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace loom::runtime;

namespace {

/// GPT-2's bytes_to_unicode, written out again from the paper's code so the
/// test does not share the implementation's table.
uint32_t byteCodePoint(int b) {
  std::vector<int> printable;
  for (int c = '!'; c <= '~'; ++c)
    printable.push_back(c);
  for (int c = 0xA1; c <= 0xAC; ++c)
    printable.push_back(c);
  for (int c = 0xAE; c <= 0xFF; ++c)
    printable.push_back(c);
  int n = 0;
  for (int c = 0; c < 256; ++c) {
    bool isPrintable =
        std::find(printable.begin(), printable.end(), c) != printable.end();
    if (c == b)
      return isPrintable ? uint32_t(c) : uint32_t(256 + n);
    if (!isPrintable)
      ++n;
  }
  return 0;
}

std::string utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
  return out;
}

/// The byte-level form of `bytes` ("Ġthe" for " the").
std::string byteLevel(const std::string &bytes) {
  std::string out;
  for (char c : bytes)
    out += utf8(byteCodePoint(uint8_t(c)));
  return out;
}

/// A vocab.json: the 256 byte tokens (ids 0..255 in byte order, keys written
/// as \u escapes) then `extra` (byte-level forms of the given bytes).
std::string vocabJson(const std::vector<std::string> &extra) {
  std::string json = "{\n";
  for (int b = 0; b < 256; ++b) {
    char key[16];
    std::snprintf(key, sizeof key, "\\u%04X", byteCodePoint(b));
    json += std::string("  \"") + key + "\": " + std::to_string(b) + ",\n";
  }
  for (size_t i = 0; i < extra.size(); ++i)
    json += "  \"" + byteLevel(extra[i]) + "\": " + std::to_string(256 + i) +
            (i + 1 < extra.size() ? ",\n" : "\n");
  if (extra.empty())
    json.erase(json.size() - 2, 1); // the last comma
  return json + "}\n";
}

/// merges.txt from pairs of byte strings.
std::string
mergesText(const std::vector<std::pair<std::string, std::string>> &merges) {
  std::string text = "#version: 0.2\n";
  for (const auto &[a, b] : merges)
    text += byteLevel(a) + " " + byteLevel(b) + "\n";
  return text;
}

Gpt2Tokenizer
make(const std::vector<std::string> &extra,
     const std::vector<std::pair<std::string, std::string>> &merges) {
  Result<Gpt2Tokenizer> t = Gpt2Tokenizer::fromContents(
      vocabJson(extra), mergesText(merges), "vocab.json", "merges.txt");
  EXPECT_TRUE(t.ok()) << t.message();
  return std::move(*t);
}

std::vector<std::string> pieces(const std::string &text) {
  std::vector<std::string> out;
  for (std::string_view p : gpt2PreTokenize(text))
    out.emplace_back(p);
  return out;
}

using Pieces = std::vector<std::string>;

TEST(Gpt2Tokenizer, ByteMapMatchesGpt2) {
  EXPECT_EQ(byteLevel(" "), "\xC4\xA0");  // U+0120 Ġ
  EXPECT_EQ(byteLevel("\n"), "\xC4\x8A"); // U+010A Ċ
  Gpt2Tokenizer t = make({}, {});
  // Every byte is its own token, and decodes back.
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += char(b);
  std::vector<int32_t> ids = t.encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(ids[size_t(b)], b);
  Result<std::string> back = t.decode(ids);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, all);
  EXPECT_EQ(t.vocabSize(), 256);
}

TEST(Gpt2Tokenizer, PreTokenizerFollowsTheRegex) {
  EXPECT_EQ(pieces("Hello world"), (Pieces{"Hello", " world"}));
  // Contractions split off (lower case only); other apostrophes are
  // punctuation.
  EXPECT_EQ(
      pieces("it's they're I'M IT'S"),
      (Pieces{"it", "'s", " they", "'re", " I", "'", "M", " IT", "'", "S"}));
  EXPECT_EQ(pieces("'tis"), (Pieces{"'t", "is"}));
  // Letters, numbers and the rest are separate runs, each with one
  // optional leading U+0020.
  EXPECT_EQ(pieces("abc123!? 45x"), (Pieces{"abc", "123", "!?", " 45", "x"}));
  // A whitespace run leaves its last space to the word after it; at the end
  // it stays whole; a lone tab before a word is its own piece.
  EXPECT_EQ(pieces("a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(pieces("a\tb"), (Pieces{"a", "\t", "b"}));
  EXPECT_EQ(pieces("a \n\n"), (Pieces{"a", " \n\n"}));
  EXPECT_EQ(pieces("a\n\n b"), (Pieces{"a", "\n\n", " b"}));
  EXPECT_EQ(pieces(" "), (Pieces{" "}));
  // Unicode categories: accented and CJK letters, Arabic-Indic digits, an
  // emoji (neither), the ideographic space (White_Space).
  EXPECT_EQ(pieces("caf\u00e9 \u4f60\u597d \u0663\u0664 \U0001F600\u3000x"),
            (Pieces{"caf\u00e9", " \u4f60\u597d", " \u0663\u0664",
                    " \U0001F600", "\u3000", "x"}));
  EXPECT_EQ(pieces("a\U0001F600b\u4f60\u0663\u00b2"),
            (Pieces{"a", "\U0001F600", "b\u4f60", "\u0663\u00b2"}));
  // U+001F is not White_Space (unlike Python's isspace).
  EXPECT_EQ(pieces("a\x1f b"), (Pieces{"a", "\x1f", " b"}));
  // Bytes that are not UTF-8 are punctuation, and nothing is lost.
  EXPECT_EQ(pieces("a\xff\xfe b"), (Pieces{"a", "\xff\xfe", " b"}));
  EXPECT_TRUE(pieces("").empty());
}

TEST(Gpt2Tokenizer, MergesApplyByRank) {
  // " the": Ġ t h e -> Ġt, he -> Ġthe.
  Gpt2Tokenizer t =
      make({" t", "he", " the"}, {{" ", "t"}, {"h", "e"}, {" t", "he"}});
  EXPECT_EQ(t.encode(" the"), (std::vector<int32_t>{258}));
  EXPECT_EQ(t.encode("the"), (std::vector<int32_t>{'t', 257}));
  EXPECT_EQ(t.mergeCount(), 3u);
  EXPECT_EQ(t.tokenId(byteLevel(" the")), 258);
  EXPECT_FALSE(t.tokenId("nope").has_value());
  // The lower rank wins, wherever it is in the word.
  Gpt2Tokenizer ab = make({"ab", "bc"}, {{"a", "b"}, {"b", "c"}});
  EXPECT_EQ(ab.encode("abc"), (std::vector<int32_t>{256, 'c'}));
  Gpt2Tokenizer bc = make({"ab", "bc"}, {{"b", "c"}, {"a", "b"}});
  EXPECT_EQ(bc.encode("abc"), (std::vector<int32_t>{'a', 257}));
  // Equal ranks merge leftmost first: "aaa" -> aa a.
  Gpt2Tokenizer aa = make({"aa"}, {{"a", "a"}});
  EXPECT_EQ(aa.encode("aaa"), (std::vector<int32_t>{256, 'a'}));
  EXPECT_EQ(aa.encode("aaaa"), (std::vector<int32_t>{256, 256}));
  // The cache gives the same answer the second time.
  EXPECT_EQ(aa.encode("aaa aaa"), aa.encode("aaa aaa"));
  Result<std::string> back = t.decode(t.encode("the other the"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "the other the");
}

TEST(Gpt2Tokenizer, JsonParserIsStrict) {
  auto parse = [](const std::string &text) {
    return parseJsonStringToIntObject(text, "v.json");
  };
  Result<std::vector<std::pair<std::string, int64_t>>> ok =
      parse(" {\"a\\\"b\" : 0, \"\\u0120x\":7, \"\\ud83d\\ude00\":12,"
            "\"\\n\\/\":3} \n");
  ASSERT_TRUE(ok.ok()) << ok.message();
  ASSERT_EQ(ok->size(), 4u);
  EXPECT_EQ((*ok)[0], (std::pair<std::string, int64_t>{"a\"b", 0}));
  EXPECT_EQ((*ok)[1].first, "\xC4\xA0x");
  EXPECT_EQ((*ok)[2].first, "\U0001F600");
  EXPECT_EQ((*ok)[3].first, "\n/");
  EXPECT_TRUE(parse("{}").ok());
  struct Bad {
    const char *text, *message;
  };
  for (Bad bad : {
           Bad{"", "v.json, line 1, column 1: expected '{'"},
           Bad{"[1]", "expected '{'"},
           Bad{"{\"a\": 1,}", "line 1, column 9: expected a string key"},
           Bad{"{\"a\": 1\n\"b\": 2}", "line 2, column 1: expected ',' or '}'"},
           Bad{"{\"a\": 1, \"a\": 2}",
               "column 10: the key \"a\" appears twice (first at line 1, "
               "column 2)"},
           Bad{"{\"a\": -1}", "a negative id"},
           Bad{"{\"a\": 1.5}", "not an integer"},
           Bad{"{\"a\": 1e3}", "not an integer"},
           Bad{"{\"a\": 01}", "leading zero"},
           Bad{"{\"a\": \"1\"}", "expected an integer id"},
           Bad{"{\"a\": 99999999999}", "above 2^31 - 1"},
           Bad{"{\"a\": 1", "expected ',' or '}' after a value, found the end"},
           Bad{"{\"a", "unterminated string"},
           Bad{"{\"\\x\": 1}", "unknown escape \\x"},
           Bad{"{\"\\u12\": 1}", "four hex digits"},
           Bad{"{\"\\ud800\": 1}", "high surrogate"},
           Bad{"{\"\\udc00\": 1}", "low surrogate"},
           Bad{"{\"\t\": 1}", "control character"},
           Bad{"{\"\xff\": 1}", "not valid UTF-8"},
           Bad{"{\"a\": 1} x", "unexpected text after the object"},
       }) {
    Result<std::vector<std::pair<std::string, int64_t>>> r = parse(bad.text);
    ASSERT_FALSE(r.ok()) << bad.text;
    EXPECT_NE(r.message().find(bad.message), std::string::npos)
        << bad.text << " -> " << r.message();
  }
}

class Gpt2TokenizerFiles : public TempDir {};

TEST_F(Gpt2TokenizerFiles, ErrorsNameTheFileAndLine) {
  std::string vocab = write("vocab.json", vocabJson({"ab"}));
  std::string merges = write("merges.txt", mergesText({{"a", "b"}}));
  Result<Gpt2Tokenizer> good = Gpt2Tokenizer::open(vocab, merges);
  ASSERT_TRUE(good.ok()) << good.message();
  EXPECT_EQ(good->encode("abab"), (std::vector<int32_t>{256, 256}));

  auto openError = [&](const std::string &vocabText,
                       const std::string &mergesText) {
    std::string v = write("v.json", vocabText);
    std::string m = write("m.txt", mergesText);
    Result<Gpt2Tokenizer> t = Gpt2Tokenizer::open(v, m);
    EXPECT_FALSE(t.ok());
    return t.ok() ? std::string() : t.message();
  };
  auto contains = [](const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
  };
  Result<Gpt2Tokenizer> missing =
      Gpt2Tokenizer::open(dir + "/none.json", merges);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.message(), dir + "/none.json"))
      << missing.message();
  Result<Gpt2Tokenizer> missingMerges = Gpt2Tokenizer::open(vocab, dir);
  ASSERT_FALSE(missingMerges.ok());
  EXPECT_TRUE(contains(missingMerges.message(), "merges"))
      << missingMerges.message();

  std::string e = openError("{\"a\": 0,", "");
  EXPECT_TRUE(contains(e, "the vocabulary '" + dir + "/v.json', line 1")) << e;
  e = openError("{\"a\": 0, \"b\": 0}", "");
  EXPECT_TRUE(contains(e, "gives id 0 to both \"a\" and \"b\"")) << e;
  e = openError("{\"a\": 0}", "");
  EXPECT_TRUE(contains(e, "no token for the byte 0x00")) << e;
  e = openError("{}", "");
  EXPECT_TRUE(contains(e, "empty object")) << e;
  e = openError(vocabJson({"ab"}), "#version: 0.2\na b\nab\n");
  EXPECT_TRUE(contains(e, "the merges '" + dir +
                              "/m.txt', line 3: \"ab\" is "
                              "not a merge"))
      << e;
  e = openError(vocabJson({"ab"}), "a b\na  b\n");
  EXPECT_TRUE(contains(e, "line 2")) << e;
  e = openError(vocabJson({"ab"}), "a b\n\n");
  EXPECT_TRUE(contains(e, "line 2")) << e;
  e = openError(vocabJson({"ab"}), "a b\nab \xC4\x80\xC4\x80\n");
  EXPECT_TRUE(contains(e, "line 2: the merge")) << e;
  e = openError(vocabJson({"ab"}), "a c\n");
  EXPECT_TRUE(contains(e, "line 1: the merge \"a c\" names \"ac\", which is "
                          "not in the vocabulary"))
      << e;
  e = openError(vocabJson({"ab"}), "a b\na b\n");
  EXPECT_TRUE(contains(e, "line 2: the merge \"a b\" repeats")) << e;
  // CRLF line ends and a file without a final newline are fine.
  std::string v = write("v.json", vocabJson({"ab", "abc"}));
  std::string m = write("m.txt", "#version: 0.2\r\na b\r\nab c");
  Result<Gpt2Tokenizer> crlf = Gpt2Tokenizer::open(v, m);
  ASSERT_TRUE(crlf.ok()) << crlf.message();
  EXPECT_EQ(crlf->encode("abc"), (std::vector<int32_t>{257}));

  Result<std::string> bad = good->decode({1, 2, 257});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.message(), "token id 257 at position 2"))
      << bad.message();
  EXPECT_FALSE(good->decode({-1}).ok());
}

//===----------------------------------------------------------------------===//
// Against Hugging Face tokenizers
//===----------------------------------------------------------------------===//

std::string readFile(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream s;
  s << file.rdbuf();
  return s.str();
}

/// The Python with `tokenizers`: $LOOM_TEST_PYTHON, else the benchmark
/// environment's (docs/performance.md), else python3.
std::string python() {
  if (const char *p = std::getenv("LOOM_TEST_PYTHON"))
    return p;
  if (const char *home = std::getenv("HOME")) {
    std::string venv = std::string(home) + "/.cache/loom/bench-venv/bin/python";
    if (::access(venv.c_str(), X_OK) == 0)
      return venv;
  }
  return "python3";
}

TEST_F(Gpt2TokenizerFiles, MatchesHuggingFace) {
  std::string command = "'" + python() +
                        "' '" LOOM_TEST_INPUTS_DIR "/hf_bpe_reference.py' '" +
                        dir + "' 2>&1";
  FILE *pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe))
    output.append(buffer, n);
  int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << command << "\n" << output;
  if (WEXITSTATUS(status) == 77)
    GTEST_SKIP() << output;
  ASSERT_EQ(WEXITSTATUS(status), 0) << command << "\n" << output;

  Result<Gpt2Tokenizer> t =
      Gpt2Tokenizer::open(dir + "/vocab.json", dir + "/merges.txt");
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->vocabSize(), 1000);
  int cases = 0;
  for (int k = 0;; ++k) {
    std::string base = dir + "/case" + std::to_string(k);
    if (::access((base + ".txt").c_str(), R_OK) != 0)
      break;
    ++cases;
    std::string text = readFile(base + ".txt");
    std::vector<int32_t> expected;
    std::istringstream ids(readFile(base + ".ids"));
    for (int32_t id; ids >> id;)
      expected.push_back(id);
    std::vector<int32_t> got = t->encode(text);
    EXPECT_EQ(got, expected) << "case " << k << ": " << text.substr(0, 200);
    Result<std::string> back = t->decode(got);
    ASSERT_TRUE(back.ok()) << back.message();
    EXPECT_EQ(*back, text) << "case " << k;
  }
  EXPECT_GE(cases, 8) << output;
}

} // namespace
