//===- loomc.cpp - Loom's compiler driver ---------------------------------===//
//
// Reads a model (the model language, or loom IR), checks it and reports or
// prints it. Partitioning and plan emission plug in behind the same driver.
//
//===----------------------------------------------------------------------===//

#include "loom/Analysis/ModelSummary.h"
#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/Plan/PlanBuilder.h"
#include "loom/Plan/RecomputePlanner.h"
#include "loom/Plan/TrainingPipeline.h"
#include "loom/Report/SavedTensors.h"
#include "loom/Report/StepReport.h"
#include "loom/dialects/Dist/IR/DistDialect.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/dialects/Loom/IR/LoomOps.h"
#include "loom/passes/Passes.h"
#include "loom/runtime/Plan.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/StringSaver.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/thread.h"

#include <cmath>
#include <sstream>

using namespace mlir;
namespace cl = llvm::cl;

namespace {

cl::OptionCategory loomcCategory("loomc options");

cl::opt<std::string>
    inputFilename(cl::Positional, cl::Required,
                  cl::desc("<model file: .loom, or .mlir in the loom dialect>"),
                  cl::cat(loomcCategory));

cl::opt<std::string>
    outputFilename("o",
                   cl::desc("Write the output to this file (default: standard "
                            "output)"),
                   cl::value_desc("file"), cl::init("-"),
                   cl::cat(loomcCategory));

enum class Emit { None, Loom, Dist, Step, PlanText, Kernels };
cl::opt<Emit> emitAction(
    "emit", cl::desc("Print the model at a level of the compiler:"),
    cl::init(Emit::None),
    cl::values(clEnumValN(Emit::Loom, "loom",
                          "the loom dialect (global shapes, after "
                          "verification); loom-opt reads it"),
               clEnumValN(Emit::Dist, "dist",
                          "the program one rank runs on the --mesh: local "
                          "shapes, shardings and dist collectives, before "
                          "differentiation"),
               clEnumValN(Emit::Step, "step",
                          "the training step in the loom dialect: loss "
                          "normalised over the global batch, the precision "
                          "policy, every parameter's gradient"),
               clEnumValN(Emit::PlanText, "plan-text",
                          "the plan (the exec level) as text: buffers with "
                          "arena offsets, the microbatch and optimizer "
                          "programs"),
               clEnumValN(Emit::Kernels, "kernels",
                          "the generated kernels of the plan: each one's "
                          "arguments, launch rule, host C++ and CUDA C++ "
                          "(docs/codegen.md)")),
    cl::cat(loomcCategory));

cl::opt<bool> noFuse(
    "no-fuse",
    cl::desc("Build the plan without fusion regions: every op runs its "
             "reference kernel (for comparing against the generated kernels)"),
    cl::init(false), cl::cat(loomcCategory));

cl::OptionCategory meshCategory("parallelism options");
cl::opt<std::string> meshSpec(
    "mesh",
    cl::desc("The device mesh, e.g. dp=2,tp=4 (axes dp, pp, tp; default: one "
             "rank). --micro-batch-size is per data-parallel rank"),
    cl::value_desc("dp=D,tp=T"), cl::init(""), cl::cat(meshCategory));
cl::opt<double> gradBucketMb(
    "grad-bucket-mb",
    cl::desc(
        "Data parallelism all-reduces gradients in buckets of about this "
        "many MB (default 25, PyTorch DDP's; Megatron's --ddp-bucket-size). "
        "Smaller buckets start reducing earlier in the backward"),
    cl::value_desc("MB"), cl::init(25), cl::cat(meshCategory));
cl::opt<bool> distributedOptimizer(
    "distributed-optimizer",
    cl::desc("Shard AdamW's moments over dp (ZeRO-1, Megatron's "
             "--use-distributed-optimizer): gradients are reduce-scattered, "
             "each dp rank updates its 1/dp of every bucket and the "
             "parameters are all-gathered. A no-op with dp = 1"),
    cl::init(false), cl::cat(meshCategory));
cl::opt<bool> sequenceParallel(
    "sequence-parallel",
    cl::desc("Split the layernorm and dropout regions along the sequence "
             "over tp (reduce-scatter/all-gather instead of all-reduce)"),
    cl::init(false), cl::cat(meshCategory));
cl::opt<std::string> scheduleSpec(
    "schedule",
    cl::desc("Pipeline schedule with pp > 1: gpipe, 1f1b (default), "
             "interleaved:V (V virtual chunks per stage), or file:PATH (a "
             "schedule in --explain=schedule's text form, checked for "
             "deadlock)"),
    cl::value_desc("gpipe|1f1b|interleaved:V|file:PATH"), cl::init("1f1b"),
    cl::cat(meshCategory));
cl::opt<std::string> pipelineLayout(
    "pipeline-layout",
    cl::desc("Layers per pipeline chunk, e.g. 3,3,2,2 (default: balanced by "
             "the cost model)"),
    cl::init(""), cl::cat(meshCategory));
cl::OptionCategory memoryCategory("memory options");
cl::opt<std::string> recomputeMode(
    "recompute",
    cl::desc("Activation recomputation (docs/memory.md): none (store what "
             "the backward reads; the default), selective (recompute the "
             "attention core: scores, softmax, its dropout), full (keep each "
             "layer's input only), auto (the least recomputation whose "
             "memory plan fits --memory-budget, per stage)"),
    cl::value_desc("none|selective|full|auto"), cl::init("none"),
    cl::cat(memoryCategory));
cl::opt<std::string> memoryBudget(
    "memory-budget",
    cl::desc("Bytes one rank may hold (its arenas: parameters, gradients, "
             "optimizer state, activations), e.g. 80GB, 75GiB or a byte "
             "count: --recompute auto fits it; with another mode a plan over "
             "it is an error"),
    cl::value_desc("BYTES"), cl::init(""), cl::cat(memoryCategory));

enum class Explain { None, Summary, Schedule, Tensors };
cl::opt<Explain> explain(
    "explain", cl::ValueOptional,
    cl::desc("Report what the plan holds, computes and sends per rank "
             "(docs/memory.md), and with a pipeline its schedule: per stage "
             "its steps, the most microbatches in flight and its idle share, "
             "and the bubble fraction"),
    cl::init(Explain::None),
    cl::values(clEnumValN(Explain::Summary, "summary",
                          "those tables (what --explain alone prints)"),
               clEnumValN(Explain::Schedule, "schedule",
                          "every stage's steps too, in the form --schedule "
                          "file: reads"),
               clEnumValN(Explain::Tensors, "tensors",
                          "also the tensors each layer keeps for its "
                          "backward, with their bytes"),
               clEnumValN(Explain::Summary, "", "")),
    cl::cat(meshCategory));
cl::opt<std::string> scheduleSvg(
    "schedule-svg", cl::desc("Draw the pipeline schedule into this SVG file"),
    cl::value_desc("file"), cl::init(""), cl::cat(meshCategory));

// The --explain report's device (lib/Analysis/StepReport.cpp; the numbers
// and their sources: docs/memory.md).
cl::OptionCategory explainCategory("--explain options (a predicted step)");
cl::opt<std::string> deviceModel(
    "device-model",
    cl::desc("Predict the step time, MFU and fit on this GPU: a100, h100 or "
             "h200 (the --device-* flags override its numbers)"),
    cl::value_desc("name"), cl::init(""), cl::cat(explainCategory));
cl::opt<std::string> deviceFlops(
    "device-flops",
    cl::desc("Peak dense FLOP/s at the plan's compute precision, e.g. 312T"),
    cl::init(""), cl::cat(explainCategory));
cl::opt<std::string>
    deviceMemory("device-memory",
                 cl::desc("Device memory in bytes, e.g. 80GiB"), cl::init(""),
                 cl::cat(explainCategory));
cl::opt<std::string> deviceBandwidth(
    "device-bandwidth",
    cl::desc("Device memory bandwidth in bytes/s, e.g. 2.039TB/s"),
    cl::init(""), cl::cat(explainCategory));
cl::opt<std::string> intraNodeBandwidth(
    "intra-node-bandwidth",
    cl::desc("Bytes/s one GPU sends inside a node (NVLink, one direction), "
             "e.g. 300GB/s"),
    cl::init(""), cl::cat(explainCategory));
cl::opt<std::string> interNodeBandwidth(
    "inter-node-bandwidth",
    cl::desc("Bytes/s one GPU sends to another node (one direction), e.g. "
             "25GB/s"),
    cl::init(""), cl::cat(explainCategory));
cl::opt<int64_t> gpusPerNode(
    "gpus-per-node",
    cl::desc("GPUs per node: an axis whose group fits in one uses the "
             "intra-node bandwidth (default 8)"),
    cl::init(8), cl::cat(explainCategory));
cl::opt<double> computeEfficiency(
    "compute-efficiency",
    cl::desc("The fraction of peak FLOP/s the step's compute reaches "
             "(default 0.6: docs/memory.md)"),
    cl::init(loom::kDefaultComputeEfficiency), cl::cat(explainCategory));
cl::opt<std::string> memorySvgFile(
    "memory-svg",
    cl::desc("With --explain: draw each stage's memory over the step into "
             "this SVG file"),
    cl::value_desc("file"), cl::init(""), cl::cat(explainCategory));

/// The device --device-model and the --device-* flags describe, if any;
/// false (with a message) when one is not valid.
bool explainDevice(std::optional<loom::DeviceModel> &device) {
  if (!deviceModel.empty()) {
    device = loom::findDeviceModel(deviceModel);
    if (!device) {
      llvm::errs() << "loomc: --device-model " << deviceModel
                   << ": not a device model; choose one of "
                   << loom::deviceModelNames() << "\n";
      return false;
    }
  }
  cl::opt<std::string> *numbers[] = {&deviceFlops, &deviceMemory,
                                     &deviceBandwidth, &intraNodeBandwidth,
                                     &interNodeBandwidth};
  bool any = false;
  for (cl::opt<std::string> *flag : numbers)
    any = any || flag->getNumOccurrences() > 0;
  if (any && !device) {
    if (deviceFlops.empty()) {
      llvm::errs() << "loomc: --device-flops is needed without a "
                      "--device-model (the other numbers default to 0: no "
                      "limit)\n";
      return false;
    }
    device = loom::DeviceModel{"custom"};
  }
  for (cl::opt<std::string> *flag : numbers) {
    if (flag->getNumOccurrences() == 0)
      continue;
    std::optional<double> value = loom::parseQuantity(*flag);
    if (!value) {
      llvm::errs() << "loomc: --" << flag->ArgStr << " " << *flag
                   << ": give a positive number, e.g. 312e12, 312T or "
                      "80GiB\n";
      return false;
    }
    if (flag == &deviceFlops)
      device->flops16 = device->flops32 = *value;
    else if (flag == &deviceMemory)
      device->memoryBytes = *value;
    else if (flag == &deviceBandwidth)
      device->memoryBandwidth = *value;
    else if (flag == &intraNodeBandwidth)
      device->intraNodeBandwidth = *value;
    else
      device->interNodeBandwidth = *value;
  }
  if (!(computeEfficiency > 0 && computeEfficiency <= 1)) {
    llvm::errs() << "loomc: --compute-efficiency "
                 << llvm::format("%g", double(computeEfficiency))
                 << ": give a fraction in (0, 1]\n";
    return false;
  }
  if (gpusPerNode < 1) {
    llvm::errs() << "loomc: --gpus-per-node must be at least 1\n";
    return false;
  }
  if (device)
    device->gpusPerNode = gpusPerNode;
  return true;
}
/// The mesh's tp, for the model language's `tp` (set once main parses --mesh).
int64_t tensorParallelSize = 1;

// The training step's settings. The optimizer's are the plan's defaults;
// loom-run takes the same options to override them.
cl::OptionCategory trainCategory("training step options (written into the plan)");

enum class Precision { F32, BF16, F16 };
cl::opt<Precision> precision(
    "precision", cl::desc("Compute precision (master weights and gradients "
                          "are f32 either way):"),
    cl::init(Precision::F32),
    cl::values(clEnumValN(Precision::F32, "f32", "f32 throughout (default)"),
               clEnumValN(Precision::BF16, "bf16", "bf16 activations"),
               clEnumValN(Precision::F16, "f16",
                          "f16 activations with dynamic loss scaling")),
    cl::cat(trainCategory));
cl::opt<double> lr("lr", cl::desc("Peak learning rate (default 3e-4)"),
                   cl::init(3e-4), cl::cat(trainCategory));
cl::opt<double> minLr("min-lr",
                      cl::desc("Learning rate at the end of the decay "
                               "(default 3e-5)"),
                      cl::init(3e-5), cl::cat(trainCategory));
cl::opt<int64_t> warmup("warmup",
                        cl::desc("Linear warm-up steps (default 0)"),
                        cl::init(0), cl::cat(trainCategory));
cl::opt<int64_t> decaySteps(
    "decay-steps",
    cl::desc("Step at which the decay reaches --min-lr (default 0: no "
             "decay; loom-run sets it to --steps unless given)"),
    cl::init(0), cl::cat(trainCategory));
cl::opt<std::string> decayStyle("decay-style",
                                cl::desc("cosine (default), linear or "
                                         "constant"),
                                cl::init("cosine"), cl::cat(trainCategory));
cl::opt<double> weightDecay("weight-decay",
                            cl::desc("AdamW's decoupled weight decay, not "
                                     "applied to biases and 1-D weights "
                                     "(default 0.01)"),
                            cl::init(0.01), cl::cat(trainCategory));
cl::opt<double> clipGrad("clip-grad",
                         cl::desc("Clip gradients to this global norm; 0 "
                                  "turns clipping off (default 1.0)"),
                         cl::init(1.0), cl::cat(trainCategory));
cl::opt<double> adamBeta1("adam-beta1", cl::desc("AdamW beta1 (default 0.9)"),
                          cl::init(0.9), cl::cat(trainCategory));
cl::opt<double> adamBeta2("adam-beta2",
                          cl::desc("AdamW beta2 (default 0.999)"),
                          cl::init(0.999), cl::cat(trainCategory));
cl::opt<double> adamEps("adam-eps", cl::desc("AdamW epsilon (default 1e-8)"),
                        cl::init(1e-8), cl::cat(trainCategory));
cl::opt<double> initialLossScale(
    "initial-loss-scale",
    cl::desc("f16: the loss scale to start from (default 2^32)"),
    cl::init(4294967296.0), cl::cat(trainCategory));
cl::opt<double> minLossScale("min-loss-scale",
                             cl::desc("f16: the smallest loss scale "
                                      "(default 1)"),
                             cl::init(1.0), cl::cat(trainCategory));
cl::opt<int64_t> lossScaleWindow(
    "loss-scale-window",
    cl::desc("f16: steps without overflow before the scale doubles "
             "(default 1000)"),
    cl::init(1000), cl::cat(trainCategory));

cl::opt<bool> summary("summary",
                      cl::desc("Print the model: parameters by block, layers, "
                               "FLOPs per execution, ops, tensor shapes"),
                      cl::cat(loomcCategory));

cl::opt<bool> json("json",
                   cl::desc("With --summary: print it as one JSON object"),
                   cl::cat(loomcCategory));

cl::list<std::string>
    defines("D", cl::Prefix,
            cl::desc("Override a config of a .loom model: -D hidden=2048 "
                     "(repeatable; configs computed from it follow)"),
            cl::value_desc("name=value"), cl::cat(loomcCategory));

cl::opt<int64_t> microBatchSize(
    "micro-batch-size",
    cl::desc("Sequences per data-parallel rank per microbatch: the size of "
             "the model's `batch` dimension (default 1)"),
    cl::init(1), cl::cat(loomcCategory));

cl::opt<int64_t> globalBatchSize(
    "global-batch-size",
    cl::desc("Sequences per training step, a multiple of --micro-batch-size "
             "(default: the micro-batch size)"),
    cl::init(0), cl::cat(loomcCategory));

cl::opt<std::string>
    modelName("model",
              cl::desc("Which model of the file to compile, when it has "
                       "several"),
              cl::value_desc("name"), cl::init(""), cl::cat(loomcCategory));

/// Builds the module of a .loom file; diagnostics go through `sourceMgr`.
OwningOpRef<ModuleOp> buildFromModelFile(llvm::SourceMgr &sourceMgr,
                                         MLIRContext &context) {
  const llvm::MemoryBuffer *buffer =
      sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
  llvm::StringRef filename = buffer->getBufferIdentifier();

  // The standard library is a buffer too, so its diagnostics show its lines.
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBuffer(loom::standardLibrarySource(),
                                       loom::standardLibraryName()),
      llvm::SMLoc());
  FailureOr<loom::ast::File> library = loom::parseModelFile(
      loom::standardLibrarySource(), loom::standardLibraryName(), &context);
  if (failed(library))
    return nullptr;

