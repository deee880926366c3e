//===- loom-preprocess.cpp - JSON lines to Megatron indexed datasets ------===//
//
// Megatron-LM's tools/preprocess_data.py in C++: reads JSON lines (one
// object per line), tokenizes the string under each --json-keys key with
// GPT-2's BPE, and writes {output_prefix}_{key}_document.bin/.idx as
// Megatron does. The main thread reads batches of lines and writes the
// results in input order; --workers threads parse and encode. At most a
// few batches per worker are in flight, so memory stays bounded however
// large the input is (IndexedDatasetWriter streams the .bin).
// docs/data.md, "loom-preprocess".
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Gpt2Tokenizer.h"
#include "loom/runtime/IndexedDatasetWriter.h"
#include "loom/runtime/Json.h"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace loom::runtime;

namespace {

const char kUsage[] =
    "usage: loom-preprocess --input FILE --output-prefix PREFIX\n"
    "         --vocab-file vocab.json --merge-file merges.txt [options]\n"
    "\n"
    "Turns JSON lines (one object per line) into Megatron indexed datasets,\n"
    "PREFIX_KEY_document.bin/.idx for each --json-keys key, as Megatron-LM's\n"
    "tools/preprocess_data.py does.\n"
    "\n"
    "  --input FILE           JSON lines; each line one object\n"
    "  --output-prefix P      writes P_{key}_document.bin and .idx (the\n"
    "                         directory must exist)\n"
    "  --vocab-file FILE      GPT-2 BPE vocab.json\n"
    "  --merge-file FILE      GPT-2 BPE merges.txt\n"
    "  --tokenizer-type T     GPT2BPETokenizer (the only one; the default)\n"
    "  --json-keys K [K...]   the keys to tokenize (default: text); a value\n"
    "                         is a string, or an array of strings (one\n"
    "                         sequence each)\n"
    "  --append-eod           end each non-empty document with <|endoftext|>\n"
    "  --workers N            encoding threads (default 1); the output is\n"
    "                         the same for any N\n"
    "  --log-interval N       a progress line every N documents (default "
    "1000)\n"
    "  --dataset-impl mmap    accepted, as older Megatron needed it\n"
    "  --help                 this text\n";

struct Options {
  std::string input, outputPrefix, vocabFile, mergeFile;
  std::vector<std::string> jsonKeys;
  bool appendEod = false;
  int workers = 1;
  int64_t logInterval = 1000;
};

std::optional<int64_t> parsePositive(const std::string &text) {
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  int64_t value = std::stoll(text);
  return value >= 1 ? std::optional<int64_t>(value) : std::nullopt;
}

/// 0: parsed; 1: --help given; 2: a usage error (printed).
int parseOptions(int argc, char **argv, Options &o) {
  auto usage = [](const std::string &message) {
    std::fprintf(stderr,
                 "loom-preprocess: %s\n(loom-preprocess --help lists "
                 "the options)\n",
                 message.c_str());
    return 2;
  };
  bool sawKeys = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('=');
        arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inlineValue = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&](std::string &out) {
      if (inlineValue) {
        out = *inlineValue;
        return true;
      }
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 1;
    }
    if (arg == "--append-eod") {
      o.appendEod = true;
      continue;
    }
    if (arg == "--json-keys") {
      if (sawKeys)
        return usage("--json-keys is given twice; list every key after one");
      sawKeys = true;
      if (inlineValue)
        o.jsonKeys.push_back(*inlineValue);
      while (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0)
        o.jsonKeys.push_back(argv[++i]);
      if (o.jsonKeys.empty())
        return usage("--json-keys needs at least one key");
      continue;
    }
    bool known = arg == "--input" || arg == "--output-prefix" ||
                 arg == "--vocab-file" || arg == "--merge-file" ||
                 arg == "--tokenizer-type" || arg == "--workers" ||
                 arg == "--log-interval" || arg == "--dataset-impl";
    if (!known) {
      if (arg == "--split-sentences" || arg == "--keep-newlines" ||
          arg == "--partitions" || arg == "--tokenizer-model" ||
          arg == "--lang" || arg == "--find-optimal-num-workers")
        return usage(arg + " (of Megatron's preprocess_data.py) is not "
                           "supported; leave it out");
      return usage("unknown option '" + arg + "'");
    }
    if (!value(v))
      return usage(arg + " needs a value");
    if (arg == "--input")
      o.input = v;
    else if (arg == "--output-prefix")
      o.outputPrefix = v;
    else if (arg == "--vocab-file")
      o.vocabFile = v;
    else if (arg == "--merge-file")
      o.mergeFile = v;
    else if (arg == "--tokenizer-type") {
      if (v != "GPT2BPETokenizer")
        return usage("--tokenizer-type " + v +
                     ": only GPT2BPETokenizer (vocab.json and merges.txt) is "
                     "supported");
    } else if (arg == "--dataset-impl") {
      if (v != "mmap")
        return usage("--dataset-impl " + v +
                     ": only mmap (the .bin/.idx format) is written");
    } else {
      std::optional<int64_t> n = parsePositive(v);
      if (!n || (arg == "--workers" && *n > 1024))
        return usage(arg + " " + v + ": expected a whole number from 1" +
                     (arg == "--workers" ? " to 1024" : ""));
      if (arg == "--workers")
        o.workers = int(*n);
      else
        o.logInterval = *n;
    }
  }
  for (auto [flag, field] :
       {std::pair<const char *, std::string *>{"--input", &o.input},
        {"--output-prefix", &o.outputPrefix},
        {"--vocab-file", &o.vocabFile},
        {"--merge-file", &o.mergeFile}})
    if (field->empty())
      return usage(std::string(flag) + " is required");
  if (o.jsonKeys.empty())
    o.jsonKeys.push_back("text");
  for (size_t a = 0; a < o.jsonKeys.size(); ++a)
    for (size_t b = a + 1; b < o.jsonKeys.size(); ++b)
      if (o.jsonKeys[a] == o.jsonKeys[b])
        return usage("--json-keys names '" + o.jsonKeys[a] +
                     "' twice; each key writes its own dataset");
  return 0;
}

