//===- Trace.cpp - a Chrome trace of a run: events and their JSON ---------===//
//
// Events are turned into JSON as they are recorded (outside the lock) and
// kept as text, so writing the file is a join and escaping lives in one
// place (jsonQuote).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Trace.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/Files.h"

#include <charconv>
#include <cmath>
#include <unistd.h>

namespace loom {
namespace runtime {

namespace {

/// The length of the well-formed UTF-8 sequence at s[i], or 0 (overlong
/// forms, surrogates and code points past U+10FFFF are not well formed).
size_t utf8Length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return uint8_t(s[k]); };
  uint8_t b = byte(i);
  size_t n = b < 0x80           ? 1
             : (b >> 5) == 0x6  ? 2
             : (b >> 4) == 0xE  ? 3
             : (b >> 3) == 0x1E ? 4
                                : 0;
  if (n == 0 || i + n > s.size())
    return 0;
  uint32_t cp = n == 1 ? b : n == 2 ? b & 0x1F : n == 3 ? b & 0x0F : b & 0x07;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (byte(i + k) & 0x3F);
  }
  static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

} // namespace

std::string jsonQuote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
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
      if (uint8_t(c) < 0x20) {
        static const char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[uint8_t(c) >> 4];
        out += kHex[uint8_t(c) & 0xF];
        break;
      }
      if (size_t n = utf8Length(text, i)) {
        out.append(text.substr(i, n));
        i += n;
        continue;
      }
      out += "\\ufffd"; // one replacement per stray byte
      break;
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string jsonDouble(double value) {
  if (!std::isfinite(value))
    return "null";
  // to_chars ignores the locale (printf's %g would write 0,5 in some).
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (error != std::errc())
    return "null";
  return std::string(buffer, end);
}

TraceArgs &TraceArgs::addRaw(std::string_view key, const std::string &json) {
  if (!body_.empty())
    body_ += ',';
  body_ += jsonQuote(key);
  body_ += ':';
  body_ += json;
  return *this;
}

TraceArgs &TraceArgs::add(std::string_view key, std::string_view value) {
  return addRaw(key, jsonQuote(value));
}
TraceArgs &TraceArgs::add(std::string_view key, double value) {
  return addRaw(key, jsonDouble(value));
}
TraceArgs &TraceArgs::add(std::string_view key, bool value) {
  return addRaw(key, value ? "true" : "false");
}

Tracer::Tracer()
    : epoch_(std::chrono::steady_clock::now()), pid_(int64_t(::getpid())) {}

void Tracer::append(std::string event) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(std::move(event));
}

void Tracer::nameProcess(std::string_view name) {
  append("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" +
         std::to_string(pid_) +
         ",\"tid\":0,\"args\":" + TraceArgs().add("name", name).json() + "}");
}

void Tracer::nameTrack(int track, std::string_view name) {
  std::string head = "{\"ph\":\"M\",\"pid\":" + std::to_string(pid_) +
                     ",\"tid\":" + std::to_string(track) + ",";
  append(head + "\"name\":\"thread_name\",\"args\":" +
         TraceArgs().add("name", name).json() + "}");
  // Perfetto and chrome://tracing order tracks by this, else by name.
  append(head + "\"name\":\"thread_sort_index\",\"args\":" +
         TraceArgs().add("sort_index", track).json() + "}");
}

void Tracer::complete(int track, std::string_view name, std::string_view cat,
                      int64_t beginUs, int64_t durUs, const TraceArgs &args) {
  std::string event =
      "{\"name\":" + jsonQuote(name) + ",\"cat\":" + jsonQuote(cat) +
      ",\"ph\":\"X\",\"ts\":" + std::to_string(beginUs) +
      ",\"dur\":" + std::to_string(durUs) + ",\"pid\":" + std::to_string(pid_) +
      ",\"tid\":" + std::to_string(track) + ",\"args\":" + args.json() + "}";
  append(std::move(event));
}

void Tracer::compileKernels(int track, int64_t beginUs, int64_t durUs,
                            bool cacheHit, double seconds, int64_t kernels) {
  complete(track, "compile kernels", "compile", beginUs, durUs,
           TraceArgs()
               .add("cache", cacheHit ? "hit" : "miss")
               .add("seconds", seconds)
               .add("kernels", kernels));
}

size_t Tracer::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_.size();
}

std::string Tracer::json() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out = "{\"traceEvents\":[\n";
  for (size_t i = 0; i < events_.size(); ++i) {
    out += events_[i];
    out += i + 1 < events_.size() ? ",\n" : "\n";
  }
  out += "],\n\"displayTimeUnit\":\"ms\"}\n";
  return out;
}

Status Tracer::write(const std::string &path) const {
  std::string text = json();
  return writeFileAtomically(path,
                             std::vector<uint8_t>(text.begin(), text.end()));
}

void instructionSlice(Tracer &tracer, int track, const plan::PlanT &plan,
                      const DecodedProgram &program, size_t index,
                      const StepParams &params, int64_t beginUs) {
  int64_t endUs = tracer.nowUs();
  const Instruction &inst = program.instructions[index];
  const plan::InstructionT &source = *program.program->instructions[index];
  std::string name = opName(inst.op);
  // A generated kernel is named by its entry point (loom_k3_layernorm).
  if (const auto *k = std::get_if<KernelInstr>(&inst.record))
    name = k->name;
  bool collective = std::holds_alternative<AllReduceInstr>(inst.record) ||
                    std::holds_alternative<GatherScatterInstr>(inst.record) ||
                    std::holds_alternative<BucketShardInstr>(inst.record);
  if (const auto *norm = std::get_if<GradNormInstr>(&inst.record))
    collective = norm->axis >= 0; // the squares' all-reduce
  int64_t bytes = 0;
  for (const std::vector<BufferId> *ids : {&inst.inputs, &inst.outputs})
    for (BufferId id : *ids)
      bytes += plan.buffers[size_t(id)]->bytes;
  // Exact as an integer; a product past 2^63 (no GEMM of a real model) as
  // a double.
  int64_t flops = 0;
  double wideFlops = 0;
  if (const auto *m = std::get_if<MatmulInstr>(&inst.record)) {
    const MatmulShape &g = m->shape;
    if (__builtin_mul_overflow(int64_t(2), g.batch, &flops) ||
        __builtin_mul_overflow(flops, g.m, &flops) ||
        __builtin_mul_overflow(flops, g.n, &flops) ||
        __builtin_mul_overflow(flops, g.k, &flops))
      wideFlops =
          2.0 * double(g.batch) * double(g.m) * double(g.n) * double(g.k);
  }
  TraceArgs args;
  args.add("op", opName(inst.op))
      .add("location", source.location)
      .add("instruction", inst.where)
      .add("program", program.program->name)
      .add("step", params.step);
  if (program.program->name == "microbatch")
    args.add("microbatch", params.microbatch);
  args.add("bytes", bytes);
  if (wideFlops > 0)
    args.add("flops", wideFlops);
  else
    args.add("flops", flops);
  tracer.complete(track, name, collective ? "collective" : "op", beginUs,
                  endUs - beginUs, args);
}

} // namespace runtime
} // namespace loom