  FailureOr<loom::ast::File> file =
      loom::parseModelFile(buffer->getBuffer(), filename, &context);
  if (failed(file))
    return nullptr;
  if (file->models.empty()) {
    bool blank = buffer->getBuffer().trim().empty();
    emitError(FileLineColLoc::get(&context, filename, 1, 1))
        << (blank ? "the file is empty" : "the file defines no model")
        << "; a model file holds `model NAME { ... }` (docs/language.md "
           "walks through examples/gpt.loom)";
    return nullptr;
  }

  loom::ModelOptions options;
  for (const std::string &define : defines) {
    auto [name, value] = llvm::StringRef(define).split('=');
    if (!llvm::StringRef(define).contains('=') || name.trim().empty()) {
      llvm::errs() << "loomc: -D " << define
                   << ": write -D NAME=VALUE, e.g. -D hidden=2048\n";
      return nullptr;
    }
    options.overrides.push_back({name.trim().str(), value.trim().str()});
  }
  options.microBatchSize = microBatchSize;
  options.globalBatchSize = globalBatchSize;
  options.tensorParallel = tensorParallelSize;
  options.modelName = modelName;
  FailureOr<OwningOpRef<ModuleOp>> module =
      loom::buildModel(*file, *library, options, &context);
  if (failed(module))
    return nullptr;
  // The builder checks every op as it builds it; this is the last word.
  if (failed(verify(**module)))
    return nullptr;
  return std::move(*module);
}

