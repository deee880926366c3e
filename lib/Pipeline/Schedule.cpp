//===- Schedule.cpp - pipeline-parallel schedules as data -----------------===//
//
// See include/loom/Pipeline/Schedule.h. Plain C++17, std only.
//
//===----------------------------------------------------------------------===//

#include "loom/Pipeline/Schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace loom {
namespace pipeline {

const char *scheduleKindName(ScheduleKind kind) {
  switch (kind) {
  case ScheduleKind::GPipe:
    return "gpipe";
  case ScheduleKind::OneFOneB:
    return "1f1b";
  case ScheduleKind::Interleaved:
    return "interleaved";
  }
  return "unknown";
}

namespace {

// Upper bound on p * v * m: the schedule holds 2 * p * v * m steps.
constexpr int64_t kMaxStepsPerDirection = int64_t(1) << 26;

Step fwd(int64_t mb, int64_t chunk) { return Step{Step::Forward, mb, chunk}; }
Step bwd(int64_t mb, int64_t chunk) { return Step{Step::Backward, mb, chunk}; }

std::string stepName(const Step &st) {
  std::ostringstream os;
  os << (st.kind == Step::Forward ? "F" : "B") << " mb " << st.microbatch
     << " chunk " << st.chunk;
  return os.str();
}

} // namespace

std::optional<Schedule> buildSchedule(ScheduleKind kind, int64_t p, int64_t v,
                                      int64_t m, std::string &error) {
  const char *name = scheduleKindName(kind);
  std::ostringstream err;
  if (p < 1) {
    err << "the " << name
        << " schedule needs at least one pipeline stage (p >= 1), got p = "
        << p;
  } else if (m < 1) {
    err << "the " << name
        << " schedule needs at least one microbatch (m >= 1), got m = " << m;
  } else if (kind != ScheduleKind::Interleaved && v != 1) {
    err << "the " << name
        << " schedule needs one model chunk per stage (v == 1), got v = " << v;
  } else if (kind == ScheduleKind::Interleaved && v < 2) {
    err << "the interleaved schedule needs at least two model chunks per stage "
           "(v >= 2), got v = "
        << v;
  } else if (kind == ScheduleKind::Interleaved && m % p != 0) {
    err << "the interleaved schedule needs the number of microbatches (m) to "
           "be a multiple of the pipeline stages (p): m = "
        << m << ", p = " << p;
  } else if (p > kMaxStepsPerDirection || v > kMaxStepsPerDirection / p ||
             m > kMaxStepsPerDirection / (p * v)) {
    err << "the " << name
        << " schedule is too large: p * v * m must be at most "
        << kMaxStepsPerDirection << " (p = " << p << ", v = " << v
        << ", m = " << m << ")";
  }
  if (!err.str().empty()) {
    error = err.str();
    return std::nullopt;
  }

  Schedule sched{kind, p, v, m, std::vector<std::vector<Step>>(size_t(p))};
  for (int64_t s = 0; s < p; ++s) {
    std::vector<Step> &steps = sched.perStage[size_t(s)];
    steps.reserve(size_t(2 * m * v));
    switch (kind) {
    case ScheduleKind::GPipe:
      // All forwards, then all backwards in the same (ascending) order.
      for (int64_t mb = 0; mb < m; ++mb)
        steps.push_back(fwd(mb, s));
      for (int64_t mb = 0; mb < m; ++mb)
        steps.push_back(bwd(mb, s));
      break;
    case ScheduleKind::OneFOneB: {
      // Megatron forward_backward_pipelining_without_interleaving.
      int64_t warmup = std::min(p - s - 1, m);
      int64_t remaining = m - warmup;
      for (int64_t i = 0; i < warmup; ++i)
        steps.push_back(fwd(i, s));
      for (int64_t i = 0; i < remaining; ++i) {
        steps.push_back(fwd(warmup + i, s));
        steps.push_back(bwd(i, s));
      }
      for (int64_t i = remaining; i < m; ++i)
        steps.push_back(bwd(i, s));
      break;
    }
    case ScheduleKind::Interleaved: {
      // Megatron forward_backward_pipelining_with_interleaving (microbatch
      // group size per virtual stage = p).
      const int64_t group = p * v, total = m * v;
      int64_t warmup = std::min((p - s - 1) * 2 + (v - 1) * p, total);
      int64_t remaining = total - warmup;
      auto microbatchOf = [&](int64_t k) { return (k / group) * p + k % p; };
      auto forwardStep = [&](int64_t k) {
        int64_t chunkInStage = (k % group) / p;
        return fwd(microbatchOf(k), chunkInStage * p + s);
      };
      auto backwardStep = [&](int64_t k) {
        int64_t chunkInStage = v - 1 - (k % group) / p;
        return bwd(microbatchOf(k), chunkInStage * p + s);
      };
      for (int64_t k = 0; k < warmup; ++k)
        steps.push_back(forwardStep(k));
      for (int64_t i = 0; i < remaining; ++i) {
        steps.push_back(forwardStep(warmup + i));
        steps.push_back(backwardStep(i));
      }
      for (int64_t k = remaining; k < total; ++k)
        steps.push_back(backwardStep(k));
      break;
    }
    }
  }
  return sched;
}

//===----------------------------------------------------------------------===//
// Simulation
//===----------------------------------------------------------------------===//

Simulation simulate(const Schedule &s, const std::vector<StepCost> &costs) {
  Simulation sim;
  const int64_t p = s.perStage.size();
  const int64_t v = std::max<int64_t>(s.chunksPerStage, 0);
  const int64_t m = std::max<int64_t>(s.microbatches, 0);
  const int64_t P = s.stages * v; // number of global chunks
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();

  auto costOf = [&](int64_t chunk) {
    if (chunk >= 0 && chunk < int64_t(costs.size()))
      return costs[size_t(chunk)];
    return StepCost{1.0, 2.0};
  };
  auto inRange = [&](int64_t kind, int64_t mb, int64_t chunk) {
    return kind >= 0 && kind <= 1 && mb >= 0 && mb < m && chunk >= 0 &&
           chunk < P;
  };
  auto index = [&](int64_t kind, int64_t mb, int64_t chunk) {
    return size_t((kind * m + mb) * P + chunk);
  };
  const size_t slots = size_t(2 * m * std::max<int64_t>(P, 0));
  std::vector<double> finish(slots, nan); // finish time once run
  std::vector<char> present(slots, 0);    // appears in the schedule
  for (const auto &steps : s.perStage)
    for (const Step &st : steps)
      if (inRange(st.kind, st.microbatch, st.chunk))
        present[index(st.kind, st.microbatch, st.chunk)] = 1;

  // Dependencies of a step, as (kind, mb, chunk).
  auto deps = [&](const Step &st, Step out[2]) {
    int n = 0;
    if (st.kind == Step::Forward) {
      if (st.chunk > 0)
        out[n++] = fwd(st.microbatch, st.chunk - 1);
    } else {
      out[n++] = fwd(st.microbatch, st.chunk);
      if (st.chunk < P - 1)
        out[n++] = bwd(st.microbatch, st.chunk + 1);
    }
    return n;
  };
  auto doneAt = [&](const Step &d) {
    if (!inRange(d.kind, d.microbatch, d.chunk))
      return nan;
    return finish[index(d.kind, d.microbatch, d.chunk)];
  };

  sim.times.resize(size_t(p));
  std::vector<size_t> next(size_t(p), 0);
  std::vector<double> freeAt(size_t(p), 0.0);
  size_t remainingSteps = 0;
  for (int64_t st = 0; st < p; ++st) {
    sim.times[size_t(st)].assign(s.perStage[size_t(st)].size(), {nan, nan});
    remainingSteps += s.perStage[size_t(st)].size();
  }

  bool progress = true;
  while (progress && remainingSteps > 0) {
    progress = false;
    for (int64_t st = 0; st < p; ++st) {
      const auto &steps = s.perStage[size_t(st)];
      while (next[size_t(st)] < steps.size()) {
        const Step &step = steps[next[size_t(st)]];
        Step ds[2];
        int n = deps(step, ds);
        double start = freeAt[size_t(st)];
        bool ready = true;
        for (int i = 0; i < n && ready; ++i) {
          double t = doneAt(ds[i]);
          if (std::isnan(t))
            ready = false;
          else
            start = std::max(start, t);
        }
        if (!ready)
          break;
        StepCost c = costOf(step.chunk);
        double end =
            start + (step.kind == Step::Forward ? c.forward : c.backward);
        if (inRange(step.kind, step.microbatch, step.chunk))
          finish[index(step.kind, step.microbatch, step.chunk)] = end;
        sim.times[size_t(st)][next[size_t(st)]] = {start, end};
        freeAt[size_t(st)] = end;
        ++next[size_t(st)];
        --remainingSteps;
        progress = true;
      }
    }
  }

  sim.deadlockFree = remainingSteps == 0;
  if (!sim.deadlockFree) {
    std::ostringstream os;
    bool first = true;
    for (int64_t st = 0; st < p; ++st) {
      const auto &steps = s.perStage[size_t(st)];
      size_t i = next[size_t(st)];
      if (i >= steps.size())
        continue;
      const Step &step = steps[i];
      Step ds[2];
      int n = deps(step, ds);
      os << (first ? "" : "; ") << "stage " << st << " waits at step " << i
         << " (" << stepName(step) << ") for ";
      first = false;
      bool firstDep = true;
      for (int k = 0; k < n; ++k) {
        if (!std::isnan(doneAt(ds[k])))
          continue;
        os << (firstDep ? "" : " and ") << stepName(ds[k]);
        if (!inRange(ds[k].kind, ds[k].microbatch, ds[k].chunk) ||
            !present[index(ds[k].kind, ds[k].microbatch, ds[k].chunk)])
          os << " (not in the schedule)";
        firstDep = false;
      }
    }
    sim.deadlock = os.str();
    sim.makespan = inf;
    sim.bubbleFraction = inf;
  } else {
    double makespan = 0;
    for (const auto &ts : sim.times)
      for (const auto &t : ts)
        makespan = std::max(makespan, t.second);
    sim.makespan = makespan;
    // Ideal: m times the slowest stage's per-microbatch compute.
    double perMicrobatch = 0;
    for (int64_t st = 0; st < s.stages; ++st) {
      double sum = 0;
      for (int64_t c = st; c < P; c += s.stages) {
        StepCost cc = costOf(c);
        sum += cc.forward + cc.backward;
      }
      perMicrobatch = std::max(perMicrobatch, sum);
    }
    double ideal = double(m) * perMicrobatch;
    sim.bubbleFraction = ideal > 0 ? (makespan - ideal) / ideal : 0.0;
  }

  // Activations held: (mb, chunk) pairs forwarded but not yet backwarded, in
  // each stage's step order.
  sim.maxInFlight.assign(size_t(p), 0);
  std::vector<char> live(size_t(m * std::max<int64_t>(P, 0)), 0);
  for (int64_t st = 0; st < p; ++st) {
    int64_t cur = 0, best = 0;
    for (const Step &step : s.perStage[size_t(st)]) {
      if (!inRange(step.kind, step.microbatch, step.chunk))
        continue;
      char &l = live[size_t(step.microbatch * P + step.chunk)];
      if (step.kind == Step::Forward && !l) {
        l = 1;
        best = std::max(best, ++cur);
      } else if (step.kind == Step::Backward && l) {
        l = 0;
        --cur;
      }
    }
    sim.maxInFlight[size_t(st)] = best;
  }
  return sim;
}

std::string validateSchedule(const Schedule &s) {
  std::ostringstream err;
  if (s.stages < 1 || s.chunksPerStage < 1 || s.microbatches < 1) {
    err << "schedule needs p, v, m >= 1, got p = " << s.stages
        << ", v = " << s.chunksPerStage << ", m = " << s.microbatches;
    return err.str();
  }
  if (s.stages > kMaxStepsPerDirection ||
      s.chunksPerStage > kMaxStepsPerDirection / s.stages ||
      s.microbatches > kMaxStepsPerDirection / (s.stages * s.chunksPerStage))
    return "schedule is too large";
  if (int64_t(s.perStage.size()) != s.stages) {
    err << "schedule has " << s.perStage.size() << " step lists for "
        << s.stages << " stages";
    return err.str();
  }
  const int64_t p = s.stages, m = s.microbatches, P = p * s.chunksPerStage;
  std::vector<char> seen(size_t(2 * m * P), 0);
  for (int64_t st = 0; st < p; ++st) {
    const auto &steps = s.perStage[size_t(st)];
    for (size_t i = 0; i < steps.size(); ++i) {
      const Step &step = steps[i];
      if (step.kind != Step::Forward && step.kind != Step::Backward) {
        err << "stage " << st << " step " << i << " has an invalid kind";
        return err.str();
      }
      if (step.microbatch < 0 || step.microbatch >= m || step.chunk < 0 ||
          step.chunk >= P) {
        err << "stage " << st << " step " << i << " (" << stepName(step)
            << ") is out of range (m = " << m << ", chunks = " << P << ")";
        return err.str();
      }
      if (step.chunk % p != st) {
        err << "stage " << st << " step " << i << " (" << stepName(step)
            << ") belongs on stage " << step.chunk % p;
        return err.str();
      }
      char &sn = seen[size_t((int64_t(step.kind) * m + step.microbatch) * P +
                             step.chunk)];
      if (sn) {
        err << "stage " << st << " step " << i << " (" << stepName(step)
            << ") appears twice";
        return err.str();
      }
      sn = 1;
    }
  }
  for (int64_t k = 0; k < 2; ++k)
    for (int64_t mb = 0; mb < m; ++mb)
      for (int64_t c = 0; c < P; ++c)
        if (!seen[size_t((k * m + mb) * P + c)]) {
          err << "stage " << c % p << " is missing "
              << stepName(Step{Step::Kind(k), mb, c});
          return err.str();
        }
  Simulation sim =
      simulate(s, std::vector<StepCost>(size_t(P), StepCost{1.0, 2.0}));
  if (!sim.deadlockFree)
    return "schedule deadlocks: " + sim.deadlock;
  return "";
}

//===----------------------------------------------------------------------===//
// Text and JSON
//===----------------------------------------------------------------------===//

std::string scheduleText(const Schedule &s) {
  std::ostringstream os;
  for (size_t st = 0; st < s.perStage.size(); ++st) {
    os << "stage " << st << ":";
    for (const Step &step : s.perStage[st])
      os << ' ' << (step.kind == Step::Forward ? 'F' : 'B') << step.microbatch
         << '.' << step.chunk;
    os << '\n';
  }
  return os.str();
}

namespace {

std::string jsonNumber(double x) {
  if (!std::isfinite(x))
    return "null";
  char buf[64];
  for (int prec = 15; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (std::strtod(buf, nullptr) == x)
      break;
  }
  return buf;
}

std::string jsonString(const std::string &in) {
  std::string out = "\"";
  for (unsigned char c : in) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += char(c);
      }
    }
  }
  return out + "\"";
}

} // namespace

