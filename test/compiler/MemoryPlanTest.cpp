//===- MemoryPlanTest.cpp - the memory plan against the papers' formulas --===//
//
// What a layer keeps for its backward, read from the memory plan (a
// pipeline chunk's stash: exactly what its forward step leaves for its
// backward step), against Korthikanti et al. 2022, Table 2, for each
// recomputation choice with and without tensor and sequence parallelism;
// the 1F1B first stage's stash (their eq. 5: p microbatches of L/p layers);
// and the step's FLOPs against Narayanan et al. 2021 eq. 3 (hardware FLOPs
// with full recomputation) and Korthikanti eq. 7 (model FLOPs) on the GPT
// configurations of examples/configs.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "loom/Plan/RecomputePlanner.h"
#include "loom/Plan/StageMemory.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <sstream>

namespace {

using Overrides = std::vector<std::pair<std::string, std::string>>;

/// The plan builder's options with the optimizer's defaults loomc gives.
loom::PlanOptions planOptions() {
  loom::PlanOptions options;
  options.optimizer.decay_style = "cosine";
  return options;
}

class MemoryPlanTest : public TinyGptTest {
protected:
  /// The plan of examples/gpt.loom with `overrides` on `dist`, built with
  /// --recompute `mode`.
  std::unique_ptr<loom::plan::PlanT> plan(const Overrides &overrides,
                                          int64_t micro, int64_t global,
                                          llvm::StringRef compute,
                                          const loom::DistOptions &dist,
                                          const std::string &mode) {
    mlir::OwningOpRef<mlir::ModuleOp> module =
        buildGpt(context, overrides, micro, global, compute, dist);
    if (!module)
      return nullptr;
    loom::RecomputeOptions recompute;
    recompute.mode = mode;
    auto built =
        loom::buildPlanWithRecompute(*module, recompute, planOptions());
    EXPECT_TRUE(mlir::succeeded(built));
    return mlir::succeeded(built) ? std::move(*built) : nullptr;
  }
};

// The tiny GPT at sizes whose tensors are whole multiples of the 64-byte
// buffer alignment, bf16 (2-byte activations), dropout 0.
constexpr int64_t kS = 64, kB = 2, kH = 64, kA = 4, kT = 2, kLayers = 4;

Overrides tinyOverrides() {
  return {{"vocab", "256"},
          {"seq", std::to_string(kS)},
          {"hidden", std::to_string(kH)},
          {"heads", std::to_string(kA)},
          {"layers", std::to_string(kLayers)},
          {"dropout", "0.0"}};
}

struct Table2Case {
  const char *name;
  const char *mesh; // with pp=2
  bool sequenceParallel;
  const char *recompute;
  /// Korthikanti et al. Table 2, bytes per layer (2-byte activations).
  double table;
  /// What Loom does not keep that the table counts: the dropout masks
  /// (redrawn from Philox in the backward: 1 byte per element of the
  /// attention probabilities and of the two hidden dropouts' outputs), and,
  /// at dropout 0, the attention dropout's output (there is no dropout op:
  /// the softmax's output is what the context matmul reads).
  double notKept;
};

double sbh() { return double(kS * kB * kH); }
double as2b() { return double(kA * kS * kS * kB); }

TEST_F(MemoryPlanTest, ActivationBytesPerLayerMatchKorthikantiTable2) {
  const double t = kT, masks = 2 * sbh(), attention = 3 * as2b();
  const Table2Case cases[] = {
      {"no parallelism", "pp=2", false, "none",
       sbh() * (34 + 5.0 * kA * kS / kH), masks + attention},
      {"tensor parallel", "pp=2,tp=2", false, "none",
       sbh() * (10 + 24 / t + 5.0 * kA * kS / (kH * t)), masks + attention / t},
      {"tensor + sequence parallel", "pp=2,tp=2", true, "none",
       sbh() / t * (34 + 5.0 * kA * kS / kH), (masks + attention) / t},
      {"selective recomputation", "pp=2", false, "selective", sbh() * 34,
       masks},
      {"tensor + sequence parallel, selective", "pp=2,tp=2", true, "selective",
       sbh() * 34 / t, masks / t},
      {"full recomputation", "pp=2", false, "full", 2 * sbh(), 0},
      {"tensor + sequence parallel, full", "pp=2,tp=2", true, "full",
       2 * sbh() / t, 0},
  };
  for (const Table2Case &c : cases) {
    SCOPED_TRACE(c.name);
    // One layer more in chunk 0 adds exactly one layer's stash.
    int64_t stash[2];
    for (int64_t i = 0; i < 2; ++i) {
      loom::DistOptions dist;
      dist.mesh = c.mesh;
      dist.sequenceParallel = c.sequenceParallel;
      dist.pipelineLayout = i == 0 ? "2,2" : "3,1";
      auto p = plan(tinyOverrides(), kB, 2 * kB, "bf16", dist, c.recompute);
      ASSERT_TRUE(p);
      stash[i] = p->chunks[0]->arena_bytes[size_t(loom::plan::Arena::Stash)];
    }
    double perLayer = double(stash[1] - stash[0]);
    EXPECT_EQ(perLayer, c.table - c.notKept)
        << "Table 2: " << c.table << " bytes per layer; Loom does not keep "
        << c.notKept;
  }
}

TEST_F(MemoryPlanTest, OneFOneBFirstStageHoldsPMicrobatchesOfItsLayers) {
  // Korthikanti eq. 5: under 1F1B the first stage holds p microbatches in
  // flight, each of its L/p layers, so L layers' worth in all.
  constexpr int64_t p = 4, m = 8, layers = 8;
  Overrides overrides = tinyOverrides();
  overrides.back() = {"dropout", "0.0"};
  overrides[4] = {"layers", std::to_string(layers)};
  auto perLayerStash = [&](const char *layout) {
    loom::DistOptions dist;
    dist.mesh = "pp=4";
    dist.pipelineLayout = layout;
    auto built = plan(overrides, kB, kB * m, "bf16", dist, "none");
    return built
               ? built->chunks[1]->arena_bytes[size_t(loom::plan::Arena::Stash)]
               : int64_t(-1);
  };
  // A middle stage's chunk: its layers and the activation it received.
  int64_t two = perLayerStash("2,2,2,2"), three = perLayerStash("2,3,2,1");
  int64_t perLayer = three - two;
  ASSERT_GT(perLayer, 0);

  for (const char *schedule : {"1f1b", "gpipe"}) {
    SCOPED_TRACE(schedule);
    mlir::OwningOpRef<mlir::ModuleOp> module =
        buildGpt(context, overrides, kB, kB * m, "bf16", [] {
          loom::DistOptions d;
          d.mesh = "pp=4";
          return d;
        }());
    ASSERT_TRUE(module);
    loom::RecomputeOptions recompute;
    loom::PlanOptions options = planOptions();
    options.schedule = schedule;
    auto built = loom::buildPlanWithRecompute(*module, recompute, options);
    ASSERT_TRUE(mlir::succeeded(built));
    const loom::plan::PlanT &pl = **built;
    std::vector<loom::StageMemory> stages = loom::stageMemory(pl);
    ASSERT_EQ(stages.size(), size_t(p));
    for (int64_t s = 0; s < p; ++s) {
      int64_t slots = std::string(schedule) == "1f1b" ? p - s : m;
      EXPECT_EQ(pl.chunks[size_t(s)]->stash_slots, slots) << "stage " << s;
      EXPECT_EQ(stages[size_t(s)].stash,
                slots * pl.chunks[size_t(s)]
                            ->arena_bytes[size_t(loom::plan::Arena::Stash)]);
    }
    if (std::string(schedule) == "1f1b") {
      // p microbatches × L/p layers, each layer keeping its input: L layers'
      // worth exactly.
      EXPECT_EQ(stages[0].stash, layers * perLayer);
    }
  }
}

/// The -D values of an examples/configs args file.
std::map<std::string, std::string> readArgs(const std::string &name) {
  std::map<std::string, std::string> out;
  auto buffer =
      llvm::MemoryBuffer::getFile(LOOM_SOURCE_DIR "/examples/configs/" + name);
  EXPECT_TRUE(bool(buffer)) << name;
  if (!buffer)
    return out;
  std::istringstream in((*buffer)->getBuffer().str());
  std::string word;
  while (in >> word)
    if (word == "-D" && in >> word)
      if (size_t eq = word.find('='); eq != std::string::npos)
        out[word.substr(0, eq)] = word.substr(eq + 1);
  return out;
}

/// The FLOPs of the step's matmuls (the papers count only these), split
/// into the model's and the recomputed ones.
std::pair<double, double> matmulFlops(mlir::ModuleOp module) {
  double model = 0, recomputed = 0;
  module.walk([&](loom::MatmulOp op) {
    double f = mlir::cast<loom::CostOpInterface>(op.getOperation()).getFlops();
    (op->hasAttr(loom::LoomDialect::RecomputedAttrHelper::getNameStr())
         ? recomputed
         : model) += f;
  });
  return {model, recomputed};
}

TEST_F(MemoryPlanTest, StepFlopsMatchNarayananEq3AndKorthikantiEq7) {
  // B = 1 sequence per step; every GPT configuration of examples/configs.
  for (const char *config :
       {"gpt2-124m.args", "gpt2-355m.args", "gpt2-774m.args", "gpt2-1.5b.args",
        "gpt-1.7b.args", "gpt-3.6b.args", "gpt-7.5b.args", "gpt-18b.args",
        "gpt-39b.args", "gpt-76b.args", "gpt-145b.args", "gpt-175b.args",
        "gpt-310b.args", "gpt-530b.args", "gpt-1t.args", "megatron-8.3b.args",
        "mt-nlg-530b.args"}) {
    SCOPED_TRACE(config);
    std::map<std::string, std::string> args = readArgs(config);
    ASSERT_TRUE(args.count("hidden") && args.count("layers") &&
                args.count("seq") && args.count("vocab"));
    double h = std::stod(args["hidden"]), l = std::stod(args["layers"]),
           s = std::stod(args["seq"]), V = std::stod(args["vocab"]), B = 1;
    Overrides overrides(args.begin(), args.end());
    for (const char *mode : {"none", "full"}) {
      SCOPED_TRACE(mode);
      mlir::OwningOpRef<mlir::ModuleOp> module =
          buildGpt(context, overrides, 1, 1, "f32", loom::DistOptions());
      ASSERT_TRUE(module);
      loom::RecomputeOptions recompute;
      recompute.mode = mode;
      recompute.fuse = false;
      auto built =
          loom::buildPlanWithRecompute(*module, recompute, planOptions());
      ASSERT_TRUE(mlir::succeeded(built));
      auto [model, again] = matmulFlops(*module);
      double eq7 =
          72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
      double eq3 =
          96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
      EXPECT_NEAR(model / eq7, 1, 1e-12);
      // Loom recomputes only what the backward reads: no backward op reads
      // the second MLP GEMM's result (its gradients need its input and the
      // layer's output gradient; the layer's output itself is kept), so
      // per layer its 8Bsh² are not run again; eq. 3 reruns the whole
      // forward. (The attention projection is rerun: the second
      // layernorm's backward reads its input, the residual sum.)
      double notRerun = 8 * B * s * h * h * l;
      if (std::string(mode) == "full")
        EXPECT_NEAR((model + again) / (eq3 - notRerun), 1, 1e-12);
      else
        EXPECT_EQ(again, 0);
      // The plan's counts: its matmuls plus what else the cost interface
      // counts (norms, softmax, activations: under 2.5% for these sizes).
      const loom::plan::PlanT &p = **built;
      EXPECT_GE(p.model_flops, model);
      EXPECT_LT(p.model_flops, model * 1.025);
      EXPECT_GE(p.step_flops, model + again);
      EXPECT_LT(p.step_flops, (model + again) * 1.025);
      EXPECT_EQ(p.recompute, mode);
    }
  }
}

} // namespace