/// The contents of a file loomc reads (the model, a response file, a
/// schedule): a regular file of at most `maxBytes`, checked before it is
/// read, so that a directory, a FIFO or /dev/zero is a message rather than
/// a read that never ends. "-" is standard input.
std::unique_ptr<llvm::MemoryBuffer>
readInputFile(llvm::StringRef path, uint64_t maxBytes, std::string &error) {
  if (path == "-")
    return openInputFile(path, &error);
  llvm::sys::fs::file_status status;
  if (std::error_code ec = llvm::sys::fs::status(path, status)) {
    error = ec.message();
    return nullptr;
  }
  if (llvm::sys::fs::is_directory(status)) {
    error = "it is a directory; name a file";
    return nullptr;
  }
  if (!llvm::sys::fs::is_regular_file(status)) {
    error = "it is not a regular file (a device, a FIFO or a socket); name "
            "a file";
    return nullptr;
  }
  if (status.getSize() > maxBytes) {
    error = "it has " + std::to_string(status.getSize()) +
            " bytes, more than the " + std::to_string(maxBytes) +
            " such a file may have";
    return nullptr;
  }
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer) {
    error = buffer.getError().message();
    return nullptr;
  }
  return std::move(*buffer);
}

/// Expands each @FILE argument into the arguments FILE holds (GNU quoting,
/// as llvm::cl does), an @FILE inside FILE relative to FILE's directory.
/// llvm::cl leaves a missing file as an argument ("Too many positional
/// arguments") and reports a directory or a file that includes itself but
/// parses on, so loomc expands them first: false, with a message naming the
/// file, for any of those.
bool expandResponseFiles(ArrayRef<const char *> in, llvm::StringRef dir,
                         std::vector<std::string> &including,
                         llvm::StringSaver &saver,
                         SmallVectorImpl<const char *> &out) {
  for (const char *arg : in) {
    if (arg[0] != '@') {
      out.push_back(arg);
      continue;
    }
    llvm::StringRef name(arg + 1);
    llvm::SmallString<256> path(name);
    if (!dir.empty() && llvm::sys::path::is_relative(path)) {
      path = dir;
      llvm::sys::path::append(path, name);
    }
    auto fail = [&](const llvm::Twine &why) {
      llvm::errs() << "loomc: response file @" << path << ": " << why << "\n";
      return false;
    };
    if (name.empty())
      return fail("give a file name after '@' (@FILE reads more arguments "
                  "from FILE)");
    llvm::SmallString<256> real;
    if (std::error_code ec = llvm::sys::fs::real_path(path, real))
      return fail(ec.message());
    if (llvm::is_contained(including, std::string(real))) {
      std::string chain;
      for (const std::string &file : including)
        chain += file + " -> ";
      return fail("it includes itself (" + chain + std::string(real) +
                  "); remove the @ that leads back to it");
    }
    std::string error;
    std::unique_ptr<llvm::MemoryBuffer> buffer =
        readInputFile(path, /*maxBytes=*/1 << 20, error);
    if (!buffer)
      return fail(error);
    SmallVector<const char *> args;
    cl::TokenizeGNUCommandLine(buffer->getBuffer(), saver, args);
    including.push_back(std::string(real));
    bool ok = expandResponseFiles(args, llvm::sys::path::parent_path(path),
                                  including, saver, out);
    including.pop_back();
    if (!ok)
      return false;
  }
  return true;
}

