//===- ScheduleTest.cpp - pipeline schedules, deadlock check, simulation --===//
//
// Expected step lists are written from the definitions of the schedules
// (GPipe; Megatron-LM's forward_backward_pipelining_without_interleaving and
// forward_backward_pipelining_with_interleaving), not from this code's output.
//
//===----------------------------------------------------------------------===//

#include "loom/Pipeline/Schedule.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <sstream>
#include <tuple>

using namespace loom::pipeline;

namespace {

// Parses "F0.1 B2.3 ..." into steps.
std::vector<Step> parseSteps(const std::string &text) {
  std::vector<Step> out;
  std::istringstream is(text);
  std::string tok;
  while (is >> tok) {
    Step st;
    st.kind = tok[0] == 'F' ? Step::Forward : Step::Backward;
    size_t dot = tok.find('.');
    st.microbatch = std::stoll(tok.substr(1, dot - 1));
    st.chunk = std::stoll(tok.substr(dot + 1));
    out.push_back(st);
  }
  return out;
}

Schedule build(ScheduleKind kind, int64_t p, int64_t v, int64_t m) {
  std::string error;
  std::optional<Schedule> s = buildSchedule(kind, p, v, m, error);
  EXPECT_TRUE(s.has_value()) << error;
  EXPECT_TRUE(error.empty()) << error;
  return s ? *s : Schedule{kind, p, v, m, {}};
}

void expectStages(const Schedule &s, const std::vector<std::string> &want) {
  ASSERT_EQ(s.perStage.size(), want.size());
  for (size_t st = 0; st < want.size(); ++st)
    EXPECT_EQ(s.perStage[st], parseSteps(want[st])) << "stage " << st << ":\n"
                                                    << scheduleText(s);
}

std::vector<StepCost> uniform(const Schedule &s, double f, double b) {
  return std::vector<StepCost>(size_t(s.stages * s.chunksPerStage),
                               StepCost{f, b});
}

size_t countOf(const std::string &hay, const std::string &needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos;
       pos = hay.find(needle, pos + 1))
    ++n;
  return n;
}

// A minimal JSON syntax checker (RFC 8259 values).
struct JsonChecker {
  const std::string &s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace((unsigned char)s[i]))
      ++i;
  }
  bool lit(const char *w) {
    size_t n = std::char_traits<char>::length(w);
    if (s.compare(i, n, w) != 0)
      return false;
    i += n;
    return true;
  }
  bool str() {
    if (i >= s.size() || s[i] != '"')
      return false;
    for (++i; i < s.size(); ++i) {
      unsigned char c = s[i];
      if (c == '"') {
        ++i;
        return true;
      }
      if (c < 0x20)
        return false;
      if (c == '\\') {
        ++i;
        if (i >= s.size() || !std::strchr("\"\\/bfnrtu", s[i]))
          return false;
        if (s[i] == 'u') {
          for (int k = 0; k < 4; ++k)
            if (++i >= s.size() || !std::isxdigit((unsigned char)s[i]))
              return false;
        }
      }
    }
    return false;
  }
  bool num() {
    size_t start = i;
    if (i < s.size() && s[i] == '-')
      ++i;
    if (i >= s.size() || !std::isdigit((unsigned char)s[i]))
      return false;
    if (s[i] == '0')
      ++i;
    else
      while (i < s.size() && std::isdigit((unsigned char)s[i]))
        ++i;
    if (i < s.size() && s[i] == '.') {
      ++i;
      if (i >= s.size() || !std::isdigit((unsigned char)s[i]))
        return false;
      while (i < s.size() && std::isdigit((unsigned char)s[i]))
        ++i;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
      ++i;
      if (i < s.size() && (s[i] == '+' || s[i] == '-'))
        ++i;
      if (i >= s.size() || !std::isdigit((unsigned char)s[i]))
        return false;
      while (i < s.size() && std::isdigit((unsigned char)s[i]))
        ++i;
    }
    return i > start;
  }
  bool value() {
    ws();
    if (i >= s.size())
      return false;
    bool ok;
    if (s[i] == '{') {
      ++i;
      ws();
      if (i < s.size() && s[i] == '}') {
        ++i;
        return true;
      }
      do {
        ws();
        if (!str())
          return false;
        ws();
        if (i >= s.size() || s[i++] != ':')
          return false;
        if (!value())
          return false;
        ws();
      } while (i < s.size() && s[i] == ',' && ++i);
      ok = i < s.size() && s[i++] == '}';
    } else if (s[i] == '[') {
      ++i;
      ws();
      if (i < s.size() && s[i] == ']') {
        ++i;
        return true;
      }
      do {
        if (!value())
          return false;
        ws();
      } while (i < s.size() && s[i] == ',' && ++i);
      ok = i < s.size() && s[i++] == ']';
    } else if (s[i] == '"') {
      ok = str();
    } else if (lit("true") || lit("false") || lit("null")) {
      ok = true;
    } else {
      ok = num();
    }
    ws();
    return ok;
  }
  bool valid() { return value() && i == s.size(); }
};