namespace {

/// The share of the makespan stage `st` is idle; NaN on deadlock.
double idleFraction(const Simulation &sim, size_t st) {
  if (!sim.deadlockFree || st >= sim.times.size() || !(sim.makespan > 0))
    return std::numeric_limits<double>::quiet_NaN();
  double busy = 0;
  for (const auto &t : sim.times[st])
    busy += t.second - t.first;
  return (sim.makespan - busy) / sim.makespan;
}

} // namespace

std::string explainSummary(const Schedule &s, const Simulation &sim) {
  std::ostringstream os;
  auto count = [](int64_t n, const char *one, const char *many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  os << scheduleKindName(s.kind)
     << " schedule: " << count(s.stages, "stage", "stages") << ", "
     << count(s.chunksPerStage, "chunk", "chunks") << " per stage, "
     << count(s.microbatches, "microbatch", "microbatches") << "\n";
  if (!sim.deadlockFree) {
    os << "deadlock: " << sim.deadlock << "\n";
    return os.str();
  }
  os << "stage  steps  in flight   idle\n";
  char row[96];
  for (size_t st = 0; st < s.perStage.size(); ++st) {
    int64_t inFlight = st < sim.maxInFlight.size() ? sim.maxInFlight[st] : 0;
    std::snprintf(row, sizeof row, "%5zu  %5zu  %9lld  %5.1f%%\n", st,
                  s.perStage[st].size(), (long long)inFlight,
                  100 * idleFraction(sim, st));
    os << row;
  }
  std::snprintf(row, sizeof row, "%.4g", sim.bubbleFraction);
  os << "bubble fraction " << row
     << " ((makespan - ideal) / ideal; ideal: m times the busiest stage's "
        "work per microbatch)\n";
  return os.str();
}

std::string explainJson(const Schedule &s, const Simulation &sim) {
  std::ostringstream os;
  os << "{\"schedule\": " << jsonString(scheduleKindName(s.kind))
     << ", \"stages\": " << s.stages
     << ", \"chunks_per_stage\": " << s.chunksPerStage
     << ", \"microbatches\": " << s.microbatches
     << ", \"bubble_fraction\": " << jsonNumber(sim.bubbleFraction)
     << ", \"makespan\": " << jsonNumber(sim.makespan)
     << ", \"deadlock_free\": " << (sim.deadlockFree ? "true" : "false")
     << ", \"deadlock\": " << jsonString(sim.deadlock) << ", \"per_stage\": [";
  for (size_t st = 0; st < s.perStage.size(); ++st) {
    int64_t inFlight = st < sim.maxInFlight.size() ? sim.maxInFlight[st] : 0;
    os << (st ? ", " : "") << "{\"stage\": " << st
       << ", \"max_in_flight\": " << inFlight
       << ", \"steps\": " << s.perStage[st].size()
       << ", \"idle_fraction\": " << jsonNumber(idleFraction(sim, st)) << "}";
  }
  os << "]}";
  return os.str();
}

//===----------------------------------------------------------------------===//
// SVG
//===----------------------------------------------------------------------===//

namespace {

std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", x);
  return buf;
}

std::string xmlEscape(const std::string &in) {
  std::string out;
  for (char c : in) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

// HSL (h in degrees, s and l in [0, 1]) to "#rrggbb".
std::string hsl(double h, double s, double l) {
  double c = (1 - std::fabs(2 * l - 1)) * s;
  double hp = std::fmod(h, 360.0) / 60.0;
  double x = c * (1 - std::fabs(std::fmod(hp, 2.0) - 1));
  double r = 0, g = 0, b = 0;
  if (hp < 1) {
    r = c;
    g = x;
  } else if (hp < 2) {
    r = x;
    g = c;
  } else if (hp < 3) {
    g = c;
    b = x;
  } else if (hp < 4) {
    g = x;
    b = c;
  } else if (hp < 5) {
    r = x;
    b = c;
  } else {
    r = c;
    b = x;
  }
  double mm = l - c / 2;
  char buf[8];
  auto to8 = [&](double u) {
    return int(std::lround(std::clamp(u + mm, 0.0, 1.0) * 255));
  };
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", to8(r), to8(g), to8(b));
  return buf;
}

// Colour of model chunk j of a device (chunk / p): forward light, backward
// dark.
const double kHues[] = {212, 28, 135, 280, 0, 178, 48, 325};
std::string chunkColour(int64_t j, bool forward) {
  double h = kHues[size_t(j) % (sizeof kHues / sizeof kHues[0])];
  return forward ? hsl(h, 0.70, 0.76) : hsl(h, 0.62, 0.40);
}

const char *kFont = "font-family=\"sans-serif\"";

std::string displayName(ScheduleKind k) {
  switch (k) {
  case ScheduleKind::GPipe:
    return "GPipe";
  case ScheduleKind::OneFOneB:
    return "1F1B";
  case ScheduleKind::Interleaved:
    return "Interleaved 1F1B";
  }
  return "?";
}

} // namespace

std::string scheduleSvg(const Schedule &s, const Simulation &sim) {
  const int64_t p = s.perStage.size();
  const int64_t v = std::max<int64_t>(s.chunksPerStage, 1);
  const int64_t stagesForChunks = std::max<int64_t>(s.stages, 1);

  // Time extent and the shortest block, over steps that ran.
  double tEnd = 0, minDur = std::numeric_limits<double>::infinity();
  for (const auto &ts : sim.times)
    for (const auto &t : ts)
      if (std::isfinite(t.first) && std::isfinite(t.second)) {
        tEnd = std::max(tEnd, t.second);
        if (t.second > t.first)
          minDur = std::min(minDur, t.second - t.first);
      }
  if (!(tEnd > 0))
    tEnd = 1;
  if (!std::isfinite(minDur))
    minDur = tEnd;

  // Pixels per time unit: at least ~900px of timeline, and the shortest block
  // at least 18px wide so its label fits.
  const double scale = std::max(900.0 / tEnd, 18.0 / minDur);
  const double left = 84, top = 58, rowH = 30, rowGap = 8, right = 24;
  const double plotW = tEnd * scale;
  const double rowsBottom = top + p * (rowH + rowGap) - rowGap;
  const double axisY = rowsBottom + 16;

  // Legend layout: one entry per (chunk, direction); wraps to the plot width.
  struct Entry {
    std::string colour, label;
  };
  std::vector<Entry> entries;
  for (int dir = 0; dir < 2; ++dir)
    for (int64_t j = 0; j < v; ++j) {
      std::string label = dir == 0 ? "Forward pass" : "Backward pass";
      if (v > 1)
        label += ", model chunk " + std::to_string(j + 1);
      entries.push_back({chunkColour(j, dir == 0), label});
    }
  const double entryW = v > 1 ? 230 : 150;
  const double legendW = std::max(plotW, 2 * entryW);
  const int64_t perLine = std::max<int64_t>(1, int64_t(legendW / entryW));
  const int64_t legendLines = (int64_t(entries.size()) + perLine - 1) / perLine;
  const double legendTop = axisY + 34;
  const double height = legendTop + legendLines * 22 + 12;
  const double width = left + std::max(plotW, legendW) + right;

  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\""
     << fmt(width) << "\" height=\"" << fmt(height) << "\" viewBox=\"0 0 "
     << fmt(width) << ' ' << fmt(height) << "\">\n";
  os << "<rect x=\"0\" y=\"0\" width=\"" << fmt(width) << "\" height=\""
     << fmt(height) << "\" fill=\"white\"/>\n";

  // Title.
  std::ostringstream title;
  title << displayName(s.kind) << " schedule: p = " << s.stages
        << ", v = " << s.chunksPerStage << ", m = " << s.microbatches;
  if (sim.deadlockFree) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", bubble fraction = %.4g",
                  sim.bubbleFraction);
    title << buf;
  } else {
    title << " - DEADLOCK";
  }
  os << "<text x=\"" << fmt(left) << "\" y=\"26\" " << kFont
     << " font-size=\"16\" font-weight=\"bold\" fill=\"black\">"
     << xmlEscape(title.str()) << "</text>\n";
  if (!sim.deadlockFree)
    os << "<text x=\"" << fmt(left) << "\" y=\"44\" " << kFont
       << " font-size=\"11\" fill=\"#b00000\">" << xmlEscape(sim.deadlock)
       << "</text>\n";

  // Rows: label, lane outline (idle time stays blank), step blocks.
  for (int64_t st = 0; st < p; ++st) {
    double y = top + st * (rowH + rowGap);
    os << "<text x=\"" << fmt(left - 10) << "\" y=\"" << fmt(y + rowH / 2 + 4)
       << "\" " << kFont
       << " font-size=\"12\" text-anchor=\"end\" fill=\"black\">Device "
       << st + 1 << "</text>\n";
    os << "<rect class=\"lane\" x=\"" << fmt(left) << "\" y=\"" << fmt(y)
       << "\" width=\"" << fmt(plotW) << "\" height=\"" << fmt(rowH)
       << "\" fill=\"none\" stroke=\"#c8c8c8\" stroke-width=\"1\"/>\n";
    const auto &steps = s.perStage[size_t(st)];
    for (size_t i = 0; i < steps.size(); ++i) {
      if (st >= int64_t(sim.times.size()) || i >= sim.times[size_t(st)].size())
        continue;
      auto t = sim.times[size_t(st)][i];
      if (!std::isfinite(t.first) || !std::isfinite(t.second))
        continue;
      const Step &step = steps[i];
      bool forward = step.kind == Step::Forward;
      int64_t j = std::max<int64_t>(step.chunk, 0) / stagesForChunks;
      double x = left + t.first * scale, w = (t.second - t.first) * scale;
      std::string mbLabel = std::to_string(step.microbatch + 1);
      os << "<rect class=\"step\" x=\"" << fmt(x) << "\" y=\"" << fmt(y)
         << "\" width=\"" << fmt(w) << "\" height=\"" << fmt(rowH)
         << "\" fill=\"" << chunkColour(j, forward)
         << "\" stroke=\"white\" stroke-width=\"1\"><title>"
         << (forward ? "Forward" : "Backward") << " microbatch " << mbLabel
         << ", chunk " << step.chunk << " (model chunk " << j + 1
         << " of device " << st + 1 << "): " << fmt(t.first) << " - "
         << fmt(t.second) << "</title></rect>\n";
      double fs =
          std::min(12.0, std::max(6.0, (w - 2) / (0.62 * mbLabel.size())));
      os << "<text x=\"" << fmt(x + w / 2) << "\" y=\""
         << fmt(y + rowH / 2 + fs * 0.35) << "\" " << kFont << " font-size=\""
         << fmt(fs) << "\" text-anchor=\"middle\" fill=\""
         << (forward ? "black" : "white") << "\">" << mbLabel << "</text>\n";
    }
  }

  // Time axis with an arrow.
  os << "<line x1=\"" << fmt(left) << "\" y1=\"" << fmt(axisY) << "\" x2=\""
     << fmt(left + plotW) << "\" y2=\"" << fmt(axisY)
     << "\" stroke=\"black\" stroke-width=\"1\"/>\n";
  os << "<polygon points=\"" << fmt(left + plotW + 8) << ',' << fmt(axisY)
     << ' ' << fmt(left + plotW) << ',' << fmt(axisY - 4) << ' '
     << fmt(left + plotW) << ',' << fmt(axisY + 4) << "\" fill=\"black\"/>\n";
  // Ticks at a 1/2/5 x 10^k step, about 10 of them.
  double raw = tEnd / 10, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double tick = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
  if (tick < mag)
    tick = mag;
  for (double t = 0; t <= tEnd + 1e-9; t += tick) {
    double x = left + t * scale;
    char lab[32];
    std::snprintf(lab, sizeof lab, "%g", t);
    os << "<line x1=\"" << fmt(x) << "\" y1=\"" << fmt(axisY) << "\" x2=\""
       << fmt(x) << "\" y2=\"" << fmt(axisY + 4)
       << "\" stroke=\"black\" stroke-width=\"1\"/>\n";
    os << "<text x=\"" << fmt(x) << "\" y=\"" << fmt(axisY + 15) << "\" "
       << kFont << " font-size=\"10\" text-anchor=\"middle\" fill=\"#444444\">"
       << lab << "</text>\n";
  }
  os << "<text x=\"" << fmt(left - 10) << "\" y=\"" << fmt(axisY + 4) << "\" "
     << kFont
     << " font-size=\"12\" text-anchor=\"end\" fill=\"black\">Time</text>\n";

  // Legend.
  for (size_t e = 0; e < entries.size(); ++e) {
    double x = left + double(int64_t(e) % perLine) * entryW;
    double y = legendTop + double(int64_t(e) / perLine) * 22;
    os << "<rect class=\"legend\" x=\"" << fmt(x) << "\" y=\"" << fmt(y)
       << "\" width=\"24\" "
       << "height=\"14\" fill=\"" << entries[e].colour
       << "\" stroke=\"#888888\" stroke-width=\"0.5\"/>\n";
    os << "<text x=\"" << fmt(x + 30) << "\" y=\"" << fmt(y + 11) << "\" "
       << kFont << " font-size=\"12\" fill=\"black\">"
       << xmlEscape(entries[e].label) << "</text>\n";
  }
  os << "</svg>\n";
  return os.str();
}

