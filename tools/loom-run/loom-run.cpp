//===- loom-run.cpp - train a compiled plan -------------------------------===//
//
// The runtime's command line: no MLIR or LLVM, only Loom's runtime.
//
//   loom-run PLAN --steps N (--data FILE | --data-path [W] PREFIX ...
//            [--split 98,2,0]) [--seed S] [--log-json FILE]
//            [--lr X --min-lr X --warmup N --decay-steps N --decay-style S
//             --weight-decay X --clip-grad X --adam-beta1 X --adam-beta2 X
//             --adam-eps X] [--save DIR] [--load DIR] [--dump]
//            [--trace FILE [--trace-steps N]]
//            [--eval-interval K] [--eval-iters N] [--valid-data FILE]
//   loom-run PLAN --eval-only (--valid-data FILE | --data-path ...)
//            [--load DIR]
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Backend.h"
#include "loom/runtime/Checkpoint.h"
#include "loom/runtime/Files.h"
#include "loom/runtime/GptDataset.h"
#include "loom/runtime/Job.h"
#include "loom/runtime/MaskedLmDataset.h"
#include "loom/runtime/Session.h"
#include "loom/runtime/Trace.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace loom::runtime;

namespace {

const char *kUsage =
    R"(usage: loom-run PLAN --steps N --data FILE [options]
       loom-run PLAN --steps N --data-path [W1] PREFIX1 [W2 PREFIX2 ...]
                [--split 98,2,0] [options]
       loom-run PLAN --eval-only (--valid-data FILE | --data-path ...)
                [--load DIR] [options]
       loom-run PLAN --dump

Trains a plan compiled by loomc on a backend (the CPU by default). Every
rank of the plan's mesh (loomc --mesh dp=D,tp=T) runs in this process, as a
thread, joined by the local communicator; or, when a launcher starts one
loom-run per rank (mpirun -np N, srun -n N, or a torchrun-style launch that
sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), this process runs the
launcher's rank, joined to the others by MPI, Gloo or NCCL
(docs/distributed.md). Rank 0 prints the progress and writes the log and
the checkpoints; every rank's errors start with its rank.

