//===- TraceTest.cpp - the tracer's JSON, escaping and thread safety ------===//

#include "loom/runtime/Trace.h"

#include "TempDir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <locale>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

using namespace loom::runtime;

namespace {

TEST(JsonQuote, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(jsonQuote(""), "\"\"");
  EXPECT_EQ(jsonQuote("matmul"), "\"matmul\"");
  EXPECT_EQ(jsonQuote("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(jsonQuote("C:\\plans\\gpt.plan"), "\"C:\\\\plans\\\\gpt.plan\"");
  EXPECT_EQ(jsonQuote("line\nnext\ttab\rcr\bbs\fff"),
            "\"line\\nnext\\ttab\\rcr\\bbs\\fff\"");
  EXPECT_EQ(jsonQuote(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  EXPECT_EQ(jsonQuote("\x01\x1f"), "\"\\u0001\\u001f\"");
  // DEL and '/' need no escape.
  EXPECT_EQ(jsonQuote("a/b\x7f"), "\"a/b\x7f\"");
}

TEST(JsonQuote, KeepsUtf8AndReplacesBytesThatAreNot) {
  // é, €, 𝄞 (2, 3 and 4 bytes) pass through.
  EXPECT_EQ(jsonQuote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e\"");
  // A stray continuation byte, a truncated sequence, an overlong '/', a
  // surrogate, a code point past U+10FFFF: each byte becomes U+FFFD.
  EXPECT_EQ(jsonQuote("a\x80z"), "\"a\\ufffdz\"");
  EXPECT_EQ(jsonQuote("\xe2\x82"), "\"\\ufffd\\ufffd\"");
  EXPECT_EQ(jsonQuote("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
  EXPECT_EQ(jsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
  EXPECT_EQ(jsonQuote("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

TEST(JsonDouble, RoundTripsInEveryLocaleAndWritesNullForNonFinite) {
  EXPECT_EQ(jsonDouble(0.5), "0.5");
  EXPECT_EQ(jsonDouble(-3), "-3");
  EXPECT_EQ(jsonDouble(0.1), "0.1");
  EXPECT_EQ(std::stod(jsonDouble(1.0 / 3)), 1.0 / 3);
  EXPECT_EQ(jsonDouble(HUGE_VAL), "null");
  EXPECT_EQ(jsonDouble(std::nan("")), "null");
  // A global locale with a decimal comma and digit grouping (one that
  // iostreams would honour) changes nothing.
  struct Comma : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
  };
  std::locale saved =
      std::locale::global(std::locale(std::locale::classic(), new Comma));
  EXPECT_EQ(jsonDouble(1234.5), "1234.5");
  EXPECT_EQ(TraceArgs().add("bytes", 1234567).json(), "{\"bytes\":1234567}");
  std::locale::global(saved);
}

TEST(TraceArgs, BuildsAnObject) {
  EXPECT_EQ(TraceArgs().json(), "{}");
  TraceArgs args;
  args.add("op", "matmul")
      .add("location", std::string("gpt.loom:12:7"))
      .add("bytes", size_t(4096))
      .add("step", int64_t(-1))
      .add("rank", 3)
      .add("seconds", 0.25)
      .add("hit", true)
      .add("we\"ird", "x\\y");
  EXPECT_EQ(args.json(), "{\"op\":\"matmul\",\"location\":\"gpt.loom:12:7\","
                         "\"bytes\":4096,\"step\":-1,\"rank\":3,"
                         "\"seconds\":0.25,\"hit\":true,"
                         "\"we\\\"ird\":\"x\\\\y\"}");
}

TEST(Tracer, WritesTheTraceEventFormat) {
  Tracer tracer;
  tracer.nameProcess("loom-run \"a\".plan");
  tracer.nameTrack(Tracer::rankTrack(0), "rank 0 (dp=0)");
  tracer.complete(Tracer::rankTrack(0), "matmul", "op", 10, 5,
                  TraceArgs().add("flops", 12));
  tracer.compileKernels(Tracer::kHostTrack, 1, 2, false, 0.5, 7);
  std::string json = tracer.json();
  EXPECT_EQ(json.rfind("{\"traceEvents\":[\n", 0), 0u) << json;
  EXPECT_NE(json.find("],\n\"displayTimeUnit\":\"ms\"}\n"), std::string::npos);
  EXPECT_NE(json.find("\"args\":{\"name\":\"loom-run \\\"a\\\".plan\"}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"tid\":1,\"name\":\"thread_name\",\"args\":{\"name\":"
                      "\"rank 0 (dp=0)\"}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("{\"name\":\"matmul\",\"cat\":\"op\",\"ph\":\"X\","
                      "\"ts\":10,\"dur\":5,"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"tid\":1,\"args\":{\"flops\":12}}"), std::string::npos);
  EXPECT_NE(json.find("{\"name\":\"compile kernels\",\"cat\":\"compile\","
                      "\"ph\":\"X\",\"ts\":1,\"dur\":2,"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"args\":{\"cache\":\"miss\",\"seconds\":0.5,"
                      "\"kernels\":7}"),
            std::string::npos)
      << json;
  // process_name, thread_name and its sort index, two slices.
  EXPECT_EQ(tracer.size(), 5u);
}

TEST(Tracer, TracesOnlyItsSteps) {
  Tracer tracer;
  EXPECT_FALSE(tracer.tracesStep(1)); // none until set
  tracer.setSteps(4, 6);
  EXPECT_FALSE(tracer.tracesStep(3));
  EXPECT_TRUE(tracer.tracesStep(4));
  EXPECT_TRUE(tracer.tracesStep(6));
  EXPECT_FALSE(tracer.tracesStep(7));
}

TEST(TraceScope, RecordsAnEnclosingSliceAndNothingWithoutATracer) {
  Tracer tracer;
  {
    TraceScope outer(&tracer, 1, "step 1", "step");
    ASSERT_TRUE(outer);
    outer.args().add("step", 1);
    TraceScope inner(&tracer, 1, "optimizer", "optimizer");
    inner.end();
    EXPECT_EQ(tracer.size(), 1u); // inner, now; outer at the end
    inner.end();                  // once only
    EXPECT_EQ(tracer.size(), 1u);
  }
  EXPECT_EQ(tracer.size(), 2u);
  std::string json = tracer.json();
  EXPECT_NE(json.find("\"name\":\"step 1\",\"cat\":\"step\""),
            std::string::npos);
  EXPECT_NE(json.find("\"args\":{\"step\":1}"), std::string::npos);
  {
    TraceScope off(nullptr, 1, "step 1", "step");
    EXPECT_FALSE(off);
  }
  EXPECT_EQ(tracer.size(), 2u);
}

TEST(Tracer, IsSafeFromManyThreads) {
  Tracer tracer;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i)
        tracer.complete(Tracer::rankTrack(t), "op", "op", tracer.nowUs(), 0);
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(tracer.size(), 8000u);
  std::string json = tracer.json();
  size_t slices = 0;
  for (size_t at = 0; (at = json.find("\"ph\":\"X\"", at)) != std::string::npos;
       ++at)
    ++slices;
  EXPECT_EQ(slices, 8000u);
}

class TraceWrite : public TempDir {};

TEST_F(TraceWrite, WritesTheFileAndRefusesADirectory) {
  Tracer tracer;
  tracer.complete(0, "load plan", "load", 0, 1);
  std::string path = dir + "/trace.json";
  ASSERT_TRUE(tracer.write(path).ok());
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(text.str(), tracer.json());
  Status s = tracer.write(dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("it is a directory"), std::string::npos)
      << s.message();
}

} // namespace