/// Every training option's range, checked in one place after llvm::cl has
/// parsed them (it accepts inf, nan and 1e400 for a double), each message
/// naming the option and what it accepts.
LogicalResult checkOptions() {
  auto refuse = [](llvm::StringRef option, auto value, llvm::StringRef range) {
    llvm::errs() << "loomc: --" << option << " ";
    if constexpr (std::is_floating_point_v<decltype(value)>)
      llvm::errs() << llvm::format("%g", double(value));
    else
      llvm::errs() << value;
    llvm::errs() << " is out of range; use " << range << "\n";
    return failure();
  };
  auto finite = [](double x) { return std::isfinite(x); };
  // Steps and windows: 2^40 steps is past any run, and keeps the runtime's
  // step arithmetic far from int64's end.
  const int64_t maxSteps = int64_t(1) << 40;
  if (!(finite(lr) && lr > 0))
    return refuse("lr", double(lr), "a finite number > 0");
  if (!(finite(minLr) && minLr >= 0 && minLr <= lr))
    return refuse("min-lr", double(minLr), "a number from 0 to --lr");
  if (warmup < 0 || warmup > maxSteps)
    return refuse("warmup", int64_t(warmup), "0 to 2^40 steps");
  if (decaySteps < 0 || decaySteps > maxSteps)
    return refuse("decay-steps", int64_t(decaySteps),
                  "0 (no decay) to 2^40 steps");
  if (decayStyle != "cosine" && decayStyle != "linear" &&
      decayStyle != "constant") {
    llvm::errs() << "loomc: --decay-style " << decayStyle
                 << ": use cosine, linear or constant\n";
    return failure();
  }
  if (!(finite(weightDecay) && weightDecay >= 0))
    return refuse("weight-decay", double(weightDecay), "a finite number >= 0");
  if (!(finite(clipGrad) && clipGrad >= 0))
    return refuse("clip-grad", double(clipGrad),
                  "a finite number >= 0 (0 turns clipping off)");
  if (!(adamBeta1 >= 0 && adamBeta1 < 1))
    return refuse("adam-beta1", double(adamBeta1), "a number in [0, 1)");
  if (!(adamBeta2 >= 0 && adamBeta2 < 1))
    return refuse("adam-beta2", double(adamBeta2), "a number in [0, 1)");
  if (!(finite(adamEps) && adamEps > 0))
    return refuse("adam-eps", double(adamEps), "a finite number > 0");
  // The loss scale multiplies an f32 loss: past 1e30 it overflows f32.
  if (!(finite(minLossScale) && minLossScale > 0 && minLossScale <= 1e30))
    return refuse("min-loss-scale", double(minLossScale),
                  "a number > 0, at most 1e30");
  if (!(finite(initialLossScale) && initialLossScale > 0 &&
        initialLossScale <= 1e30))
    return refuse("initial-loss-scale", double(initialLossScale),
                  "a number > 0, at most 1e30");
  if (precision == Precision::F16 && initialLossScale < minLossScale)
    return refuse("initial-loss-scale", double(initialLossScale),
                  "a number >= --min-loss-scale");
  // 1 KB to 1 TB: a bucket is at least a kilobyte of gradients.
  if (!(gradBucketMb >= 1e-3 && gradBucketMb <= 1e6))
    return refuse("grad-bucket-mb", double(gradBucketMb),
                  "a number from 0.001 to 1e6 (MB)");
  if (lossScaleWindow < 1 || lossScaleWindow > maxSteps)
    return refuse("loss-scale-window", int64_t(lossScaleWindow),
                  "1 to 2^40 steps");
  // Below 1 the model builder says what is wrong (loom IR does not read
  // these); the bound above keeps batch x sequence inside int64.
  if (microBatchSize > loom::kMaxBatchSize)
    return refuse("micro-batch-size", int64_t(microBatchSize),
                  "1 to 2^30 sequences");
  if (globalBatchSize > loom::kMaxBatchSize)
    return refuse("global-batch-size", int64_t(globalBatchSize),
                  "1 to 2^30 sequences (0: the micro-batch size)");
  return success();
}

