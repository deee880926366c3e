//===- StepReportTest.cpp - the --explain report's accounting -------------===//
//
// The report of compiled tiny GPT plans against counts made by hand or
// from the plan's buffers directly: bytes per kind are the sums of the
// persistent buffers, the communication of a dp=2 x tp=2 plan is its
// collectives counted by hand, the FLOPs add up to step_flops, a pipeline
// sends its activations, gradients and tied gradient, and the prediction
// is the sum of its parts.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "loom/Plan/StageMemory.h"
#include "loom/Report/StepReport.h"

#include <gtest/gtest.h>

namespace plan = loom::plan;

namespace {

class StepReportTest : public TinyGptTest {
protected:
  std::unique_ptr<plan::PlanT> compile(llvm::StringRef mesh,
                                       llvm::StringRef compute = "f32",
                                       int64_t layers = 2) {
    mlir::OwningOpRef<mlir::ModuleOp> module =
        buildGpt(context,
                 {{"vocab", "13"},
                  {"seq", "6"},
                  {"hidden", "16"},
                  {"heads", "2"},
                  {"layers", std::to_string(layers)}},
                 2, 8, compute, mesh);
    if (!module)
      return nullptr;
    return planOf(*module);
  }
};

int64_t aligned(int64_t b) { return (b + 63) / 64 * 64; }

TEST_F(StepReportTest, MemoryIsTheSumOfTheBuffersByKind) {
  auto p = compile("");
  ASSERT_TRUE(p);
  int64_t bytes[3] = {0, 0, 0};
  for (const auto &b : p->buffers)
    if (b->arena == plan::Arena::Persistent)
      bytes[b->kind == plan::BufferKind::Parameter  ? 0
            : b->kind == plan::BufferKind::Gradient ? 1
                                                    : 2] += aligned(b->bytes);
  loom::StepReport r = loom::buildStepReport(*p);
  ASSERT_EQ(r.stages.size(), 1u);
  const loom::StageReport &s = r.stages[0];
  EXPECT_EQ(s.memory.parameters, bytes[0]);
  EXPECT_EQ(s.memory.gradients, bytes[1]);
  EXPECT_EQ(s.memory.optimizerState, bytes[2]);
  // AdamW's two moments per parameter.
  EXPECT_EQ(s.memory.optimizerState, 2 * s.memory.parameters);
  EXPECT_EQ(s.memory.persistent(), p->arena_bytes[0]);
  EXPECT_EQ(s.memory.workspace, p->arena_bytes[1]);
  EXPECT_EQ(s.memory.shadows, 0); // f32: no 16-bit operands
  EXPECT_EQ(s.memory.total(), p->arena_bytes[0] + p->arena_bytes[1]);
  // Peak live: everything persistent, and at most the workspace arena.
  EXPECT_GT(s.peakWorkspaceLive, 0);
  EXPECT_LE(s.peakWorkspaceLive, s.memory.workspace);
  EXPECT_EQ(s.peakLive, s.memory.persistent() + s.peakWorkspaceLive);
  // One rank: its FLOPs are the plan's.
  EXPECT_DOUBLE_EQ(s.hardwareFlops, p->step_flops);
  for (double c : s.commBytes)
    EXPECT_EQ(c, 0);

  // bf16: the runtime's f32 shadows of the 16-bit operands are counted.
  auto half = compile("", "bf16");
  ASSERT_TRUE(half);
  loom::StepReport h = loom::buildStepReport(*half);
  EXPECT_GT(h.stages[0].memory.shadows, 0);
  EXPECT_EQ(h.stages[0].memory.total(), half->arena_bytes[0] +
                                            half->arena_bytes[1] +
                                            h.stages[0].memory.shadows);
}

TEST_F(StepReportTest, CommunicationOfDp2Tp2IsItsCollectivesCountedByHand) {
  auto p = compile("dp=2,tp=2");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->num_microbatches, 2); // 8 sequences / (2 per microbatch x dp 2)
  loom::StepReport r = loom::buildStepReport(*p);
  ASSERT_EQ(r.stages.size(), 1u);
  const loom::StageReport &s = r.stages[0];
  // tp (Megatron's f and g): per layer the attention and MLP outputs'
  // all-reduces in the forward and their inputs' gradients' in the
  // backward, 2 layers x 4 = 8 of [2, 6, 16] f32 (768 bytes) per
  // microbatch. Ring all-reduce: 2(n-1)/n = 1 for n = 2. 2 microbatches.
  EXPECT_EQ(s.commBytes[loom::kTp], 8 * 768 * 1 * 2);
  // dp: one bucket spanning every gradient, reduced once per step.
  EXPECT_EQ(s.commBytes[loom::kDp], double(s.memory.gradients));
  EXPECT_EQ(s.commBytesAfter[loom::kDp], double(s.memory.gradients));
  EXPECT_EQ(s.commBytes[loom::kPp], 0);
  // step_flops is every rank's: a rank does a quarter.
  EXPECT_DOUBLE_EQ(s.hardwareFlops * 4, p->step_flops);
  EXPECT_DOUBLE_EQ(r.hardwareFlops, p->step_flops);
}

