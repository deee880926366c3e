//===- JsonTest.cpp - the strict JSON reader ------------------------------===//
//
// Every kind of value, numbers read exactly, member order, positions, and
// one case per error message.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Json.h"

#include <gtest/gtest.h>

#include <cmath>

#include <string>

using namespace loom::runtime;

namespace {

TEST(Json, ParsesEveryKind) {
  Result<JsonValue> v = parseJson(
      " {\"s\": \"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
      " \"n\": -12, \"f\": 1.5e3, \"t\": true, \"x\": false,"
      "\n \"z\": null, \"a\": [1, [], {}, \"\xC3\xA9\"], \"o\": {}}\n",
      "t.json");
  ASSERT_TRUE(v.ok()) << v.message();
  ASSERT_TRUE(v->isObject());
  const auto &members = v->object();
  ASSERT_EQ(members.size(), 8u);
  const char *order[] = {"s", "n", "f", "t", "x", "z", "a", "o"};
  for (size_t i = 0; i < 8; ++i)
    EXPECT_EQ(members[i].first, order[i]);
  EXPECT_EQ(v->find("s")->text(), "a\"\\/\b\f\n\r\t\xC3\xA9\U0001F600");
  EXPECT_EQ(v->find("n")->text(), "-12");
  EXPECT_EQ(v->find("n")->integer(), -12);
  EXPECT_EQ(v->find("f")->text(), "1.5e3");
  EXPECT_FALSE(v->find("f")->integer());
  EXPECT_DOUBLE_EQ(v->find("f")->number(), 1500.0);
  EXPECT_TRUE(v->find("t")->isBool() && v->find("t")->boolean());
  EXPECT_TRUE(v->find("x")->isBool() && !v->find("x")->boolean());
  EXPECT_TRUE(v->find("z")->isNull());
  const JsonValue &a = *v->find("a");
  ASSERT_EQ(a.array().size(), 4u);
  EXPECT_TRUE(a.array()[1].isArray() && a.array()[1].array().empty());
  EXPECT_TRUE(a.array()[2].isObject());
  EXPECT_EQ(a.array()[3].text(), "\xC3\xA9");
  EXPECT_EQ(v->find("missing"), nullptr);
  // Positions: "z"'s value is on line 2, after " \"z\": ".
  EXPECT_EQ(v->find("z")->line(), 2u);
  EXPECT_EQ(v->find("z")->column(), 7u);
  EXPECT_EQ(v->line(), 1u);
  EXPECT_EQ(v->column(), 2u);
  for (const char *scalar : {"0", "\"x\"", "null", " [ ] "})
    EXPECT_TRUE(parseJson(scalar, "t").ok()) << scalar;
}

TEST(Json, IntegersAreExact) {
  auto integer = [](const char *text) {
    Result<JsonValue> v = parseJson(text, "t");
    EXPECT_TRUE(v.ok()) << v.message();
    return v.ok() ? v->integer() : std::nullopt;
  };
  EXPECT_EQ(integer("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(integer("-9223372036854775808"), INT64_MIN);
  EXPECT_EQ(integer("9007199254740993"), 9007199254740993); // not a double
  EXPECT_FALSE(integer("9223372036854775808"));
  EXPECT_FALSE(integer("-9223372036854775809"));
  EXPECT_FALSE(integer("1.0"));
  EXPECT_FALSE(integer("1e2"));
  EXPECT_EQ(integer("-0"), 0);
}

TEST(Json, PythonsNonFiniteNumbersWhenAsked) {
  const char *text = "{\"a\": NaN, \"b\": [Infinity, -Infinity]}";
  EXPECT_FALSE(parseJson(text, "strict.json").ok());
  JsonOptions options;
  options.allowNonFinite = true;
  Result<JsonValue> v = parseJson(text, "python.jsonl", options);
  ASSERT_TRUE(v.ok()) << v.message();
  ASSERT_TRUE(v->find("a") && v->find("a")->isNumber());
  EXPECT_TRUE(std::isnan(v->find("a")->number()));
  EXPECT_EQ(v->find("b")->array()[1].number(), -INFINITY);
  EXPECT_FALSE(parseJson("{\"a\": Nan}", "python.jsonl", options).ok());
}

TEST(Json, FirstLineAndEndName) {
  JsonOptions options;
  options.firstLine = 41;
  options.endName = "the line";
  Result<JsonValue> v = parseJson("{\"a\": ", "c.jsonl", options);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.message(), "c.jsonl, line 41, column 7: expected a value, found "
                         "the end of the line");
}

TEST(Json, ErrorsNameTheLineAndColumn) {
  struct Bad {
    const char *text, *message;
  };
  for (Bad bad : {
           Bad{"", "t.json, line 1, column 1: expected a value, found the end "
                   "of the file"},
           Bad{"{\"a\": 1,}",
               "t.json, line 1, column 9: expected a string key"},
           Bad{"{\"a\": 1\n\"b\": 2}",
               "line 2, column 1: expected ',' or '}' after a value"},
           Bad{"[1 2]", "column 4: expected ',' or ']' after an element"},
           Bad{"{\"a\" 1}", "expected ':' after the key"},
           Bad{"{\"a\": 1, \"a\": 2}",
               "column 10: the key \"a\" appears twice (first at line 1, "
               "column 2)"},
           Bad{"01", "leading zero"},
           Bad{"-", "expected a digit in the number"},
           Bad{"1.", "expected a digit after the decimal point"},
           Bad{"1e+", "expected a digit in the exponent"},
           Bad{"+1", "expected a value"},
           Bad{"tru", "expected a value"},
           Bad{"NaN", "expected a value"},
           Bad{"'a'", "expected a value"},
           Bad{"\"a", "unterminated string"},
           Bad{"\"\\x\"", "column 2: unknown escape \\x"},
           Bad{"\"\\u12\"", "four hex digits"},
           Bad{"\"\\ud800\"", "high surrogate not followed"},
           Bad{"\"\\ud800\\u0041\"", "high surrogate not followed"},
           Bad{"\"\\udc00\"", "low surrogate without a high one"},
           Bad{"\"\t\"", "control character"},
           Bad{"\"\xff\"", "not valid UTF-8"},
           Bad{"\"\xC0\xAF\"", "not valid UTF-8"},     // overlong '/'
           Bad{"\"\xED\xA0\x80\"", "not valid UTF-8"}, // a surrogate
           Bad{"\"\xE2\x82\"", "not valid UTF-8"},     // cut short
           Bad{"{} x", "unexpected text after the object"},
           Bad{"[] x", "unexpected text after the array"},
           Bad{"1 2", "unexpected text after the value"},
       }) {
    Result<JsonValue> r = parseJson(bad.text, "t.json");
    ASSERT_FALSE(r.ok()) << bad.text;
    EXPECT_NE(r.message().find(bad.message), std::string::npos)
        << bad.text << " -> " << r.message();
  }
}

TEST(Json, NestingIsBounded) {
  std::string deep(128, '[');
  deep += std::string(128, ']');
  EXPECT_TRUE(parseJson(deep, "t").ok());
  std::string deeper(100000, '[');
  Result<JsonValue> r = parseJson(deeper, "t");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("column 129: arrays and objects nested deeper "
                             "than 128 levels"),
            std::string::npos)
      << r.message();
  JsonOptions shallow;
  shallow.maxDepth = 1;
  EXPECT_TRUE(parseJson("[1]", "t", shallow).ok());
  EXPECT_FALSE(parseJson("[[1]]", "t", shallow).ok());
}

} // namespace