//===----------------------------------------------------------------------===//
// Encoding one line
//===----------------------------------------------------------------------===//

/// One document per key: its sequences (a string value is one, an array
/// of strings one per element), empty sequences left out.
using Document = std::vector<std::vector<int64_t>>;

struct Encoder {
  const Gpt2Tokenizer &tokenizer;
  const Options &options;
  std::string what; // "the input 'FILE'"
  std::optional<int32_t> eod;

  Status encodeLine(std::string_view line, size_t lineNumber,
                    std::vector<Document> &out) const {
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    std::string where = what + ", line " + std::to_string(lineNumber);
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      return Status::error(where +
                           ": an empty line; each line must be one JSON "
                           "object (Megatron's json.loads refuses it too)");
    JsonOptions json;
    json.firstLine = lineNumber;
    json.endName = "the line";
    json.allowNonFinite = true; // as Megatron's json.loads
    Result<JsonValue> value = parseJson(line, what, json);
    if (!value.ok())
      return Status::error(value.message());
    if (!value->isObject())
      return Status::error(where + ": expected a JSON object, found " +
                           value->kindName());
    out.assign(options.jsonKeys.size(), Document());
    for (size_t k = 0; k < options.jsonKeys.size(); ++k) {
      const std::string &key = options.jsonKeys[k];
      const JsonValue *text = value->find(key);
      if (!text)
        return Status::error(where + ": the object has no key \"" + key +
                             "\" (--json-keys names it)");
      std::vector<const JsonValue *> sentences;
      if (text->isString()) {
        sentences.push_back(text);
      } else if (text->isArray()) {
        for (const JsonValue &element : text->array())
          sentences.push_back(&element);
      } else {
        sentences.push_back(text);
      }
      Document &document = out[k];
      for (const JsonValue *sentence : sentences) {
        if (!sentence->isString())
          return Status::error(where + ", column " +
                               std::to_string(sentence->column()) + ": \"" +
                               key + "\" holds " + sentence->kindName() +
                               "; it must be a string or an array of strings");
        std::vector<int32_t> ids = tokenizer.encode(sentence->text());
        if (!ids.empty())
          document.emplace_back(ids.begin(), ids.end());
      }
      // preprocess_data.py: the end-of-document id goes at the end of the
      // last sequence, and only when the document has tokens.
      if (!document.empty() && eod)
        document.back().push_back(*eod);
    }
    return Status::success();
  }
};

