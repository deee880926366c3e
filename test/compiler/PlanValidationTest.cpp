//===- PlanValidationTest.cpp - crafted plans refused at load -------------===//
//
// A plan that passes its checksum can still be wrong (written by hand, by
// another tool, or damaged before the checksum was taken). Each test takes
// a real plan built from examples/gpt.loom, changes one field, and checks
// that validatePlan (or readPlan after writePlan) refuses it with a message
// that names the plan and what is wrong, before any executor prepares an
// instruction. On the tree before these checks, each of them was accepted:
// some then crashed the executor (a division by zero, an empty shape
// indexed), hung a session (a deadlocking schedule, 2^40 ranks) or trained
// silently wrong (weights started at 0, overlapping buffers).
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "loom/Frontend/ModelBuilder.h"
#include "loom/Frontend/Parser.h"
#include "loom/Plan/PlanBuilder.h"
#include "loom/dialects/Loom/IR/LoomDialect.h"
#include "loom/passes/Passes.h"
#include "loom/runtime/Plan.h"
#include "loom/runtime/Backend.h"

#include "mlir/Dialect/Func/Extensions/InlinerExtension.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <functional>

using namespace mlir;
namespace rt = loom::runtime;
namespace plan = loom::plan;

namespace {

class PlanValidationTest : public TinyGptTest {
protected:
  /// The tiny GPT, micro-batch 2 of global 4, as a plan for `mesh` ("" for
  /// one rank): a plan validatePlan accepts, to change one field of.
  std::unique_ptr<plan::PlanT> tinyPlan(llvm::StringRef mesh = "") {
    mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, 4, "f32", mesh);
    if (!module)
      return nullptr;
    std::unique_ptr<plan::PlanT> built = planOf(*module);
    if (built) {
      EXPECT_TRUE(rt::validatePlan(*built, "the plan 'tiny'").ok());
    }
    return built;
  }

  /// The message validatePlan gives `p`, or "" when it accepts it.
  static std::string refusal(const plan::PlanT &p) {
    rt::Status s = rt::validatePlan(p, "the plan 'tiny'");
    return s.ok() ? std::string() : s.message();
  }
};

const plan::InstructionT *findOp(const plan::PlanT &p, const std::string &op) {
  for (const auto &inst : p.microbatch->instructions)
    if (inst->op == op)
      return inst.get();
  return nullptr;
}

/// Expects `message` to name the plan and to contain `what`.
#define EXPECT_REFUSED(message, what)                                          \
  do {                                                                         \
    std::string m_ = (message);                                                \
    EXPECT_NE(m_.find("the plan 'tiny'"), std::string::npos) << m_;            \
    EXPECT_NE(m_.find(what), std::string::npos) << m_;                         \
  } while (0)

TEST_F(PlanValidationTest, ACrossEntropyWithZeroClassesIsRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  // A vocabulary of 0 everywhere (every dimension 13 becomes 0), so every
  // shape agrees with every other and only the division by the classes is
  // wrong: the executor's cross_entropy divided the logits' elements by it.
  for (auto &b : p->buffers) {
    int64_t elements = 1;
    for (int64_t &d : b->shape) {
      d = d == 13 ? 0 : d;
      elements *= d;
    }
    b->bytes = elements * rt::dtypeBytes(b->dtype);
  }
  for (auto &param : p->parameters)
    for (int64_t &d : param->global_shape)
      d = d == 13 ? 0 : d;
  ASSERT_TRUE(findOp(*p, "cross_entropy"));
  EXPECT_REFUSED(refusal(*p), "(cross_entropy, from gpt.loom:");
  EXPECT_REFUSED(refusal(*p), "needs a last dimension > 0");
}

TEST_F(PlanValidationTest, AnEmbeddingTableWithAnEmptyShapeIsRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  const plan::InstructionT *embedding = findOp(*p, "embedding");
  ASSERT_TRUE(embedding);
  int32_t table = embedding->inputs[0];
  // The table is a parameter: make all of its buffers scalars alike, so
  // only the embedding's own rule can object.
  for (auto &param : p->parameters)
    if (param->value == table) {
      for (int32_t id :
           {param->value, param->grad, param->moment1, param->moment2}) {
        p->buffers[id]->shape = {};
        p->buffers[id]->bytes = 4;
      }
      param->global_shape = {};
      param->shard_axis = {};
    }
  EXPECT_REFUSED(refusal(*p), "its table");
  EXPECT_REFUSED(refusal(*p), "needs rank 2");
}

TEST_F(PlanValidationTest, AMeshOfTwoToTheFortyRanksIsRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  // Each axis is within 2^20; their product is not.
  p->mesh[0]->size = int64_t(1) << 20;
  p->mesh[2]->size = int64_t(1) << 20;
  p->global_batch_size = p->micro_batch_size * p->num_microbatches << 20;
  EXPECT_REFUSED(refusal(*p), "more than 1048576 ranks");
  p->mesh[2]->size = 1;
  p->mesh[0]->size = int64_t(1) << 40;
  EXPECT_REFUSED(refusal(*p), "more than 1048576 ranks");
  // The mesh is checked before any instruction is decoded: decoding
  // multiplies shapes by axis sizes (a collective on tp = 2^62 overflowed).
  p = tinyPlan("tp=2");
  ASSERT_TRUE(p);
  p->mesh[2]->size = int64_t(1) << 62;
  EXPECT_REFUSED(refusal(*p), "more than 1048576 ranks");
}