bool isValidJson(const std::string &s) { return JsonChecker{s}.valid(); }

//===----------------------------------------------------------------------===//
// Exact step lists
//===----------------------------------------------------------------------===//

TEST(ScheduleTest, GPipeP2M3) {
  // All forwards, then all backwards in ascending microbatch order.
  Schedule s = build(ScheduleKind::GPipe, 2, 1, 3);
  expectStages(s, {"F0.0 F1.0 F2.0 B0.0 B1.0 B2.0", //
                   "F0.1 F1.1 F2.1 B0.1 B1.1 B2.1"});
}

TEST(ScheduleTest, OneFOneBP2M4) {
  // Stage 0: warm-up min(2-0-1, 4) = 1 forward, 3 steady F/B pairs, 1 cool-down
  // B. Stage 1: no warm-up, 4 steady F/B pairs.
  Schedule s = build(ScheduleKind::OneFOneB, 2, 1, 4);
  expectStages(s, {"F0.0 F1.0 B0.0 F2.0 B1.0 F3.0 B2.0 B3.0", //
                   "F0.1 B0.1 F1.1 B1.1 F2.1 B2.1 F3.1 B3.1"});
}

TEST(ScheduleTest, OneFOneBP4M4) {
  // Warm-up 3, 2, 1, 0 forwards; then (m - warm-up) F/B pairs; then the rest of
  // B.
  Schedule s = build(ScheduleKind::OneFOneB, 4, 1, 4);
  expectStages(s, {"F0.0 F1.0 F2.0 F3.0 B0.0 B1.0 B2.0 B3.0",
                   "F0.1 F1.1 F2.1 B0.1 F3.1 B1.1 B2.1 B3.1",
                   "F0.2 F1.2 B0.2 F2.2 B1.2 F3.2 B2.2 B3.2",
                   "F0.3 B0.3 F1.3 B1.3 F2.3 B2.3 F3.3 B3.3"});
}

TEST(ScheduleTest, InterleavedP2V2M4) {
  // p*v = 4 virtual ids per group. Forward id k -> chunk-in-stage (k%4)/2,
  // microbatch (k/4)*2 + k%2: k = 0..7 -> (0,0) (1,0) (0,1) (1,1) (2,0) (3,0)
  // (2,1) (3,1); backward reverses the chunk-in-stage. Global chunk =
  // chunk-in-stage * 2 + stage.
  // Stage 0: warm-up (2-0-1)*2 + (2-1)*2 = 4; 4 steady F/B pairs; 4 cool-down.
  // Stage 1: warm-up 0 + 2 = 2; 6 steady pairs; 2 cool-down.
  Schedule s = build(ScheduleKind::Interleaved, 2, 2, 4);
  expectStages(s,
               {"F0.0 F1.0 F0.2 F1.2 F2.0 B0.2 F3.0 B1.2 F2.2 B0.0 F3.2 B1.0 "
                "B2.2 B3.2 B2.0 B3.0",
                "F0.1 F1.1 F0.3 B0.3 F1.3 B1.3 F2.1 B0.1 F3.1 B1.1 F2.3 B2.3 "
                "F3.3 B3.3 B2.1 B3.1"});
}

TEST(ScheduleTest, InterleavedWarmupCappedAtTotal) {
  // p = 4, v = 2, m = 4: stage 0 warm-up 6 + 4 = 10 > m*v = 8, so all forwards
  // first (k = 0..7: mb 0..3 of chunk 0, then mb 0..3 of chunk 4), then all
  // backwards (chunk 4 first).
  Schedule s = build(ScheduleKind::Interleaved, 4, 2, 4);
  EXPECT_EQ(s.perStage[0],
            parseSteps("F0.0 F1.0 F2.0 F3.0 F0.4 F1.4 F2.4 F3.4 "
                       "B0.4 B1.4 B2.4 B3.4 B0.0 B1.0 B2.0 B3.0"));
  // Stage 3: warm-up 0 + 4 = 4.
  EXPECT_EQ(s.perStage[3],
            parseSteps("F0.3 F1.3 F2.3 F3.3 F0.7 B0.7 F1.7 B1.7 "
                       "F2.7 B2.7 F3.7 B3.7 B0.3 B1.3 B2.3 B3.3"));
}