//===----------------------------------------------------------------------===//
// The pipeline
//===----------------------------------------------------------------------===//

struct Batch {
  uint64_t index = 0;
  size_t firstLine = 0;
  std::vector<std::string> lines;
  uint64_t bytes = 0;
};

struct Encoded {
  std::vector<std::vector<Document>> documents; // per line, per key
  std::vector<uint64_t> lineBytes;              // with the newline
  Status status = Status::success();
};

class Pipeline {
public:
  Pipeline(const Encoder &encoder, int workers)
      : encoder_(encoder), capacity_(size_t(4 * workers)) {
    for (int w = 0; w < workers; ++w)
      threads_.emplace_back([this] { work(); });
  }
  ~Pipeline() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : threads_)
      t.join();
  }
  /// Queues `batch`, waiting while the pipeline is full.
  void push(Batch batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [&] { return inFlight_ < capacity_; });
    ++inFlight_;
    queue_.push_back(std::move(batch));
    wake_.notify_one();
  }
  /// The result of batch `index` once ready, if it was pushed.
  Encoded take(uint64_t index) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return results_.count(index) > 0; });
    Encoded e = std::move(results_[index]);
    results_.erase(index);
    --inFlight_;
    space_.notify_one();
    return e;
  }
  bool ready(uint64_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    return results_.count(index) > 0;
  }
  bool full() {
    std::lock_guard<std::mutex> lock(mutex_);
    return inFlight_ >= capacity_;
  }

private:
  void work() {
    while (true) {
      Batch batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return closed_ || !queue_.empty(); });
        if (queue_.empty())
          return;
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
      Encoded e;
      e.documents.resize(batch.lines.size());
      for (const std::string &line : batch.lines)
        e.lineBytes.push_back(line.size() + 1);
      for (size_t l = 0; l < batch.lines.size() && e.status.ok(); ++l)
        e.status = encoder_.encodeLine(batch.lines[l], batch.firstLine + l,
                                       e.documents[l]);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        results_[batch.index] = std::move(e);
      }
      done_.notify_all();
    }
  }

  const Encoder &encoder_;
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable wake_, space_, done_;
  std::deque<Batch> queue_;
  std::map<uint64_t, Encoded> results_;
  size_t inFlight_ = 0;
  bool closed_ = false;
  std::vector<std::thread> threads_;
};

int fail(const std::string &message) {
  std::fprintf(stderr, "loom-preprocess: %s\n", message.c_str());
  return 1;
}