TEST_F(PlanValidationTest, AMisalignedOffsetIsRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  for (auto &b : p->buffers)
    if (b->arena == plan::Arena::Workspace && b->dtype == plan::DType::F32 &&
        b->offset + b->bytes + 1 <= p->arena_bytes[1]) {
      b->offset += 1;
      break;
    }
  EXPECT_REFUSED(refusal(*p), "not a multiple of its f32 elements' 4 bytes");
}

TEST_F(PlanValidationTest, TwoLiveBuffersSharingBytesAreRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  // An instruction's input and output are live together; put the output
  // over the input (of another size, so it is not a view).
  bool moved = false;
  for (const auto &inst : p->microbatch->instructions) {
    if (inst->op != "matmul")
      continue;
    plan::BufferT &a = *p->buffers[inst->inputs[0]],
                  &y = *p->buffers[inst->outputs[0]];
    if (a.arena == plan::Arena::Workspace &&
        y.arena == plan::Arena::Workspace && a.bytes != y.bytes &&
        a.offset + y.bytes <= p->arena_bytes[1]) {
      y.offset = a.offset;
      moved = true;
      break;
    }
  }
  ASSERT_TRUE(moved);
  EXPECT_REFUSED(refusal(*p),
                 "share bytes of the workspace arena while both are live");
}

TEST_F(PlanValidationTest, AnUnknownInitializerIsRefusedNotStartedAtZero) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  p->parameters[0]->init = "xavier";
  EXPECT_REFUSED(refusal(*p), "has the initializer 'xavier'");
}

TEST_F(PlanValidationTest, UnknownAttributeValuesAreRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  auto setText = [&](const std::string &op, const std::string &name,
                     const std::string &value) {
    for (auto &inst : p->microbatch->instructions)
      if (inst->op == op)
        for (auto &a : inst->attrs)
          if (a->name == name)
            a->s = value;
  };
  // gelu's approximation: the executor ran any unknown one as exact gelu.
  setText("gelu", "approximate", "erf");
  EXPECT_REFUSED(refusal(*p), "the approximation 'erf' is not none or tanh");
  setText("gelu", "approximate", "tanh");
  setText("gelu_grad", "approximate", "tanh");
  ASSERT_EQ(refusal(*p), "");
  setText("cross_entropy", "reduction", "avg");
  EXPECT_REFUSED(refusal(*p), "the reduction 'avg'");
  setText("cross_entropy", "reduction", "sum");
  p->optimizer_defaults->decay_style = "exponential";
  EXPECT_REFUSED(refusal(*p), "decay style 'exponential'");
}

TEST_F(PlanValidationTest, UnknownInstructionsAndMissingAttributesAreRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  plan::InstructionT &matmul =
      const_cast<plan::InstructionT &>(*findOp(*p, "matmul"));
  auto attrs = std::move(matmul.attrs);
  EXPECT_REFUSED(refusal(*p), "the attribute 'transpose_a' is missing");
  matmul.attrs = std::move(attrs);
  matmul.inputs.push_back(matmul.inputs[0]);
  EXPECT_REFUSED(refusal(*p), "it has 3 inputs and 1 outputs");
  matmul.inputs.pop_back();
  matmul.op = "conv2d";
  EXPECT_REFUSED(refusal(*p), "no executor knows the instruction 'conv2d'");
}

TEST_F(PlanValidationTest, SizesThatOverflowOrAreAbsurdAreRefused) {
  auto p = tinyPlan();
  ASSERT_TRUE(p);
  // 2 x 2^62 microbatches wraps around to -2^63 sequences.
  ASSERT_EQ(p->micro_batch_size, 2);
  p->num_microbatches = int64_t(1) << 62;
  p->global_batch_size = INT64_MIN;
  EXPECT_REFUSED(refusal(*p), "its batch sizes do not agree");

  p = tinyPlan();
  p->seq_length = int64_t(1) << 40; // x 4 sequences: 2^42 tokens
  EXPECT_REFUSED(refusal(*p), "tokens is more than 1099511627776 tokens");

  p = tinyPlan();
  p->arena_bytes[1] = int64_t(1) << 51;
  EXPECT_REFUSED(refusal(*p), "its workspace arena of 2251799813685248 bytes");

  p = tinyPlan();
  plan::BufferT &b = *p->buffers[findOp(*p, "matmul")->outputs[0]];
  b.shape = {int64_t(1) << 32, int64_t(1) << 32, 4}; // 2^66 elements
  EXPECT_REFUSED(refusal(*p), "the elements at most");
  // 2^49 one-byte elements: inside a 2^49-byte arena, but no buffer of a
  // rank is that large (the compiler's bound on a tensor is 2^48).
  b.dtype = plan::DType::I1;
  b.shape = {int64_t(1) << 29, int64_t(1) << 20};
  b.bytes = int64_t(1) << 49;
  b.offset = 0;
  p->arena_bytes[1] = b.bytes;
  EXPECT_REFUSED(refusal(*p), "the elements at most 281474976710656");

  // An empty buffer with a huge dimension: 0 elements, but kernels would
  // loop 2^62 times over its rows (and multiply its dimensions together).
  p = tinyPlan();
  plan::BufferT &empty = *p->buffers[findOp(*p, "matmul")->outputs[0]];
  empty.shape = {int64_t(1) << 62, 0};
  empty.bytes = 0;
  EXPECT_REFUSED(refusal(*p), "the elements at most 281474976710656");
}