loom::PlanOptions planOptions() {
  loom::PlanOptions options;
  loom::plan::OptimizerDefaultsT &o = options.optimizer;
  o.lr = lr;
  o.min_lr = minLr;
  o.warmup_steps = warmup;
  o.decay_steps = decaySteps;
  o.decay_style = decayStyle;
  o.weight_decay = weightDecay;
  o.clip_grad = clipGrad;
  o.beta1 = adamBeta1;
  o.beta2 = adamBeta2;
  o.eps = adamEps;
  loom::plan::PrecisionPolicyT &p = options.precision;
  p.compute = precision == Precision::BF16  ? loom::plan::DType::BF16
              : precision == Precision::F16 ? loom::plan::DType::F16
                                            : loom::plan::DType::F32;
  p.dynamic_loss_scaling = precision == Precision::F16;
  p.initial_loss_scale = p.dynamic_loss_scaling ? double(initialLossScale) : 1;
  p.min_loss_scale = minLossScale;
  p.loss_scale_window = lossScaleWindow;
  options.gradBucketBytes = int64_t(gradBucketMb * double(1 << 20));
  return options;
}

/// An output path a file can be written at: not empty, not a directory, in
/// a directory that exists, and not the model being read.
LogicalResult checkOutputPath(llvm::StringRef option, llvm::StringRef path) {
  if (path == "-")
    return success();
  auto refuse = [&](const llvm::Twine &why) {
    llvm::errs() << "loomc: " << option << " " << path << " " << why << "\n";
    return failure();
  };
  if (path.empty()) {
    llvm::errs() << "loomc: " << option
                 << " needs a file name (got an empty one)\n";
    return failure();
  }
  if (llvm::sys::fs::is_directory(path))
    return refuse("is a directory; name a file in it, e.g. " + path + "/out" +
                  (option == "-o" ? ".plan" : ".svg"));
  llvm::StringRef parent = llvm::sys::path::parent_path(path);
  if (!parent.empty() && !llvm::sys::fs::is_directory(parent))
    return refuse("is in " + parent +
                  ", which is not a directory that "
                  "exists");
  if (llvm::sys::fs::equivalent(path, inputFilename))
    return refuse("is the model file; name another file to write");
  return success();
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions({&loomcCategory, &meshCategory, &memoryCategory,
                            &trainCategory, &explainCategory});
  llvm::BumpPtrAllocator allocator;
  llvm::StringSaver saver(allocator);
  SmallVector<const char *> args;
  std::vector<std::string> including;
  if (!expandResponseFiles(ArrayRef(argv, argc), "", including, saver, args))
    return 1;
  if (!cl::ParseCommandLineOptions(
          int(args.size()), args.data(),
          "loomc: Loom's compiler driver\n\n"
          "  loomc examples/gpt.loom --summary [--json] [-D layers=24 ...]\n"
          "  loomc examples/gpt.loom -D layers=2 --global-batch-size 8 -o "
          "gpt.plan\n"
          "  loomc examples/gpt.loom --emit=plan-text\n"
          "  loomc examples/gpt.loom --mesh dp=2,tp=2 --sequence-parallel -o "
          "gpt.plan\n"
          "  loomc examples/gpt.loom --mesh tp=2 --emit=dist\n"
          "  loomc examples/gpt.loom --emit=loom [-o gpt.mlir]\n"
          "  loomc model.mlir --summary       (loom IR, as loom-opt reads "
          "it)\n\n"
          "  A response file holds more arguments: loomc examples/gpt.loom "
          "@examples/configs/gpt2-355m.args --summary (an @FILE inside one "
          "is relative to its directory)\n"))
    return 1;

  if (json && !summary && explain == Explain::None) {
    llvm::errs() << "loomc: --json goes with --summary or --explain\n";
    return 1;
  }
  // Given at all: an empty --schedule-svg is refused, not ignored.
  bool drawsSchedule = scheduleSvg.getNumOccurrences() > 0;
  bool reportsSchedule = explain != Explain::None || drawsSchedule;
  bool writesPlan = !summary && emitAction == Emit::None &&
                    (!reportsSchedule || outputFilename != "-");
  if (writesPlan && outputFilename == "-") {
    llvm::errs() << "loomc: name the plan file with -o (loomc MODEL -o "
                    "model.plan), or pass --summary or --emit=... to print "
                    "(see loomc --help)\n";
    return 1;
  }
  if (failed(checkOutputPath("-o", outputFilename)) ||
      (drawsSchedule && failed(checkOutputPath("--schedule-svg", scheduleSvg))))
    return 1;
  // What goes to standard output must stay readable as one thing.
  bool printsOutput = summary || emitAction != Emit::None;
  if (scheduleSvg == "-" &&
      (explain != Explain::None || (printsOutput && outputFilename == "-"))) {
    llvm::errs() << "loomc: --schedule-svg - and another report would share "
                    "standard output; write the SVG to a file\n";
    return 1;
  }
  if (json && summary && explain != Explain::None && outputFilename == "-") {
    llvm::errs() << "loomc: --json with --summary and --explain would print "
                    "two JSON objects; write the summary to a file with -o\n";
    return 1;
  }
  if (drawsSchedule && scheduleSvg != "-" && outputFilename != "-" &&
      llvm::StringRef(scheduleSvg) == llvm::StringRef(outputFilename)) {
    llvm::errs() << "loomc: -o and --schedule-svg name the same file, "
                 << outputFilename << "; name two files\n";
    return 1;
  }
  if (failed(checkOptions()))
    return 1;
  loom::PlanOptions options = planOptions();
  options.fuseOptimizer = !noFuse;
  options.distributedOptimizer = distributedOptimizer;
  int64_t pipelineStages = 1, chunksPerStage = 1;
  if (!meshSpec.empty()) {
    std::string meshError;
    auto axes = loom::parseMeshSpec(meshSpec, meshError);
    if (failed(axes)) {
      llvm::errs() << "loomc: --mesh " << meshSpec << ": " << meshError << "\n";
      return 1;
    }
    // The axes come as dp, pp, tp.
    pipelineStages = (*axes)[1].second;
    tensorParallelSize = (*axes)[2].second;
  }
  {
    llvm::StringRef spec = scheduleSpec;
    if (spec == "gpipe" || spec == "1f1b") {
      options.schedule = spec.str();
    } else if (spec.consume_front("file:")) {
      // A schedule written by hand, in --explain=schedule's text form.
      if (spec.empty()) {
        llvm::errs() << "loomc: --schedule file: needs a path, e.g. "
                        "--schedule file:my.schedule\n";
        return 1;
      }
      std::string fileError;
      auto file = readInputFile(spec, /*maxBytes=*/uint64_t(1) << 28, fileError);
      if (!file) {
        llvm::errs() << "loomc: --schedule file:" << spec << ": " << fileError
                     << "\n";
        return 1;
      }
      options.schedule = "custom";
      options.scheduleName = spec.str();
      options.scheduleText = file->getBuffer().str();
      // Its form is checked here, naming the file and line; the plan
      // builder checks the steps against the pipeline's m.
      std::optional<int64_t> chunks = loom::pipeline::scheduleTextChunks(
          options.scheduleText, pipelineStages, fileError);
      if (!chunks) {
        llvm::errs() << "loomc: --schedule file:" << spec << ": " << fileError
                     << "\n";
        return 1;
      }
      chunksPerStage = *chunks;
    } else if (spec.consume_front("interleaved")) {
      options.schedule = "interleaved";
      if (!spec.consume_front(":") || spec.getAsInteger(10, chunksPerStage) ||
          chunksPerStage < 2) {
        llvm::errs() << "loomc: --schedule " << scheduleSpec
                     << ": give the virtual chunks per stage, "
                        "interleaved:V with V >= 2 (e.g. interleaved:2)\n";
        return 1;
      }
      // Each chunk holds a layer: V past 2^20 can never be cut.
      if (chunksPerStage > (int64_t(1) << 20)) {
        llvm::errs() << "loomc: --schedule " << scheduleSpec
                     << ": V is at most the layers per stage (and 2^20)\n";
        return 1;
      }
    } else {
      llvm::errs() << "loomc: --schedule " << scheduleSpec
                   << ": use gpipe, 1f1b, interleaved:V or file:PATH\n";
      return 1;
    }
  }
  std::optional<int64_t> budgetBytes;
  if (!memoryBudget.empty()) {
    budgetBytes = loom::parseByteSize(memoryBudget);
    if (!budgetBytes) {
      llvm::errs() << "loomc: --memory-budget '" << memoryBudget
                   << "' is not a size: give bytes, or a number with KB, MB, "
                      "GB, TB, KiB, MiB, GiB or TiB (e.g. 80GB)\n";
      return 1;
    }
  }
  if (recomputeMode != "none" && recomputeMode != "selective" &&
      recomputeMode != "full" && recomputeMode != "auto") {
    llvm::errs() << "loomc: --recompute '" << recomputeMode
                 << "' is not one of none, selective, full, auto\n";
    return 1;
  }
  if (recomputeMode == "auto" && !budgetBytes) {
    llvm::errs() << "loomc: --recompute auto picks the least recomputation "
                    "that fits a memory budget: give --memory-budget (e.g. "
                    "--memory-budget 80GB)\n";
    return 1;
  }
  if ((drawsSchedule || explain == Explain::Schedule) && pipelineStages == 1) {
    llvm::errs() << "loomc: --explain=schedule and --schedule-svg report a "
                    "pipeline schedule; give a --mesh with pp > 1\n";
    return 1;
  }
  std::optional<loom::DeviceModel> device;
  if (!explainDevice(device))
    return 1;
  bool drawsMemory = memorySvgFile.getNumOccurrences() > 0;
  if ((drawsMemory || device) && explain == Explain::None) {
    llvm::errs() << "loomc: --memory-svg, --device-model and the --device-* "
                    "flags go with --explain\n";
    return 1;
  }
  if (drawsMemory && (memorySvgFile == "-" ||
                      failed(checkOutputPath("--memory-svg", memorySvgFile)))) {
    if (memorySvgFile == "-")
      llvm::errs() << "loomc: --memory-svg - would share standard output "
                      "with the report; write the SVG to a file\n";
    return 1;
  }
  // Settings of a pipeline, given without one, would be dropped silently.
  if (pipelineStages == 1 && (scheduleSpec.getNumOccurrences() > 0 ||
                              pipelineLayout.getNumOccurrences() > 0)) {
    llvm::errs() << "loomc: --schedule and --pipeline-layout set up a "
                    "pipeline; give a --mesh with pp > 1\n";
    return 1;
  }
  if (sequenceParallel && tensorParallelSize == 1) {
    llvm::errs() << "loomc: --sequence-parallel splits the sequence over tp; "
                    "give a --mesh with tp > 1\n";
    return 1;
  }
  if (emitAction == Emit::Dist && meshSpec.empty()) {
    llvm::errs() << "loomc: --emit=dist prints the program of a --mesh; give "
                    "one, e.g. --mesh tp=2\n";
    return 1;
  }
  bool isModelFile = llvm::StringRef(inputFilename).ends_with(".loom");
  if (!isModelFile && (!defines.empty() || !modelName.empty())) {
    llvm::errs() << "loomc: -D and --model apply to .loom model files; "
                 << inputFilename << " is read as loom IR\n";
    return 1;
  }

  DialectRegistry registry;
  registry.insert<loom::LoomDialect, loom::dist::DistDialect, func::FuncDialect>();
  func::registerInlinerExtension(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  // Users read the source line and caret; the generic form of the op is noise.
  context.printOpOnDiagnostic(false);

  std::string error;
  // A model file or loom IR: 1 GiB is far past any model (GPT-1T's loom IR
  // is a few MB).
  std::unique_ptr<llvm::MemoryBuffer> input =
      readInputFile(inputFilename, uint64_t(1) << 30, error);
  if (!input) {
    llvm::errs() << "loomc: cannot read the model '" << inputFilename
                 << "': " << error << "\n";
    return 1;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  // The front end recurses once per nesting level, bounded at 512 levels
  // (under 1 MB of stack in a release build); sanitizer builds take several
  // times the stack a level, more than a main thread's 8 MB, so it runs on a
  // thread with room to spare.
  OwningOpRef<ModuleOp> module;
  llvm::thread frontEnd(std::optional<unsigned>(64u << 20), [&] {
    module = isModelFile ? buildFromModelFile(sourceMgr, context)
                         : parseSourceFile<ModuleOp>(sourceMgr, &context);
  });
  frontEnd.join();
  if (!module)
    return 1;
  PassManager pm(&context);
  pm.addPass(loom::createLoomVerifyModel());
  if (failed(pm.run(*module)))
    return 1;

  // The reports of the model as written come first: the training passes
  // below rewrite the module in place.
  // The text is written once everything has succeeded, so a failure leaves
  // an existing -o file as it was.
  std::string outputText;
  llvm::raw_string_ostream out(outputText);
  if (summary) {
    FailureOr<loom::ModelSummary> result = loom::summarizeModel(*module);
    if (failed(result))
      return 1;
    if (json)
      loom::printModelSummaryJson(*result, out);
    else
      loom::printModelSummary(*result, out);
  }
  if (emitAction == Emit::Loom) {
    module->print(out);
    out << "\n";
  }

  bool buildsPlan = writesPlan || emitAction == Emit::PlanText ||
                    emitAction == Emit::Kernels || reportsSchedule;
  bool training = buildsPlan || emitAction == Emit::Step;
  loom::DistOptions dist;
  dist.mesh = meshSpec;
  dist.sequenceParallel = sequenceParallel;
  dist.chunksPerStage = chunksPerStage;
  dist.pipelineLayout = pipelineLayout;
  if (emitAction == Emit::Dist) {
    // On a copy when the training step is built from the module too.
    OwningOpRef<ModuleOp> copy = training ? module->clone() : nullptr;
    ModuleOp target = training ? *copy : *module;
    if (failed(loom::buildDistProgram(target, dist)))
      return 1;
    target.print(out);
    out << "\n";
  }
  if (training &&
      failed(loom::buildTrainingStep(
          *module,
          precision == Precision::BF16  ? "bf16"
          : precision == Precision::F16 ? "f16"
                                        : "f32",
          dist)))
    return 1;
  if (emitAction == Emit::Step) {
    module->print(out);
    out << "\n";
  }
  std::unique_ptr<loom::plan::PlanT> builtPlan;
  if (buildsPlan) {
    // Recomputation, fusion, then the plan (docs/memory.md).
    loom::RecomputeOptions recompute;
    recompute.mode = recomputeMode;
    recompute.fuse = !noFuse;
    recompute.budgetBytes = budgetBytes;
    FailureOr<std::unique_ptr<loom::plan::PlanT>> result =
        loom::buildPlanWithRecompute(*module, recompute, options);
    if (failed(result))
      return 1;
    builtPlan = std::move(*result);
  }
  if (emitAction == Emit::PlanText) {
    std::ostringstream text;
    loom::runtime::printPlanText(*builtPlan, text);
    out << text.str();
  }
  if (emitAction == Emit::Kernels) {
    std::ostringstream text;
    loom::runtime::printKernelsText(*builtPlan, text);
    out << text.str();
  }
  if (printsOutput) {
    std::unique_ptr<llvm::ToolOutputFile> output =
        openOutputFile(outputFilename, &error);
    if (!output) {
      llvm::errs() << "loomc: " << error << "\n";
      return 1;
    }
    output->os() << out.str();
    output->keep();
  }
  if (reportsSchedule && pipelineStages > 1) {
    // The schedule the plan holds, simulated with the chunks' costs.
    loom::pipeline::Schedule schedule =
        loom::runtime::scheduleOfPlan(*builtPlan);
    loom::pipeline::Simulation sim =
        loom::pipeline::simulate(schedule, loom::chunkCosts(*builtPlan));
    if (drawsSchedule) {
      std::string svgError;
      auto svg = openOutputFile(scheduleSvg, &svgError);
      if (!svg) {
        llvm::errs() << "loomc: " << svgError << "\n";
        return 1;
      }
      svg->os() << loom::pipeline::scheduleSvg(schedule, sim);
      svg->keep();
    }
    if (explain != Explain::None && !json && pipelineStages > 1)
      llvm::outs() << (explain == Explain::Schedule
                           ? loom::pipeline::scheduleText(schedule)
                           : "")
                   << loom::pipeline::explainSummary(schedule, sim)
                   << (explain == Explain::Summary
                           ? "(--explain=schedule lists every step)\n"
                           : "")
                   << "\n";
  }
  if (explain != Explain::None) {
    // Every plan's memory, FLOPs, communication and predicted step.
    loom::StepReportOptions reportOptions;
    reportOptions.device = device;
    reportOptions.computeEfficiency = computeEfficiency;
    loom::StepReport report = loom::buildStepReport(*builtPlan, reportOptions);
    llvm::outs() << (json ? loom::stepReportJson(report) + "\n"
                          : loom::stepReportText(report));
    if (explain == Explain::Tensors && !json)
      llvm::outs() << "\n" << loom::savedTensorsText(*builtPlan);
    if (drawsMemory) {
      std::string svgError;
      auto svg = openOutputFile(memorySvgFile, &svgError);
      if (!svg) {
        llvm::errs() << "loomc: " << svgError << "\n";
        return 1;
      }
      svg->os() << loom::memorySvg(report);
      svg->keep();
    }
  }
  if (writesPlan) {
    loom::runtime::Status written =
        loom::runtime::writePlan(*builtPlan, outputFilename);
    if (!written.ok()) {
      llvm::errs() << "loomc: " << written.message() << "\n";
      return 1;
    }
  }
  return 0;
}