namespace {

/// Reads scheduleText's form into `perStage` (sized to p): a stage named
/// twice, a stage not below p, a step that does not parse, or a microbatch
/// or chunk index past the schedule bound is an error naming the line.
bool readScheduleLines(const std::string &text, int64_t p,
                       std::vector<std::vector<Step>> &perStage,
                       std::string &error) {
  perStage.assign(size_t(std::max<int64_t>(p, 0)), {});
  std::vector<bool> seen(perStage.size(), false);
  size_t pos = 0;
  int line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    std::string l = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    size_t first = l.find_first_not_of(" \t\r");
    if (first == std::string::npos || l[first] == '#')
      continue;
    long long stage = -1;
    int used = 0;
    if (std::sscanf(l.c_str(), " stage %lld:%n", &stage, &used) != 1 ||
        used == 0 || stage < 0 || stage >= p || seen[size_t(stage)]) {
      error = "line " + std::to_string(line) +
              ": expected 'stage S: F0.0 B0.0 ...' with S a new stage below " +
              std::to_string(p);
      return false;
    }
    seen[size_t(stage)] = true;
    const char *c = l.c_str() + used;
    for (;;) {
      while (*c == ' ' || *c == '\t' || *c == '\r')
        ++c;
      if (!*c)
        break;
      char kind = 0;
      long long mb = -1, chunk = -1;
      int n = 0;
      if (std::sscanf(c, "%c%lld.%lld%n", &kind, &mb, &chunk, &n) != 3 ||
          (kind != 'F' && kind != 'B')) {
        error = "line " + std::to_string(line) + ": expected F<mb>.<chunk> or "
                "B<mb>.<chunk> at '" + std::string(c).substr(0, 12) + "'";
        return false;
      }
      // Indices past the bound on p * v * m cannot belong to a schedule
      // (and would make the caller's chunk count overflow).
      if (mb < 0 || chunk < 0 || mb >= kMaxStepsPerDirection ||
          chunk >= kMaxStepsPerDirection) {
        error = "line " + std::to_string(line) + ": step " +
                std::string(c).substr(0, size_t(n)) +
                " has a microbatch or chunk out of range (0 to " +
                std::to_string(kMaxStepsPerDirection - 1) + ")";
        return false;
      }
      perStage[size_t(stage)].push_back(
          {kind == 'F' ? Step::Forward : Step::Backward, int64_t(mb),
           int64_t(chunk)});
      c += n;
    }
  }
  return true;
}

} // namespace