TEST_F(PlanValidationTest, ADeadlockingScheduleIsRefusedAtLoad) {
  auto p = tinyPlan("pp=2");
  ASSERT_TRUE(p);
  ASSERT_EQ(p->chunks.size(), 2u);
  ASSERT_EQ(p->num_microbatches, 2);
  // Each stage runs every step once, each backward after its forward, yet
  // stage 0 waits in B0.0 for stage 1's B0.1, which comes after F1.1,
  // which waits for stage 0's F1.0, after B0.0.
  auto step = [](bool backward, int64_t mb, int64_t chunk) {
    auto s = std::make_unique<plan::ScheduleStepT>();
    s->backward = backward;
    s->microbatch = mb;
    s->chunk = chunk;
    return s;
  };
  for (int64_t stage = 0; stage < 2; ++stage)
    p->stage_schedules[stage]->steps.clear();
  auto &s0 = p->stage_schedules[0]->steps, &s1 = p->stage_schedules[1]->steps;
  s0.push_back(step(false, 0, 0));
  s0.push_back(step(true, 0, 0));
  s0.push_back(step(false, 1, 0));
  s0.push_back(step(true, 1, 0));
  s1.push_back(step(false, 1, 1));
  s1.push_back(step(false, 0, 1));
  s1.push_back(step(true, 0, 1));
  s1.push_back(step(true, 1, 1));
  EXPECT_REFUSED(refusal(*p), "its pipeline schedule is refused: schedule "
                              "deadlocks");

  // Through the file too: readPlan refuses it, naming the file.
  std::string path = ::testing::TempDir() + "/deadlock.plan";
  ASSERT_TRUE(rt::writePlan(*p, path).ok());
  auto read = rt::readPlan(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.message().find("the plan '" + path + "'"), std::string::npos)
      << read.message();
  EXPECT_NE(read.message().find("deadlocks"), std::string::npos)
      << read.message();
  std::remove(path.c_str());

  p = tinyPlan("pp=2");
  p->schedule = "zigzag";
  EXPECT_REFUSED(refusal(*p), "its schedule 'zigzag'");
}

TEST_F(PlanValidationTest, RealPlansPass) {
  for (const char *mesh : {"", "tp=2", "dp=2,tp=2", "pp=2", "pp=2,tp=2"}) {
    auto p = tinyPlan(mesh);
    ASSERT_TRUE(p) << mesh;
    EXPECT_EQ(refusal(*p), "") << mesh;
  }
}

} // namespace

// A kernel instruction must match its kernel, and its reference form (what
// runs without the generated code) must do its work on its own buffers: a
// plan that passes the CRC with either broken is refused, not run as a
// no-op or over a parameter.
TEST_F(PlanValidationTest, KernelInstructionsThatDoNotMatchAreRefused) {
  mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, 4);
  ASSERT_TRUE(module);
  ASSERT_TRUE(mlir::succeeded(loom::fuseTrainingStep(*module)));
  auto p = planOf(*module);
  ASSERT_TRUE(p);
  ASSERT_TRUE(rt::validatePlan(*p, "the plan 'tiny'").ok());
  auto &inst = const_cast<plan::InstructionT &>(*findOp(*p, "kernel"));
  ASSERT_FALSE(inst.reference.empty());

  inst.attrs[0]->ints[0] = int64_t(p->kernels.size());
  EXPECT_REFUSED(refusal(*p), "it names kernel");
  inst.attrs[0]->ints[0] = 0;

  auto reference = std::move(inst.reference);
  EXPECT_REFUSED(refusal(*p), "has no reference form");
  inst.reference = std::move(reference);

  // A reference form that writes a parameter instead of the output.
  int32_t out = inst.reference.back()->outputs[0];
  inst.reference.back()->outputs[0] = p->parameters[0]->value;
  EXPECT_REFUSED(refusal(*p), "which is not an output or scratch");
  inst.reference.back()->outputs[0] = out;

  // An argument of another size than the kernel's.
  int32_t in = inst.inputs[0];
  inst.inputs[0] = p->parameters[0]->value;
  EXPECT_REFUSED(refusal(*p), "argument 0 of kernel");
  inst.inputs[0] = in;

  inst.kernel_sites.push_back("extra");
  EXPECT_REFUSED(refusal(*p), "the instruction names sites for");
  inst.kernel_sites.pop_back();
  EXPECT_EQ(refusal(*p), "");
}