int run(const Options &o) {
  Result<Gpt2Tokenizer> tokenizer =
      Gpt2Tokenizer::open(o.vocabFile, o.mergeFile);
  if (!tokenizer.ok())
    return fail(tokenizer.message());
  Encoder encoder{*tokenizer, o, "the input '" + o.input + "'", std::nullopt};
  if (o.appendEod) {
    encoder.eod = tokenizer->tokenId("<|endoftext|>");
    if (!encoder.eod)
      return fail("--append-eod: the vocabulary '" + o.vocabFile +
                  "' has no \"<|endoftext|>\" token; add it, or leave out "
                  "--append-eod");
  }
  // Megatron's DType.optimal_dtype.
  IndexedDType dtype = tokenizer->vocabSize() < 65500 ? IndexedDType::Uint16
                                                      : IndexedDType::Int32;

  FILE *in = std::fopen(o.input.c_str(), "rb");
  if (!in)
    return fail("cannot open the input '" + o.input +
                "': " + std::strerror(errno));
  std::vector<IndexedDatasetWriter> writers;
  for (const std::string &key : o.jsonKeys) {
    Result<IndexedDatasetWriter> w = IndexedDatasetWriter::create(
        o.outputPrefix + "_" + key + "_document", dtype);
    if (!w.ok()) {
      std::fclose(in);
      return fail(w.message());
    }
    writers.push_back(std::move(*w));
  }

  auto start = std::chrono::steady_clock::now();
  uint64_t documents = 0, bytesRead = 0;
  std::vector<uint64_t> tokens(writers.size(), 0);
  auto write = [&](Encoded e) -> Status {
    if (!e.status.ok())
      return e.status;
    for (size_t l = 0; l < e.documents.size(); ++l) {
      std::vector<Document> &line = e.documents[l];
      bytesRead += e.lineBytes[l];
      for (size_t k = 0; k < line.size(); ++k) {
        for (const std::vector<int64_t> &sequence : line[k]) {
          if (Status s = writers[k].addItem(sequence); !s.ok())
            return s;
          tokens[k] += sequence.size();
        }
        writers[k].endDocument();
      }
      ++documents;
      if (documents % uint64_t(o.logInterval) == 0) {
        double elapsed = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
        std::fprintf(stderr,
                     "Processed %llu documents (%.1f docs/s, %.2f MB/s).\n",
                     (unsigned long long)documents, documents / elapsed,
                     bytesRead / elapsed / 1024 / 1024);
      }
    }
    return Status::success();
  };

  Status status = Status::success();
  {
    Pipeline pipeline(encoder, o.workers);
    uint64_t pushed = 0, written = 0;
    size_t lineNumber = 0;
    char *buffer = nullptr;
    size_t capacity = 0;
    bool eof = false;
    while (status.ok() && !eof) {
      Batch batch;
      batch.index = pushed;
      batch.firstLine = lineNumber + 1;
      // Lines up to 64 or 1 MiB a batch: enough to keep a worker busy.
      while (batch.lines.size() < 64 && batch.bytes < (1u << 20)) {
        ssize_t n = ::getline(&buffer, &capacity, in);
        if (n < 0) {
          eof = true;
          break;
        }
        ++lineNumber;
        batch.bytes += uint64_t(n);
        size_t length = size_t(n);
        if (length && buffer[length - 1] == '\n')
          --length;
        batch.lines.emplace_back(buffer, length);
      }
      if (eof && std::ferror(in))
        status = Status::error("cannot read the input '" + o.input +
                               "': " + std::strerror(errno));
      if (!batch.lines.empty()) {
        // Write what is ready before waiting for space.
        while (written < pushed && status.ok() &&
               (pipeline.ready(written) || pipeline.full()))
          status = write(pipeline.take(written++));
        if (!status.ok())
          break;
        pipeline.push(std::move(batch));
        ++pushed;
      }
    }
    while (written < pushed && status.ok())
      status = write(pipeline.take(written++));
    std::free(buffer);
    // Results still in flight after an error are dropped with the pipeline.
    while (written < pushed)
      (void)pipeline.take(written++);
  }
  std::fclose(in);
  if (!status.ok())
    return fail(status.message());
  if (documents == 0)
    return fail("the input '" + o.input +
                "' has no lines; each line must be one JSON object");
  // Every key's files written before any is renamed into place.
  for (IndexedDatasetWriter &writer : writers)
    if (Status s = writer.prepare(); !s.ok())
      return fail(s.message());
  for (size_t k = 0; k < writers.size(); ++k) {
    if (Status s = writers[k].commit(); !s.ok())
      return fail(s.message());
    std::fprintf(stderr,
                 "Wrote %s.bin and .idx: %llu documents, %lld sequences, "
                 "%llu tokens (%s).\n",
                 writers[k].prefix().c_str(), (unsigned long long)documents,
                 (long long)writers[k].numSequences(),
                 (unsigned long long)tokens[k], indexedDTypeName(dtype));
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  Options options;
  int parsed = parseOptions(argc, argv, options);
  if (parsed == 1)
    return 0;
  if (parsed != 0)
    return parsed;
  return run(options);
}