  --steps N            train until step N (a run resumed with --load at step
                       K runs N - K more steps; as Megatron's --train-iters)
  --data FILE          the corpus: a text file read as bytes (vocabulary 256),
                       or raw token ids with --data-format
  --data-format F      bytes (default), uint16 or int32 (little-endian ids)
  --data-path [W] P .. Megatron's indexed datasets P.bin/P.idx (as
                       preprocess_data.py writes them), memory-mapped; with
                       weights, blended as Megatron's BlendedDataset does.
                       The words up to the next option are the path: name
                       PLAN before it. Samples are GPTDataset's: seq + 1
                       tokens across document boundaries (docs/data.md)
  --split T,V,E        the train,valid,test weights of each dataset's
                       documents (default 969,30,1, Megatron's); loom-run
                       trains on the train split and evaluates on the valid
  --eval-interval K    evaluate after every K steps and after the last: the
                       validation loss (and perplexity) of the training
                       plan's forward, dropout off, on --eval-iters global
                       batches of the validation data from its first sample
                       (the same samples each time), printed and logged
                       with the step (docs/data.md, "Evaluation")
  --eval-iters N       the global batches an evaluation runs (default 10;
                       Megatron's is 100)
  --eval-only          evaluate once (the --load checkpoint's parameters, or
                       the initial ones) and exit: no training, no --save
  --valid-data FILE    the validation data with --data: a corpus in
                       --data-format (with --data-path the validation data
                       is each dataset's valid split)
  --mlm                masked-LM samples for BERT (docs/data.md): the data's
                       text as [CLS] A [SEP] B [SEP] [PAD].., 15% of its
                       tokens predicted (80% [MASK], 10% kept, 10% random),
                       with token_types and padding_mask, as Megatron's BERT
                       dataset makes them, keyed by the sample's index
  --mlm-special-ids P,C,S,M
                       the ids of [PAD], [CLS], [SEP] and [MASK] (default
                       0,101,102,103: BERT's WordPiece vocabulary)
  --mask-prob P        the share of a sample's tokens predicted (default 0.15)
  --short-seq-prob P   the share of samples cut short and padded (default 0.1)
  --no-shuffle         read the samples in corpus order (default: each epoch
                       in an order keyed by the seed, as Megatron shuffles)
  --seed S             the seed of initialisation and dropout, 0 to 2^64 - 1
                       (default 1234; with --load, the checkpoint's)
  --log-json FILE      also write one JSON object per step to FILE: a fresh
                       run starts FILE anew, a run resumed with --load
                       appends to it
  --log-interval K     print every K-th step (default 1); JSON has every step
  --save DIR           save a checkpoint into DIR at the end (and with
                       --save-interval K, every K steps); DIR is created,
                       and checked to be writable, before the first step
  --load DIR           resume from the checkpoint in DIR
  --trace FILE         write a Chrome trace (Trace Event Format JSON, for
                       ui.perfetto.dev or chrome://tracing) of the plan's
                       load and the first steps the run takes: a slice per
                       instruction, collective, pipeline send and receive,
                       microbatch and step, on one track per rank
  --trace-steps N      the steps --trace records (default 3); the file is
                       written when they end
  --memory-report      at the end, print what each rank's executors
                       allocated (arenas, stash slots, the backend's own) and
                       the process's peak RSS, to compare with loomc --explain
  --dump               print the plan as text and exit
  --backend NAME       the backend every rank runs on (default cpu; this
                       build has: BACKENDS). cuda: an NVIDIA GPU (every
                       rank of the mesh on the one device); cuda-emulated:
                       the CUDA kernels run on the host (slow; for tests)
  --device N           the GPU (CUDA device index) of --backend cuda
                       (default 0; under a launcher, the local rank)
  --no-cuda-graph      with --backend cuda: enqueue each kernel instead of
                       replaying the microbatch program as a CUDA graph
  --no-overlap-grad-reduce
                       all-reduce the data-parallel gradient buckets after
                       the last microbatch instead of during its backward
                       (the same results; the CPU backend overlaps them by
                       default, as Megatron's --overlap-grad-reduce)
  --no-jit             run every fusion region's reference kernels instead
                       of the plan's generated kernels (which are otherwise
                       compiled at load with the system C++ compiler and
                       cached in $LOOM_KERNEL_CACHE, default
                       ~/.cache/loom/kernels)
  --ranks N            run N ranks as threads of this process (even under a
                       launcher): an error unless N is the plan's mesh size
                       (default: the mesh's size, or one rank per process
                       under a launcher)
  --comm NAME          under a launcher: mpi (Open MPI), gloo (TCP, the
                       ranks meet at MASTER_ADDR:MASTER_PORT), nccl (GPUs;
                       --backend cuda) or auto (default: nccl for --backend
                       cuda, else mpi under mpirun, else gloo)
  --collective-timeout S
                       seconds a rank waits in a collective before the run
                       fails naming the rank and the collective (default 300,
                       at most 86400; 0 waits forever)

Step counts (--steps, --warmup, --decay-steps, the intervals) are at most
2^53, the most a checkpoint records, and so is the number of samples a run
consumes.

Optimizer settings (default: the plan's, from loomc):
  --lr X  --min-lr X  --warmup N  --decay-steps N (default: --steps when the
  plan has none)  --decay-style cosine|linear|constant  --weight-decay X
  --clip-grad X  --adam-beta1 X  --adam-beta2 X  --adam-eps X
)";

int usageError(const std::string &message) {
  std::cerr << "loom-run: " << message << "\n(loom-run --help lists the "
            << "options)\n";
  return 2;
}

bool parseInt(const std::string &text, int64_t &value) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end || errno)
    return false;
  value = v;
  return true;
}
bool parseUnsigned(const std::string &text, uint64_t &value) {
  // strtoull takes "-1" as 2^64 - 1.
  if (text.empty() || text[0] < '0' || text[0] > '9')
    return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (*end || errno)
    return false;
  value = v;
  return true;
}
/// A finite double: strtod's inf, nan and out-of-range values (1e400, and
/// 1e-400, which would silently become 0) are refused.
bool parseDouble(const std::string &text, double &value) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end || errno == ERANGE || !std::isfinite(v))
    return false;
  value = v;
  return true;
}

/// Whether two paths name one file (false when either does not exist).
bool sameFile(const std::string &a, const std::string &b) {
  struct stat x, y;
  return ::stat(a.c_str(), &x) == 0 && ::stat(b.c_str(), &y) == 0 &&
         x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/// Opens the JSON log: truncated for a fresh run, appended to for a resumed
/// one. O_NONBLOCK for the open only, so a FIFO without a reader is an
/// error instead of a hang.
FILE *openLog(const std::string &path, bool append, std::string &error) {
  int fd = ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
                      (append ? O_APPEND : O_TRUNC),
                  0666);
  if (fd < 0) {
    error = errno == ENXIO ? "it is a FIFO that no process reads"
                           : std::strerror(errno);
    return nullptr;
  }
  int flags = ::fcntl(fd, F_GETFL);
  struct stat st;
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
      ::fstat(fd, &st) != 0) {
    error = std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    error = "it is not a file, a FIFO or a character device";
    ::close(fd);
    return nullptr;
  }
  FILE *file = ::fdopen(fd, append ? "a" : "w");
  if (!file) {
    error = std::strerror(errno);
    ::close(fd);
  }
  return file;
}

std::string jsonNumber(double v) {
  if (!std::isfinite(v))
    return "null";
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

} // namespace

int main(int argc, char **argv) {
  std::string planPath;
  std::map<std::string, std::string> values;
  bool dump = false;
  const char *valued[] = {"--steps",
                          "--data",
                          "--data-format",
                          "--seed",
                          "--log-json",
                          "--log-interval",
                          "--save",
                          "--save-interval",
                          "--load",
                          "--lr",
                          "--min-lr",
                          "--warmup",
                          "--decay-steps",
                          "--decay-style",
                          "--weight-decay",
                          "--clip-grad",
                          "--adam-beta1",
                          "--adam-beta2",
                          "--adam-eps",
                          "--ranks",
                          "--collective-timeout",
                          "--backend",
                          "--trace",
                          "--trace-steps",
                          "--device",
                          "--comm",
                          "--split",
                          "--mask-prob",
                          "--short-seq-prob",
                          "--mlm-special-ids",
                          "--eval-interval",
                          "--eval-iters",
                          "--valid-data"};
  std::vector<std::string> dataPath;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::string usage = kUsage, names;
      for (const std::string &b : backendNames())
        names += (names.empty() ? "" : ", ") + b;
      usage.replace(usage.find("BACKENDS"), 8, names);
      std::cout << usage;
      return 0;
    }
    if (arg == "--dump") {
      dump = true;
      continue;
    }
    if (arg == "--data-path") {
      // Megatron's nargs='*': the words up to the next option.
      while (i + 1 < argc && argv[i + 1][0] != '-')
        dataPath.push_back(argv[++i]);
      if (dataPath.empty())
        return usageError("--data-path needs PREFIX, or W1 PREFIX1 W2 "
                          "PREFIX2 ...");
      values[arg] = "1";
      continue;
    }
    if (arg == "--no-shuffle" || arg == "--no-jit" || arg == "--mlm" ||
        arg == "--no-cuda-graph" || arg == "--no-overlap-grad-reduce" ||
        arg == "--memory-report" || arg == "--eval-only") {
      values[arg] = "1";
      continue;
    }
    std::string value;
    size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    bool known = false;
    for (const char *v : valued)
      known |= name == v;
    if (known) {
      if (eq != std::string::npos)
        value = arg.substr(eq + 1);
      else if (i + 1 < argc)
        value = argv[++i];
      else
        return usageError(name + " needs a value");
      values[name] = value;
      continue;
    }
    if (!arg.empty() && arg[0] == '-')
      return usageError("unknown option " + arg);
    if (!planPath.empty())
      return usageError("one plan at a time; got " + planPath + " and " + arg);
    planPath = arg;
  }
  if (planPath.empty())
    return usageError("name the plan: loom-run PLAN --steps N --data FILE");

  SessionOptions options;
  // Step counts stop at the most a checkpoint records, so every run's
  // checkpoint loads again.
  constexpr int64_t kMaxSteps = kMaxCheckpointCount;
  auto getInt = [&](const char *name, int64_t &out, int64_t min, int64_t max) {
    auto it = values.find(name);
    if (it == values.end())
      return true;
    if (!parseInt(it->second, out) || out < min || out > max) {
      usageError(
          std::string(name) + " " + it->second + ": expected an integer from " +
          std::to_string(min) + " to " +
          (max == kMaxSteps ? std::string("2^53") : std::to_string(max)));
      return false;
    }
    return true;
  };
  auto getDouble = [&](const char *name, std::optional<double> &out,
                       double max = HUGE_VAL) {
    auto it = values.find(name);
    if (it == values.end())
      return true;
    double v;
    if (!parseDouble(it->second, v) || v < 0 || v > max) {
      std::ostringstream bound;
      bound << max;
      usageError(std::string(name) + " " + it->second +
                 ": expected a finite number >= 0" +
                 (max < HUGE_VAL ? " and <= " + bound.str() : ""));
      return false;
    }
    out = v;
    return true;
  };
  int64_t steps = 0, logInterval = 1, saveInterval = 0;
  int64_t evalInterval = 0, evalIters = 10;
  int64_t warmup = -1, decaySteps = -1, ranks = 0, traceSteps = 3, device = 0;
  uint64_t seed = 1234;
  std::optional<double> timeout;
  if (values.count("--seed") && !parseUnsigned(values["--seed"], seed))
    return usageError("--seed " + values["--seed"] +
                      ": expected an integer from 0 to 2^64 - 1");
  if (!getInt("--steps", steps, 1, kMaxSteps) ||
      !getInt("--log-interval", logInterval, 1, kMaxSteps) ||
      !getInt("--save-interval", saveInterval, 0, kMaxSteps) ||
      !getInt("--warmup", warmup, 0, kMaxSteps) ||
      !getInt("--decay-steps", decaySteps, 0, kMaxSteps) ||
      !getDouble("--lr", options.lr) || !getDouble("--min-lr", options.minLr) ||
      !getDouble("--weight-decay", options.weightDecay) ||
      !getDouble("--clip-grad", options.clipGrad) ||
      !getDouble("--adam-beta1", options.beta1) ||
      !getDouble("--adam-beta2", options.beta2) ||
      !getDouble("--adam-eps", options.eps) ||
      !getInt("--ranks", ranks, 1, INT64_MAX) ||
      !getInt("--trace-steps", traceSteps, 1, kMaxSteps) ||
      !getInt("--device", device, 0, 1023) ||
      !getInt("--eval-interval", evalInterval, 1, kMaxSteps) ||
      !getInt("--eval-iters", evalIters, 1, kMaxSteps) ||
      // A day: a collective waiting longer is a hang, not a slow peer.
      !getDouble("--collective-timeout", timeout, 86400))
    return 2;
  bool evalOnly = values.count("--eval-only") > 0;
  bool evaluates = evalOnly || evalInterval > 0;
  if (evalOnly && (values.count("--steps") || evalInterval > 0))
    return usageError(
        std::string("--eval-only trains nothing: drop ") +
        (values.count("--steps") ? "--steps" : "--eval-interval"));
  if (evalOnly && (values.count("--save") || saveInterval > 0))
    return usageError("--eval-only trains nothing, so there is nothing to "
                      "--save");
  if (!evaluates)
    for (const char *needs : {"--eval-iters", "--valid-data"})
      if (values.count(needs))
        return usageError(std::string(needs) +
                          " is for evaluation: add --eval-interval K or "
                          "--eval-only");
  if (saveInterval > 0 && !values.count("--save"))
    return usageError("--save-interval needs --save DIR, the directory to "
                      "save into");
  if (values.count("--trace-steps") && !values.count("--trace"))
    return usageError("--trace-steps needs --trace FILE, the file to write "
                      "the trace to");
  if (ranks)
    options.ranks = ranks;
  if (timeout)
    options.collectiveTimeoutSeconds = *timeout;
  // Ranges that depend on the plan's defaults (min-lr <= lr, betas < 1,
  // eps > 0) are checked by Session::open on the settings a step will use.
  options.seed = seed;
  if (values.count("--backend"))
    options.backend = values["--backend"];
  options.generatedKernels = !values.count("--no-jit");
  options.device = int(device);
  options.cudaGraphs = !values.count("--no-cuda-graph");
  options.overlapGradReduce = !values.count("--no-overlap-grad-reduce");
  if ((values.count("--device") || values.count("--no-cuda-graph")) &&
      options.backend.rfind("cuda", 0) != 0)
    return usageError(std::string(values.count("--device") ? "--device"
                                                           : "--no-cuda-graph") +
                      " is for the cuda backends: add --backend cuda");
  if (warmup >= 0)
    options.warmupSteps = warmup;
  if (decaySteps >= 0)
    options.decaySteps = decaySteps;
  if (values.count("--decay-style")) {
    const std::string &style = values["--decay-style"];
    if (style != "cosine" && style != "linear" && style != "constant")
      return usageError("--decay-style " + style +
                        ": use cosine, linear or constant");
    options.decayStyle = style;
  }

  // One rank per process when a launcher started this one (unless --ranks
  // asks for threads): join the job before anything else, so that an error
  // from here on stops every rank, not only this one.
  std::unique_ptr<Job> job;
  if (!ranks && !dump) {
    Result<LaunchEnvironment> launch = detectLaunch();
    if (!launch.ok()) {
      std::cerr << "loom-run: " << launch.message() << "\n";
      return 1;
    }
    if (launch->multiProcess()) {
      Result<std::unique_ptr<loom::plan::PlanT>> read = readPlan(planPath);
      if (!read.ok()) {
        std::cerr << "loom-run: rank " << launch->rank << ": " << read.message()
                  << "\n";
        if (launch->launcher == LaunchEnvironment::Launcher::OpenMpi)
          abortMpi(1);
        return 1;
      }
      JobOptions jo;
      for (const auto &axis : (*read)->mesh) {
        jo.mesh.names.push_back(axis->name);
        jo.mesh.sizes.push_back(axis->size);
      }
      if (values.count("--comm"))
        jo.comm = values["--comm"];
      jo.backend = options.backend;
      jo.timeoutSeconds = options.collectiveTimeoutSeconds;
      Result<std::unique_ptr<Job>> joined = Job::join(*launch, jo);
      if (!joined.ok()) {
        std::string message = joined.message();
        if (message.rfind("rank ", 0) != 0)
          message = "rank " + std::to_string(launch->rank) + ": " + message;
        std::cerr << "loom-run: " << message << "\n";
        if (launch->launcher == LaunchEnvironment::Launcher::OpenMpi)
          abortMpi(1);
        return 1;
      }
      job = std::move(*joined);
      options.processComm = &job->communicator();
      // Local ranks pick their GPU by local rank.
      if (!values.count("--device"))
        options.device = int(launch->localRank);
    }
  }
  if (values.count("--comm") && !job)
    return usageError("--comm is for runs under a launcher (mpirun, srun, "
                      "torchrun-style); this run's ranks are threads");
  // Rank 0 prints the progress and writes the log and checkpoints.
  bool speaks = !job || job->rank() == 0;
  // An error of this process: in a job it names the rank, tells the other
  // ranks, and ends the process (under mpirun, the whole job).
  auto failed = [&](const std::string &message, int code = 1) -> int {
    std::string text = message;
    if (job && text.rfind("rank ", 0) != 0)
      text = job->mesh().describe(job->rank()) + ": " + text;
    std::cerr << "loom-run: " << text << "\n";
    if (job) {
      job->fail(text);
      job->exitAfterFailure(code);
    }
    return code;
  };
  auto usage = [&](const std::string &message) {
    return job ? failed(message + " (loom-run --help lists the options)", 2)
               : usageError(message);
  };

  // The files read, which no output may overwrite (a weight in
  // --data-path's words names no file, so it matches none).
  std::vector<std::string> inputs = {planPath};
  if (values.count("--data"))
    inputs.push_back(values["--data"]);
  if (values.count("--valid-data"))
    inputs.push_back(values["--valid-data"]);
  for (const std::string &word : dataPath) {
    inputs.push_back(word + ".bin");
    inputs.push_back(word + ".idx");
  }

  // The trace is checked before anything loads (the load is traced too):
  // a path that cannot be written fails now, not after the steps it was to
  // record.
  std::unique_ptr<Tracer> tracer;
  std::string tracePath = values.count("--trace") ? values["--trace"] : "";
  // In a job each rank writes its own: trace.json -> trace.rank3.json.
  if (job && !tracePath.empty()) {
    std::string suffix = ".rank" + std::to_string(job->rank());
    size_t dot = tracePath.rfind(".json");
    if (dot != std::string::npos && dot + 5 == tracePath.size())
      tracePath.insert(dot, suffix);
    else
      tracePath += suffix;
  }
  if (values.count("--trace")) {
    for (const std::string &input : inputs)
      if (!input.empty() && sameFile(tracePath, input))
        return usage("--trace " + tracePath + " is the input '" + input +
                     "'; name another file for the trace");
    // The log and the checkpoint may not exist yet: their names must differ.
    for (const char *output : {"--log-json", "--save"})
      if (values.count(output) && (values[output] == tracePath ||
                                   sameFile(tracePath, values[output])))
        return usage("--trace " + tracePath + " is also " + output +
                     "; name another file for the trace");
    if (Status s = checkWritable(tracePath); !s.ok())
      return failed("--trace: " + s.message());
    tracer = std::make_unique<Tracer>();
    tracer->nameProcess("loom-run " + planPath);
    options.tracer = tracer.get();
  }

  Result<std::unique_ptr<Session>> opened = Session::open(planPath, options);
  if (!opened.ok())
    return failed(opened.message());
  Session &session = **opened;
  const loom::plan::PlanT &plan = session.plan();
  if (dump) {
    printPlanText(plan, std::cout);
    return 0;
  }
  if (evalOnly ? values.count("--data") + values.count("--data-path") > 1
               : !values.count("--steps") ||
                     values.count("--data") + values.count("--data-path") != 1)
    return usage("--steps and one of --data or --data-path are required to "
                 "train (or pass --dump)");
  if (values.count("--valid-data") && values.count("--data-path"))
    return usage("--valid-data is for --data; with --data-path the "
                 "validation data is each dataset's valid split (--split)");
  if (values.count("--split") && !values.count("--data-path"))
    return usage("--split divides --data-path's datasets; --data is one "
                 "corpus");
  // The data first: a bad file is reported before any step runs.
  std::string format = values.count("--data-format") ? values["--data-format"]
                                                      : "bytes";
  TokenFormat tokenFormat;
  if (format == "bytes")
    tokenFormat = TokenFormat::Bytes;
  else if (format == "uint16")
    tokenFormat = TokenFormat::Uint16;
  else if (format == "int32")
    tokenFormat = TokenFormat::Int32;
  else
    return usage("--data-format " + format + ": use bytes, uint16 or int32");
  std::optional<TokenDataset> tokenData, tokenValid;
  std::optional<BlendedDataset> megatronData, megatronValid;
  if (evaluates && !values.count("--data-path") &&
      !values.count("--valid-data"))
    return usage(std::string(evalOnly ? "--eval-only" : "--eval-interval") +
                 " needs validation data: give --valid-data FILE (with "
                 "--data), or --data-path, whose datasets' valid split "
                 "(--split) it evaluates on");
  if (values.count("--data-path")) {
    if (values.count("--data-format"))
      return usage("--data-format is for --data; an indexed dataset's .idx "
                   "names its dtype");
    Result<std::vector<DataPathEntry>> entries = parseDataPath(dataPath);
    if (!entries.ok())
      return usage(entries.message());
    Result<BlendedDataset> opened = openMegatronData(
        *entries, values.count("--split") ? values["--split"] : "969,30,1", 0,
        plan.seq_length, plan.vocab_size);
    if (!opened.ok())
      return failed(opened.message());
    megatronData.emplace(std::move(*opened));
    if (evaluates) {
      std::string split =
          values.count("--split") ? values["--split"] : "969,30,1";
      Result<std::array<double, 3>> weights = parseSplit(split);
      if (weights.ok() && (*weights)[1] == 0)
        return usage("--split " + split +
                     " gives the valid split no documents, and evaluation "
                     "reads it: give it a weight (--split 969,30,1)");
      Result<BlendedDataset> valid = openMegatronData(
          *entries, split, 1, plan.seq_length, plan.vocab_size);
      if (!valid.ok())
        return failed(valid.message());
      megatronValid.emplace(std::move(*valid));
    }
  } else if (values.count("--data")) {
    Result<TokenDataset> opened = TokenDataset::open(
        values["--data"], tokenFormat, plan.seq_length, plan.vocab_size);
    if (!opened.ok())
      return failed(opened.message());
    tokenData.emplace(std::move(*opened));
  }
  if (values.count("--valid-data")) {
    Result<TokenDataset> opened = TokenDataset::open(
        values["--valid-data"], tokenFormat, plan.seq_length, plan.vocab_size);
    if (!opened.ok())
      return failed("--valid-data: " + opened.message());
    tokenValid.emplace(std::move(*opened));
  }
  // --eval-only reads no training data (it may have none).
  const SampleSource *trainSource =
      tokenData      ? static_cast<const SampleSource *>(&*tokenData)
      : megatronData ? static_cast<const SampleSource *>(&*megatronData)
                     : nullptr;
  const SampleSource *validSource =
      tokenValid      ? static_cast<const SampleSource *>(&*tokenValid)
      : megatronValid ? static_cast<const SampleSource *>(&*megatronValid)
                      : nullptr;

  if (values.count("--load")) {
    if (values.count("--seed") && speaks)
      std::cerr << "loom-run: note: --seed is ignored with --load; the "
                   "checkpoint's seed continues\n";
    TraceScope scope(tracer.get(), Tracer::kHostTrack, "load checkpoint",
                     "load");
    if (Status s = session.load(values["--load"]); !s.ok())
      return failed(s.message());
    if (speaks)
      std::cout << "loaded " << values["--load"] << ": step " << session.step()
                << ", " << session.dataPosition() << " samples consumed\n";
  } else {
    TraceScope scope(tracer.get(), Tracer::kHostTrack,
                     "initialize parameters", "load");
    if (Status s = session.initializeParameters(); !s.ok())
      return failed(s.message());
  }
  // The first --trace-steps steps this run takes (a resumed run's too).
  if (tracer)
    tracer->setSteps(session.step() + 1, session.step() + traceSteps);
  if (evalOnly)
    steps = session.step(); // no steps to take
  if (steps < session.step())
    return usage("--steps " + std::to_string(steps) +
                 ": the checkpoint "
                 "in '" +
                 values["--load"] + "' is at step " +
                 std::to_string(session.step()) +
                 " already; ask for a later step");
  // The samples the run will have consumed at its end, checked now rather
  // than at the step that cannot be taken.
  int64_t endPosition;
  if (__builtin_mul_overflow(steps - session.step(), plan.global_batch_size,
                             &endPosition) ||
      __builtin_add_overflow(endPosition, session.dataPosition(),
                             &endPosition) ||
      endPosition > kMaxCheckpointCount)
    return usage("--steps " + std::to_string(steps) + " at " +
                 std::to_string(plan.global_batch_size) +
                 " samples a step would consume more than the 2^53 "
                 "samples a checkpoint records; ask for fewer steps");
  // Before the first step: an unwritable --save fails now, not after the
  // work it was to keep.
  // (Rank 0 writes a job's checkpoints.)
  if (values.count("--save") && speaks)
    if (Status s = checkCheckpointDirectory(values["--save"]); !s.ok())
      return failed(s.message());
  // Samples in a seeded order (the session's seed: the checkpoint's after
  // --load), unless asked to read the corpus in order.
  if (tokenData && !values.count("--no-shuffle"))
    tokenData->shuffle(session.seed());
  if (megatronData)
    megatronData->shuffle(!values.count("--no-shuffle"), session.seed());
  // The validation samples in the same kind of order (Megatron shuffles
  // its valid dataset too), the same at every evaluation.
  if (tokenValid && !values.count("--no-shuffle"))
    tokenValid->shuffle(session.seed());
  if (megatronValid)
    megatronValid->shuffle(!values.count("--no-shuffle"), session.seed());
  // BERT's samples: the text masked as Megatron's BERT dataset masks it,
  // keyed by the session's seed.
  std::optional<MaskedLmDataset> maskedLm, maskedValid;
  if (values.count("--mlm")) {
    const std::vector<std::string> &inputs = session.inputNames();
    if (std::find(inputs.begin(), inputs.end(), "padding_mask") == inputs.end())
      return usage("--mlm makes masked-LM samples for a model with a "
                   "padding_mask input (examples/bert.loom); the model of '" +
                   planPath + "' takes none");
    MaskedLmOptions mlm;
    mlm.seqLength = plan.seq_length;
    const loom::plan::ModelConfigT *vocab = findModelConfig(plan, "vocab");
    mlm.vocab = vocab && vocab->kind == "int" ? vocab->i : plan.vocab_size;
    mlm.seed = session.seed();
    mlm.ignoreIndex = int32_t(plan.ignore_index);
    if (values.count("--mlm-special-ids"))
      if (Status s = parseSpecialIds(values["--mlm-special-ids"],
                                     "--mlm-special-ids", mlm);
          !s.ok())
        return usage(s.message());
    for (auto [flag, slot] : {std::pair{"--mask-prob", &mlm.maskProb},
                              std::pair{"--short-seq-prob", &mlm.shortSeqProb}})
      if (values.count(flag) && !parseDouble(values[flag], *slot))
        return usage(std::string(flag) + " " + values[flag] +
                     ": expected a probability");
    if (trainSource) {
      Result<MaskedLmDataset> made = MaskedLmDataset::make(*trainSource, mlm);
      if (!made.ok())
        return usage("--mlm: " + made.message());
      maskedLm.emplace(std::move(*made));
    }
    // The validation data is masked alike (by its own samples' indices).
    if (validSource) {
      Result<MaskedLmDataset> made = MaskedLmDataset::make(*validSource, mlm);
      if (!made.ok())
        return usage("--mlm: " + made.message());
      maskedValid.emplace(std::move(*made));
    }
  } else {
    for (const char *flag :
         {"--mask-prob", "--short-seq-prob", "--mlm-special-ids"})
      if (values.count(flag))
        return usage(std::string(flag) + " sets up --mlm's masking; add --mlm");
  }
  if (maskedLm)
    trainSource = &*maskedLm;
  if (maskedValid)
    validSource = &*maskedValid;
  // Megatron's default: the decay lasts the whole run (--steps).
  if (!options.decaySteps && plan.optimizer_defaults->decay_steps == 0)
    session.setDecaySteps(steps);

  FILE *json = nullptr;
  std::string logPath = values.count("--log-json") ? values["--log-json"] : "";
  if (values.count("--log-json") && speaks) {
    // A fresh run would truncate it.
    for (const std::string &input : inputs)
      if (sameFile(logPath, input))
        return usage("--log-json " + logPath + " is the input '" + input +
                     "'; name another file for the log");
    std::string why;
    json = openLog(logPath, values.count("--load") > 0, why);
    if (!json)
      return failed("cannot write the log '" + logPath + "': " + why);
  }
  // Once, when the traced steps end (or the run does, or a step fails).
  bool traceWritten = false;
  auto writeTrace = [&] {
    if (!tracer || traceWritten)
      return true;
    traceWritten = true;
    if (Status s = tracer->write(tracePath); !s.ok()) {
      std::cerr << "loom-run: " << s.message() << "\n";
      return false;
    }
    if (!speaks)
      return true;
    int64_t last = std::min(tracer->lastStep(), session.step());
    if (last < tracer->firstStep())
      std::printf("wrote the trace of the load to %s\n", tracePath.c_str());
    else
      std::printf("wrote the trace of steps %lld to %lld to %s\n",
                  (long long)tracer->firstStep(), (long long)last,
                  tracePath.c_str());
    std::fflush(stdout);
    return true;
  };
  auto save = [&](const std::string &dir) {
    if (Status s = session.save(dir); !s.ok()) {
      failed(s.message()); // in a job, does not return
      return false;
    }
    if (speaks)
      std::cout << "saved " << dir << " at step " << session.step() << "\n";
    return true;
  };

  // Parameter tensors: a pipeline's chunks declare theirs (a tied one in
  // two chunks counts once).
  std::set<std::string> parameterNames;
  for (const auto &param : plan.parameters)
    parameterNames.insert(param->name);
  for (const auto &chunk : plan.chunks)
    for (const auto &param : chunk->parameters)
      parameterNames.insert(param->name);
  std::string mesh;
  for (const auto &axis : plan.mesh)
    mesh += (mesh.empty() ? "" : ",") + axis->name + "=" +
            std::to_string(axis->size);
  if (job && speaks)
    std::printf("one rank per process: %s, the %s communicator\n",
                job->environment().describe().c_str(), job->commName().c_str());
  // An evaluation: its line after the step's ("step N | validation loss
  // ..."), its fields into the step's JSON object.
  auto evaluate = [&](std::string &jsonFields) -> bool {
    Result<EvalMetrics> e = session.evaluate(*validSource, evalIters);
    if (!e.ok()) {
      if (job)
        job->fail(e.message());
      failed(e.message()); // in a job, does not return
      return false;
    }
    double ppl = std::exp(std::min(e->loss, 700.0));
    if (speaks) {
      std::printf("step %6lld | validation loss %.4f | validation ppl %.1f | "
                  "%lld tokens in %.1f s\n",
                  (long long)session.step(), e->loss, ppl, (long long)e->tokens,
                  e->seconds);
      std::fflush(stdout);
    }
    jsonFields = ", \"validation_loss\": " + jsonNumber(e->loss) +
                 ", \"validation_ppl\": " + jsonNumber(ppl) +
                 ", \"validation_tokens\": " + std::to_string(e->tokens) +
                 ", \"validation_s\": " + jsonNumber(e->seconds);
    return true;
  };
  auto writeJson = [&](const std::string &text) -> bool {
    if (std::fwrite(text.data(), 1, text.size(), json) == text.size() &&
        std::fflush(json) == 0)
      return true;
    // The log was asked for: keep what training did, then fail (a job's
    // save is collective: the other ranks are not in it).
    std::string why = std::strerror(errno);
    if (values.count("--save") && !job)
      save(values["--save"]);
    failed("cannot write the log '" + logPath + "': " + why);
    return false;
  };
  // The run's end, after training or --eval-only: the trace's outcome,
  // the log closed, and the job's store (rank 0's stays up until every
  // rank has finished).
  auto endRun = [&](bool traced) {
    if (!traced)
      return failed("the trace was not written");
    if (json && std::fclose(json) != 0)
      return failed("cannot write the log '" + logPath +
                    "': " + std::strerror(errno));
    if (job)
      if (Status s = job->finish(); !s.ok())
        std::cerr << "loom-run: " << job->mesh().describe(job->rank())
                  << ": the job's store: " << s.message() << "\n";
    return 0;
  };
  if (evalOnly) {
    if (speaks)
      std::printf("evaluating %s on %lld rank%s (%s) at step %lld: %lld "
                  "global batches of %lld sequences of the validation data\n",
                  plan.model.c_str(), (long long)session.numRanks(),
                  session.numRanks() == 1 ? "" : "s", mesh.c_str(),
                  (long long)session.step(), (long long)evalIters,
                  (long long)plan.global_batch_size);
    std::string fields;
    if (!evaluate(fields))
      return 1;
    if (json && !writeJson("{\"step\": " + std::to_string(session.step()) +
                           fields + "}\n"))
      return 1;
    return endRun(writeTrace());
  }
  const SampleSource &data = *trainSource;
  if (speaks)
    std::printf(
        "training %s on %lld rank%s (%s%s%s): %lld parameter tensors, "
        "%lld sequences of %lld tokens per step (%lld microbatches per "
        "rank), steps %lld to %lld\n",
        plan.model.c_str(), (long long)session.numRanks(),
        session.numRanks() == 1 ? "" : "s", mesh.c_str(),
        plan.sequence_parallel ? ", sequence parallel" : "",
        plan.chunks.empty() ? ""
                            : (", " + plan.schedule + " schedule, " +
                               std::to_string(plan.chunks.size()) + " chunks")
                                  .c_str(),
        (long long)parameterNames.size(), (long long)plan.global_batch_size,
        (long long)plan.seq_length, (long long)plan.num_microbatches,
        (long long)session.step() + 1, (long long)steps);
  double elapsed = 0;
  while (session.step() < steps) {
    Result<StepMetrics> m = session.step(data);
    if (!m.ok()) {
      // A job's other ranks hear of the failure first; then the trace of
      // what led up to it.
      if (job)
        job->fail(m.message());
      writeTrace();
      return failed(m.message());
    }
    elapsed += m->seconds;
    double tokensPerSecond = double(m->tokens) / m->seconds;
    // After every K steps and the last (the step's line first).
    bool evaluatesNow =
        evalInterval > 0 && (m->step % evalInterval == 0 || m->step == steps);
    if (speaks &&
        (m->step % logInterval == 0 || m->step == steps || m->skipped)) {
      std::printf("step %6lld | loss %.4f | lr %.3e | grad norm %.3f | "
                  "%.0f tokens/s | %.1f s",
                  (long long)m->step, m->loss, m->lr, m->gradNorm,
                  tokensPerSecond, elapsed);
      if (plan.precision->dynamic_loss_scaling)
        std::printf(" | loss scale %g", m->lossScale);
      if (m->skipped)
        std::printf(" | skipped: inf/nan gradients%s",
                    plan.precision->dynamic_loss_scaling
                        ? ", loss scale halved"
                        : "");
      std::printf("\n");
      std::fflush(stdout);
    }
    std::string evalFields;
    if (evaluatesNow && !evaluate(evalFields))
      return 1;
    if (json) {
      std::ostringstream line;
      line << "{\"step\": " << m->step << ", \"loss\": " << jsonNumber(m->loss)
           << ", \"grad_norm\": " << jsonNumber(m->gradNorm)
           << ", \"lr\": " << jsonNumber(m->lr)
           << ", \"loss_scale\": " << jsonNumber(m->lossScale)
           << ", \"skipped\": " << (m->skipped ? "true" : "false")
           << ", \"tokens_per_s\": " << jsonNumber(tokensPerSecond)
           << ", \"elapsed_s\": " << jsonNumber(elapsed) << evalFields << "}\n";
      if (!writeJson(line.str()))
        return 1;
    }
    if (tracer && m->step >= tracer->lastStep() && !writeTrace()) {
      // The trace was asked for: keep what training did, then fail.
      if (values.count("--save") && !job)
        save(values["--save"]);
      return failed("the trace was not written");
    }
    if (saveInterval > 0 && values.count("--save") &&
        m->step % saveInterval == 0 && m->step != steps &&
        !save(values["--save"]))
      return 1;
  }
  if (values.count("--memory-report")) {
    // What each rank's executors allocated, beside loomc --explain's
    // prediction, and the process's peak resident set (which also holds
    // the program, OpenBLAS's buffers and the host's copies).
    struct rusage usage {};
    ::getrusage(RUSAGE_SELF, &usage);
    for (const Session::RankMemory &m : session.memoryUse())
      std::cout << "memory: rank " << m.rank << " (stage " << m.stage
                << "): arenas " << m.arenas << " bytes, runtime " << m.runtime
                << " bytes, total " << m.arenas + m.runtime
                << " bytes; process peak RSS "
                << int64_t(usage.ru_maxrss) * 1024 << " bytes\n";
    std::cout.flush();
  }
  // A trace that cannot be written fails the run, after the checkpoint.
  bool traced = writeTrace();
  if (values.count("--save") && !save(values["--save"]))
    return 1;
  return endRun(traced);
}