TEST_F(StepReportTest, PipelineSendsActivationsGradientsAndTheTiedGradient) {
  auto p = compile("pp=2", "f32", 4);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->chunks.size(), 2u);
  const int64_t m = p->num_microbatches;
  loom::StepReport r = loom::buildStepReport(*p);
  ASSERT_EQ(r.stages.size(), 2u);
  const plan::PlanT &first = *p->chunks[0], &last = *p->chunks[1];
  int64_t act = first.buffers[size_t(first.activation_out)]->bytes;
  int64_t grad = last.buffers[size_t(last.input_grad)]->bytes;
  // The token embedding is tied to the LM head: each stage sends its
  // gradient of it once.
  int64_t tied = 0;
  for (const auto &param : first.parameters)
    if (param->name == "embedding.word_embeddings")
      tied = first.buffers[size_t(param->grad)]->bytes;
  ASSERT_GT(tied, 0);
  EXPECT_EQ(r.stages[0].commBytes[loom::kPp], double(m * act + tied));
  EXPECT_EQ(r.stages[1].commBytes[loom::kPp], double(m * grad + tied));
  EXPECT_EQ(r.stages[0].commBytesAfter[loom::kPp], double(tied));
  // Each stage's memory is its chunk's.
  EXPECT_EQ(r.stages[1].memory.persistent(), last.arena_bytes[0]);
  EXPECT_DOUBLE_EQ(r.stages[0].hardwareFlops + r.stages[1].hardwareFlops,
                   p->step_flops);
  EXPECT_GT(r.bubbleFraction, 0);
  EXPECT_NE(r.pipelineJson, "null");
}

TEST_F(StepReportTest, PredictionIsTheSumOfItsParts) {
  auto p = compile("dp=2,tp=2");
  ASSERT_TRUE(p);
  loom::DeviceModel d{"test"};
  d.flops16 = d.flops32 = 1e9;
  d.memoryBytes = 1e12;
  d.memoryBandwidth = 1e9;
  d.intraNodeBandwidth = 1e8;
  d.interNodeBandwidth = 1e7;
  d.gpusPerNode = 2; // tp inside a node, dp across nodes
  loom::StepReportOptions options;
  options.device = d;
  options.computeEfficiency = 0.5;
  loom::StepReport r = loom::buildStepReport(*p, options);
  const loom::StageReport &s = r.stages[0];
  EXPECT_TRUE(r.axisIntraNode[loom::kTp]);
  EXPECT_FALSE(r.axisIntraNode[loom::kDp]);
  EXPECT_DOUBLE_EQ(s.computeSeconds, s.hardwareFlops / (1e9 * 0.5));
  EXPECT_DOUBLE_EQ(s.commSeconds[loom::kTp], s.commBytes[loom::kTp] / 1e8);
  // Without a pipeline: compute and tp communication, then the dp
  // reduction and AdamW's pass over the persistent arena.
  EXPECT_NEAR(r.pipelineSeconds, s.computeSeconds + s.commSeconds[loom::kTp],
              1e-12);
  EXPECT_NEAR(r.afterPipelineSeconds,
              s.commBytes[loom::kDp] / 1e7 +
                  2.0 * double(s.memory.persistent()) / 1e9,
              1e-12);
  EXPECT_DOUBLE_EQ(r.stepSeconds, r.pipelineSeconds + r.afterPipelineSeconds);
  EXPECT_NEAR(r.mfu, r.modelFlops / (r.stepSeconds * 1e9 * 4), 1e-12);
  EXPECT_TRUE(r.allFit);

  options.device->memoryBytes = double(s.memory.total() - 1);
  EXPECT_FALSE(loom::buildStepReport(*p, options).allFit);
}

} // namespace