std::optional<int64_t> scheduleTextChunks(const std::string &text, int64_t p,
                                          std::string &error) {
  if (p < 1 || p > kMaxStepsPerDirection) {
    error = "a schedule needs 1 to " + std::to_string(kMaxStepsPerDirection) +
            " stages, got " + std::to_string(p);
    return std::nullopt;
  }
  std::vector<std::vector<Step>> perStage;
  if (!readScheduleLines(text, p, perStage, error))
    return std::nullopt;
  int64_t most = -1;
  bool any = false;
  for (const auto &steps : perStage)
    for (const Step &step : steps) {
      any = true;
      most = std::max(most, step.chunk);
    }
  if (!any) {
    error = "it has no steps; write one line per stage, 'stage S: F0.0 "
            "B0.0 ...' (the form loomc --explain=schedule prints)";
    return std::nullopt;
  }
  return (most + 1 + p - 1) / p;
}

std::optional<Schedule> parseScheduleText(const std::string &text, int64_t p,
                                          int64_t v, int64_t m,
                                          std::string &error) {
  Schedule s;
  s.kind = v > 1 ? ScheduleKind::Interleaved : ScheduleKind::OneFOneB;
  s.stages = p;
  s.chunksPerStage = v;
  s.microbatches = m;
  if (!readScheduleLines(text, p, s.perStage, error))
    return std::nullopt;
  error = validateSchedule(s);
  if (!error.empty())
    return std::nullopt;
  return s;
}

} // namespace pipeline
} // namespace loom