TEST(ScheduleTest, Text) {
  Schedule s = build(ScheduleKind::OneFOneB, 2, 1, 2);
  EXPECT_EQ(scheduleText(s), "stage 0: F0.0 F1.0 B0.0 B1.0\n"
                             "stage 1: F0.1 B0.1 F1.1 B1.1\n");
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(ScheduleTest, InterleavedNeedsMultipleOfStages) {
  std::string error;
  EXPECT_FALSE(buildSchedule(ScheduleKind::Interleaved, 4, 2, 6, error));
  EXPECT_EQ(
      error,
      "the interleaved schedule needs the number of microbatches (m) to be a "
      "multiple of the pipeline stages (p): m = 6, p = 4");
}

TEST(ScheduleTest, ParameterErrors) {
  std::string error;
  EXPECT_FALSE(buildSchedule(ScheduleKind::GPipe, 2, 2, 4, error));
  EXPECT_NE(error.find("v == 1"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(buildSchedule(ScheduleKind::OneFOneB, 2, 2, 4, error));
  EXPECT_NE(error.find("v == 1"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(buildSchedule(ScheduleKind::Interleaved, 2, 1, 4, error));
  EXPECT_NE(error.find("v >= 2"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(buildSchedule(ScheduleKind::OneFOneB, 0, 1, 4, error));
  EXPECT_NE(error.find("p >= 1"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(buildSchedule(ScheduleKind::GPipe, 2, 1, 0, error));
  EXPECT_NE(error.find("m >= 1"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(buildSchedule(ScheduleKind::GPipe, int64_t(1) << 40, 1,
                             int64_t(1) << 40, error));
  EXPECT_NE(error.find("too large"), std::string::npos) << error;
}

//===----------------------------------------------------------------------===//
// Every generated schedule is valid and deadlock-free; the known bubbles
//===----------------------------------------------------------------------===//

TEST(ScheduleTest, ManySchedulesValidDeadlockFreeWithKnownBubble) {
  int checked = 0;
  for (ScheduleKind kind : {ScheduleKind::GPipe, ScheduleKind::OneFOneB,
                            ScheduleKind::Interleaved}) {
    for (int64_t p = 1; p <= 8; ++p) {
      for (int64_t v = 1; v <= 4; ++v) {
        if ((kind == ScheduleKind::Interleaved) != (v >= 2))
          continue;
        for (int64_t m = 1; m <= 24; ++m) {
          if (kind == ScheduleKind::Interleaved && m % p != 0)
            continue;
          SCOPED_TRACE(std::string(scheduleKindName(kind)) +
                       " p=" + std::to_string(p) + " v=" + std::to_string(v) +
                       " m=" + std::to_string(m));
          Schedule s = build(kind, p, v, m);
          ASSERT_EQ(validateSchedule(s), "");
          for (double f : {1.0, 0.25}) {
            Simulation sim = simulate(s, uniform(s, f, 2 * f));
            ASSERT_TRUE(sim.deadlockFree) << sim.deadlock;
            EXPECT_TRUE(sim.deadlock.empty());
            double want = kind == ScheduleKind::Interleaved
                              ? double(p - 1) / double(m * v)
                              : double(p - 1) / double(m);
            EXPECT_NEAR(sim.bubbleFraction, want, 1e-12);
            EXPECT_NEAR(sim.makespan, double(m * v + p - 1) * 3 * f, 1e-9);
          }
          Simulation sim = simulate(s, uniform(s, 1, 2));
          ASSERT_EQ(sim.maxInFlight.size(), size_t(p));
          ASSERT_EQ(sim.times.size(), size_t(p));
          for (int64_t st = 0; st < p; ++st) {
            ASSERT_EQ(sim.times[st].size(), size_t(2 * m * v));
            if (kind == ScheduleKind::GPipe)
              EXPECT_EQ(sim.maxInFlight[st], m) << "stage " << st;
            else if (kind == ScheduleKind::OneFOneB)
              EXPECT_EQ(sim.maxInFlight[st], std::min(p - st, m))
                  << "stage " << st;
            else // Megatron's warm-up plus the first steady forward, capped.
              EXPECT_EQ(sim.maxInFlight[st],
                        std::min((p - st - 1) * 2 + (v - 1) * p + 1, m * v))
                  << "stage " << st;
            // Steps on a stage run in order, without overlap.
            for (size_t i = 1; i < sim.times[st].size(); ++i)
              EXPECT_LE(sim.times[st][i - 1].second, sim.times[st][i].first);
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 400);
}

TEST(ScheduleTest, SimulatedTimesOneFOneB) {
  // p = 2, m = 2, F = 1, B = 2. Stage 0: F0 [0,1] F1 [1,2] B0 waits for B0 on
  // stage 1. Stage 1: F0 [1,2] B0 [2,4] F1 [4,5] B1 [5,7].
  // Stage 0: B0 [4,6] B1 [7,9].
  Schedule s = build(ScheduleKind::OneFOneB, 2, 1, 2);
  Simulation sim = simulate(s, uniform(s, 1, 2));
  using T = std::vector<std::pair<double, double>>;
  EXPECT_EQ(sim.times[0], (T{{0, 1}, {1, 2}, {4, 6}, {7, 9}}));
  EXPECT_EQ(sim.times[1], (T{{1, 2}, {2, 4}, {4, 5}, {5, 7}}));
  EXPECT_DOUBLE_EQ(sim.makespan, 9);
  EXPECT_DOUBLE_EQ(sim.bubbleFraction, 0.5); // (9 - 6) / 6 = (p-1)/m
}

TEST(ScheduleTest, BubbleUsesSlowestStage) {
  // GPipe p = 2, m = 1; chunk 1 costs twice chunk 0: 1 + 2 + 4 + 2 = 9;
  // ideal = 1 * (2 + 4) = 6.
  Schedule s = build(ScheduleKind::GPipe, 2, 1, 1);
  Simulation sim = simulate(s, {{1, 2}, {2, 4}});
  EXPECT_DOUBLE_EQ(sim.makespan, 9);
  EXPECT_DOUBLE_EQ(sim.bubbleFraction, 0.5);
}

//===----------------------------------------------------------------------===//
// Hand-written schedules: deadlock and malformed
//===----------------------------------------------------------------------===//

TEST(ScheduleTest, BackwardBeforeForwardDeadlocks) {
  Schedule s{ScheduleKind::GPipe, 1, 1, 1, {parseSteps("B0.0 F0.0")}};
  EXPECT_EQ(validateSchedule(s), "schedule deadlocks: stage 0 waits at step 0 "
                                 "(B mb 0 chunk 0) for F mb 0 chunk 0");
  Simulation sim = simulate(s, {{1, 2}});
  EXPECT_FALSE(sim.deadlockFree);
  EXPECT_TRUE(std::isnan(sim.times[0][0].first));
  EXPECT_TRUE(std::isinf(sim.makespan));
}

TEST(ScheduleTest, TwoStagesWaitingOnEachOtherDeadlock) {
  // Stage 0 needs B0 of chunk 1 before it sends F1; stage 1 waits for F1
  // before it runs B0.
  Schedule s{
      ScheduleKind::OneFOneB,
      2,
      1,
      2,
      {parseSteps("F0.0 B0.0 F1.0 B1.0"), parseSteps("F1.1 F0.1 B0.1 B1.1")}};
  std::string error = validateSchedule(s);
  EXPECT_EQ(
      error,
      "schedule deadlocks: stage 0 waits at step 1 (B mb 0 chunk 0) for B mb 0 "
      "chunk 1; stage 1 waits at step 0 (F mb 1 chunk 1) for F mb 1 chunk 0");
  Simulation sim = simulate(s, {{1, 2}, {1, 2}});
  EXPECT_FALSE(sim.deadlockFree);
  EXPECT_EQ(sim.times[0][0], std::make_pair(0.0, 1.0)); // F0.0 ran
  std::string json = explainJson(s, sim);
  EXPECT_TRUE(isValidJson(json)) << json;
  EXPECT_NE(json.find("\"deadlock_free\": false"), std::string::npos);
  EXPECT_NE(json.find("\"makespan\": null"), std::string::npos);
  std::string svg = scheduleSvg(s, sim);
  EXPECT_EQ(countOf(svg, "<rect class=\"step\""), 1u); // only F0.0 ran
  EXPECT_NE(svg.find("DEADLOCK"), std::string::npos);
}

TEST(ScheduleTest, MalformedSchedulesRejected) {
  // Missing B1.0.
  Schedule missing{
      ScheduleKind::GPipe, 1, 1, 2, {parseSteps("F0.0 F1.0 B0.0")}};
  EXPECT_EQ(validateSchedule(missing), "stage 0 is missing B mb 1 chunk 0");
  // Duplicate.
  Schedule dup{ScheduleKind::GPipe, 1, 1, 1, {parseSteps("F0.0 F0.0 B0.0")}};
  EXPECT_EQ(validateSchedule(dup),
            "stage 0 step 1 (F mb 0 chunk 0) appears twice");
  // Wrong stage.
  Schedule wrong{
      ScheduleKind::GPipe, 2, 1, 1, {parseSteps("F0.0 F0.1 B0.1 B0.0"), {}}};
  EXPECT_EQ(validateSchedule(wrong),
            "stage 0 step 1 (F mb 0 chunk 1) belongs on stage 1");
  // Out of range.
  Schedule range{ScheduleKind::GPipe, 1, 1, 1, {parseSteps("F0.0 B0.0 F3.0")}};
  EXPECT_NE(validateSchedule(range).find("out of range"), std::string::npos);
  // Stage count mismatch.
  Schedule stages{ScheduleKind::GPipe, 2, 1, 1, {parseSteps("F0.0 B0.0")}};
  EXPECT_EQ(validateSchedule(stages), "schedule has 1 step lists for 2 stages");
  // simulate() alone waits forever on a dependency that is not there.
  Simulation sim =
      simulate(Schedule{ScheduleKind::GPipe,
                        2,
                        1,
                        1,
                        {parseSteps("F0.0 B0.0"), parseSteps("B0.1")}},
               {{1, 2}, {1, 2}});
  EXPECT_FALSE(sim.deadlockFree);
  EXPECT_NE(sim.deadlock.find(
                "stage 1 waits at step 0 (B mb 0 chunk 1) for F mb 0 chunk 1 "
                "(not in the schedule)"),
            std::string::npos)
      << sim.deadlock;
}

//===----------------------------------------------------------------------===//
// JSON and SVG
//===----------------------------------------------------------------------===//

TEST(ScheduleTest, ExplainJson) {
  Schedule s = build(ScheduleKind::Interleaved, 2, 2, 4);
  Simulation sim = simulate(s, uniform(s, 1, 2));
  std::string json = explainJson(s, sim);
  EXPECT_TRUE(isValidJson(json)) << json;
  // idle_fraction: each stage is busy 2 chunks x 4 microbatches x (1 + 2) =
  // 24 of the makespan's 27, idle 3/27 = 1/9.
  for (const char *key : {"\"schedule\": \"interleaved\"", "\"stages\": 2",
                          "\"chunks_per_stage\": 2", "\"microbatches\": 4",
                          "\"bubble_fraction\": 0.125", "\"makespan\": 27",
                          "\"deadlock_free\": true", "\"per_stage\": [",
                          "{\"stage\": 0, \"max_in_flight\": 5, \"steps\": 16, "
                          "\"idle_fraction\": 0.11111111111111",
                          "{\"stage\": 1, \"max_in_flight\": 3, \"steps\": 16, "
                          "\"idle_fraction\": 0.11111111111111"})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  Schedule g = build(ScheduleKind::GPipe, 3, 1, 3);
  std::string gj = explainJson(g, simulate(g, uniform(g, 1, 2)));
  EXPECT_TRUE(isValidJson(gj)) << gj;
  EXPECT_NE(gj.find("\"schedule\": \"gpipe\""), std::string::npos);
  Schedule o = build(ScheduleKind::OneFOneB, 3, 1, 7);
  std::string oj = explainJson(o, simulate(o, uniform(o, 1, 2)));
  EXPECT_TRUE(isValidJson(oj)) << oj;
  EXPECT_NE(oj.find("\"schedule\": \"1f1b\""), std::string::npos);
  EXPECT_NE(oj.find("\"bubble_fraction\": 0.28571428571428"), std::string::npos)
      << oj;
}

// loomc --explain's table. GPipe, p = 2, m = 3, every forward 1 and every
// backward 2, worked out by hand:
//   stage 0: F0 [0,1] F1 [1,2] F2 [2,3]; stage 1: F0 [1,2] F1 [2,3] F2 [3,4]
//   stage 1: B0 [4,6] B1 [6,8] B2 [8,10]
//   stage 0: B0 [6,8] B1 [8,10] B2 [10,12] (each after stage 1's)
// makespan 12; each stage busy 3 x (1 + 2) = 9, idle 3/12 = 25.0%; it holds
// all 3 microbatches before its first backward; ideal = m x (1 + 2) = 9, so
// the bubble is (12 - 9) / 9 = 1/3, which is (p - 1) / m.
TEST(ScheduleTest, ExplainSummary) {
  Schedule s = build(ScheduleKind::GPipe, 2, 1, 3);
  EXPECT_EQ(explainSummary(s, simulate(s, uniform(s, 1, 2))),
            "gpipe schedule: 2 stages, 1 chunk per stage, 3 microbatches\n"
            "stage  steps  in flight   idle\n"
            "    0      6          3   25.0%\n"
            "    1      6          3   25.0%\n"
            "bubble fraction 0.3333 ((makespan - ideal) / ideal; ideal: m "
            "times the busiest stage's work per microbatch)\n");
  // 1F1B, p = 2, m = 1, the same costs: F0 [0,1], F1 [1,2], B1 [2,4],
  // B0 [4,6]; each stage busy 3 of 6 (50.0%), one microbatch in flight;
  // ideal 3, bubble (6 - 3) / 3 = 1.
  Schedule o = build(ScheduleKind::OneFOneB, 2, 1, 1);
  EXPECT_EQ(explainSummary(o, simulate(o, uniform(o, 1, 2))),
            "1f1b schedule: 2 stages, 1 chunk per stage, 1 microbatch\n"
            "stage  steps  in flight   idle\n"
            "    0      2          1   50.0%\n"
            "    1      2          1   50.0%\n"
            "bubble fraction 1 ((makespan - ideal) / ideal; ideal: m times "
            "the busiest stage's work per microbatch)\n");
  // A deadlock names the stuck stages instead of a table.
  Schedule dead{
      ScheduleKind::OneFOneB,
      2,
      1,
      2,
      {parseSteps("F0.0 B0.0 F1.0 B1.0"), parseSteps("F1.1 F0.1 B0.1 B1.1")}};
  std::string text = explainSummary(dead, simulate(dead, uniform(dead, 1, 2)));
  EXPECT_NE(text.find("deadlock: stage 0 waits at step 1"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("idle"), std::string::npos) << text;
}

TEST(ScheduleTest, SvgWellFormed) {
  for (auto [kind, p, v, m] :
       {std::tuple<ScheduleKind, int, int, int>{ScheduleKind::GPipe, 4, 1, 8},
        {ScheduleKind::OneFOneB, 8, 1, 32},
        {ScheduleKind::Interleaved, 4, 2, 8},
        {ScheduleKind::Interleaved, 8, 4, 32}}) {
    Schedule s = build(kind, p, v, m);
    Simulation sim = simulate(s, uniform(s, 1, 2));
    std::string svg = scheduleSvg(s, sim);
    SCOPED_TRACE(scheduleKindName(kind));
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    ASSERT_GE(svg.size(), 7u);
    EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
    EXPECT_EQ(countOf(svg, "<rect class=\"step\""), size_t(2 * p * v * m));
    EXPECT_EQ(countOf(svg, "<rect"),
              countOf(svg, "<rect class=\"step\"") + size_t(p) /*lanes*/ +
                  1 /*background*/ + size_t(2 * v) /*legend*/);
    EXPECT_NE(svg.find("viewBox=\"0 0 "), std::string::npos);
    EXPECT_NE(svg.find("fill=\"white\"/>"), std::string::npos);
    EXPECT_NE(svg.find("version=\"1.1\""), std::string::npos);
    EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""),
              std::string::npos);
    EXPECT_EQ(countOf(svg, "<text"),
              countOf(svg, "font-family=\"sans-serif\""));
    EXPECT_NE(svg.find(">Device " + std::to_string(p) + "</text>"),
              std::string::npos);
    EXPECT_NE(svg.find(">Device 1</text>"), std::string::npos);
    EXPECT_NE(svg.find("m = " + std::to_string(m)), std::string::npos);
    EXPECT_NE(svg.find("bubble fraction = "), std::string::npos);
    EXPECT_NE(svg.find("Backward pass"), std::string::npos);
    EXPECT_EQ(countOf(svg, "<"), countOf(svg, ">")); // no stray brackets
    // Microbatch labels are 1-based.
    EXPECT_NE(svg.find(">" + std::to_string(m) + "</text>"), std::string::npos);
  }
}

} // namespace
