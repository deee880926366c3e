//===- DecoderTest.cpp - instructions decode into checked records ---------===//
//
// The decoder does the geometry and checks once for every backend: these
// cases build one-instruction plans by hand and check the records (GEMM
// shapes, a rank's block, the gradients a tensor-parallel rank counts) and
// the refusals, which name the instruction and say what is wrong.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Decoder.h"

#include <gtest/gtest.h>

namespace rt = loom::runtime;
namespace plan = loom::plan;
using rt::Attr;
using rt::Op;

namespace {

/// A plan of f32 workspace buffers of the given shapes and one microbatch
/// instruction, on a mesh of named axes.
struct PlanBuilder {
  plan::PlanT p;
  int64_t offset = 0;

  PlanBuilder(std::vector<std::pair<std::string, int64_t>> mesh = {}) {
    for (auto &[name, size] : mesh) {
      auto a = std::make_unique<plan::MeshAxisT>();
      a->name = name;
      a->size = size;
      p.mesh.push_back(std::move(a));
    }
    p.microbatch = std::make_unique<plan::ProgramT>();
    p.microbatch->name = "microbatch";
    p.optimizer = std::make_unique<plan::ProgramT>();
    p.optimizer->name = "optimizer";
  }
  int32_t buffer(std::vector<int64_t> shape,
                 plan::DType dtype = plan::DType::F32) {
    auto b = std::make_unique<plan::BufferT>();
    b->name = "b" + std::to_string(p.buffers.size());
    b->dtype = dtype;
    b->shape = shape;
    b->bytes = rt::numElements(shape) * rt::dtypeBytes(dtype);
    b->arena = plan::Arena::Workspace;
    b->offset = offset;
    offset += (b->bytes + 63) / 64 * 64;
    p.buffers.push_back(std::move(b));
    return int32_t(p.buffers.size() - 1);
  }
  plan::InstructionT &instruction(Op op, std::vector<int32_t> in,
                                  std::vector<int32_t> out) {
    auto i = std::make_unique<plan::InstructionT>();
    i->op = rt::opName(op);
    i->inputs = std::move(in);
    i->outputs = std::move(out);
    i->location = "model.loom:3:7";
    p.microbatch->instructions.push_back(std::move(i));
    return *p.microbatch->instructions.back();
  }
  static void ints(plan::InstructionT &i, Attr name, std::vector<int64_t> v) {
    auto a = std::make_unique<plan::AttributeT>();
    a->name = rt::attrName(name);
    a->ints = std::move(v);
    i.attrs.push_back(std::move(a));
  }
  static void real(plan::InstructionT &i, Attr name, double v) {
    auto a = std::make_unique<plan::AttributeT>();
    a->name = rt::attrName(name);
    a->f = v;
    i.attrs.push_back(std::move(a));
  }
  static void text(plan::InstructionT &i, Attr name, std::string v) {
    auto a = std::make_unique<plan::AttributeT>();
    a->name = rt::attrName(name);
    a->s = std::move(v);
    i.attrs.push_back(std::move(a));
  }
  /// The decoded first instruction, or the refusal.
  rt::Result<rt::Instruction> decode(std::vector<int64_t> coords = {}) {
    rt::Result<rt::DecodedPlan> d = rt::decodePlan(p, coords);
    if (!d.ok())
      return rt::Status::error(d.message());
    return d->microbatch.instructions.front();
  }
};

TEST(DecoderTest, EveryOpcodeHasItsNameAndBack) {
  for (const rt::OpInfo &info : rt::allOps()) {
    EXPECT_EQ(rt::lookupOp(info.name), info.op) << info.name;
    EXPECT_STREQ(rt::opName(info.op), info.name);
    for (Attr a : info.required)
      EXPECT_EQ(rt::lookupAttr(rt::attrName(a)), a) << info.name;
  }
  EXPECT_FALSE(rt::lookupOp("conv2d"));
  EXPECT_FALSE(rt::lookupAttr("stride"));
}

TEST(DecoderTest, MatmulFoldsABatchOverABroadcastWeight) {
  PlanBuilder b;
  int32_t x = b.buffer({3, 4, 5}), w = b.buffer({5, 6}), y = b.buffer({3, 4, 6});
  auto &i = b.instruction(Op::Matmul, {x, w}, {y});
  PlanBuilder::ints(i, Attr::TransposeA, {0});
  PlanBuilder::ints(i, Attr::TransposeB, {0});
  PlanBuilder::ints(i, Attr::Accumulate, {1});
  auto d = b.decode();
  ASSERT_TRUE(d.ok()) << d.message();
  const auto &m = std::get<rt::MatmulInstr>(d->record);
  // x[3, 4, 5] · w[5, 6] is one GEMM of 12 rows.
  EXPECT_EQ(m.shape.batch, 1);
  EXPECT_EQ(m.shape.m, 12);
  EXPECT_EQ(m.shape.k, 5);
  EXPECT_EQ(m.shape.n, 6);
  EXPECT_EQ(m.beta, 1.0f);
  EXPECT_EQ(d->label, "matmul from model.loom:3:7");

  // A weight of the wrong inner size is refused, naming the instruction.
  b.p.buffers[size_t(w)]->shape = {4, 6};
  d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.message(), "the plan's microbatch instruction 0 (matmul, from "
                         "model.loom:3:7): operand shapes do not agree");
}

TEST(DecoderTest, DropoutOnABlockKnowsItsPlaceInTheWholeTensor) {
  PlanBuilder b({{"tp", 4}});
  int32_t x = b.buffer({2, 3}), y = b.buffer({2, 3});
  auto &i = b.instruction(Op::Dropout, {x}, {y});
  PlanBuilder::real(i, Attr::Rate, 0.1);
  PlanBuilder::text(i, Attr::Site, "attn");
  PlanBuilder::ints(i, Attr::ShardAxis, {-1, 0});
  PlanBuilder::ints(i, Attr::GlobalShape, {2, 12});
  auto d = b.decode({2});
  ASSERT_TRUE(d.ok()) << d.message();
  const auto &r = std::get<rt::DropoutInstr>(d->record);
  EXPECT_TRUE(r.block.split);
  EXPECT_EQ(r.block.offset, (std::vector<int64_t>{0, 6}));
  EXPECT_EQ(r.block.global, (std::vector<int64_t>{2, 12}));
  EXPECT_EQ(r.site, "attn");

  // A global shape that the blocks do not tile is refused.
  b.p.microbatch->instructions[0]->attrs.back()->ints = {2, 10};
  d = b.decode({2});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("its global_shape does not tile 'b0' [2x3]"),
            std::string::npos)
      << d.message();
  // So is a rank outside the mesh.
  b.p.microbatch->instructions[0]->attrs.back()->ints = {2, 12};
  EXPECT_FALSE(b.decode({4}).ok());
}

TEST(DecoderTest, GradNormCountsEachGradientOnceOverTensorParallelRanks) {
  PlanBuilder b({{"tp", 2}});
  int32_t split = b.buffer({4}), whole = b.buffer({4}), tied = b.buffer({4});
  auto &i = b.instruction(Op::GradNorm, {split, whole, tied}, {});
  PlanBuilder::ints(i, Attr::Split, {1, 0, 0});
  PlanBuilder::ints(i, Attr::Exclude, {0, 0, 1});
  PlanBuilder::ints(i, Attr::Axis, {0});
  auto first = b.decode({0}), second = b.decode({1});
  ASSERT_TRUE(first.ok() && second.ok()) << first.message();
  // Rank 0 counts its block and the whole gradient; rank 1 only its block;
  // the tied copy nowhere.
  EXPECT_EQ(std::get<rt::GradNormInstr>(first->record).counted,
            (std::vector<int32_t>{split, whole}));
  EXPECT_EQ(std::get<rt::GradNormInstr>(second->record).counted,
            (std::vector<int32_t>{split}));
  EXPECT_EQ(std::get<rt::GradNormInstr>(first->record).axis, 0);
}

TEST(DecoderTest, CrossEntropyClassesBoundTheRealClasses) {
  // Whole: 5 of 8 columns real; absent means all of them; above the
  // columns is refused.
  PlanBuilder b;
  int32_t z = b.buffer({3, 8}), l = b.buffer({3}, plan::DType::I32),
          y = b.buffer({});
  auto &ce = b.instruction(Op::CrossEntropy, {z, l}, {y});
  PlanBuilder::text(ce, Attr::Reduction, "sum");
  PlanBuilder::ints(ce, Attr::IgnoreIndex, {-100});
  auto d = b.decode();
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(std::get<rt::CrossEntropyInstr>(d->record).classes, 8);
  PlanBuilder::ints(ce, Attr::Classes, {5});
  d = b.decode();
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(std::get<rt::CrossEntropyInstr>(d->record).classes, 5);
  ce.attrs.back()->ints = {9};
  d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("(cross_entropy, from model.loom:3:7): its "
                             "classes 9 is outside [0, 8]"),
            std::string::npos)
      << d.message();

  // A block: rank 1 of tp=2 holds classes [4, 8) of which [4, 6) are real.
  PlanBuilder v({{"tp", 2}});
  int32_t bz = v.buffer({3, 4}), m = v.buffer({3});
  auto &mx = v.instruction(Op::CrossEntropyMax, {bz}, {m});
  PlanBuilder::ints(mx, Attr::ShardAxis, {-1, 0});
  PlanBuilder::ints(mx, Attr::GlobalShape, {3, 8});
  PlanBuilder::ints(mx, Attr::Classes, {6});
  d = v.decode({1});
  ASSERT_TRUE(d.ok()) << d.message();
  const auto &r = std::get<rt::CrossEntropyMaxInstr>(d->record);
  EXPECT_EQ(r.first, 4);
  EXPECT_EQ(r.classes, 4);
  EXPECT_EQ(r.real, 6);
  EXPECT_EQ(r.tokens, 3);
  mx.attrs.back()->ints = {12};
  d = v.decode({1});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("its classes 12 is outside [0, 8]"),
            std::string::npos)
      << d.message();
}

TEST(DecoderTest, RefusalsSayWhatIsWrong) {
  PlanBuilder b;
  int32_t x = b.buffer({2, 3}), y = b.buffer({2, 3}),
          ids = b.buffer({2, 3}, plan::DType::I32);
  auto &gelu = b.instruction(Op::Gelu, {x}, {y});
  auto d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("the attribute 'approximate' is missing"),
            std::string::npos);
  PlanBuilder::text(gelu, Attr::Approximate, "erf");
  d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("the approximation 'erf' is not none or tanh"),
            std::string::npos);
  gelu.attrs.back()->s = "tanh";
  ASSERT_TRUE(b.decode().ok());
  EXPECT_EQ(std::get<rt::ActivationInstr>(b.decode()->record).kind,
            rt::Activation::GeluTanh);
  // An integer buffer where a float one belongs.
  gelu.inputs = {ids};
  d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("buffer 'b2' must be a float tensor"),
            std::string::npos)
      << d.message();
  // An operand that is not a buffer.
  gelu.inputs = {7};
  d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("operand 7 is not a buffer"), std::string::npos);
  // An opcode the instruction set does not have.
  gelu.inputs = {x};
  gelu.op = "conv2d";
  d = b.decode();
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.message().find("no executor knows the instruction 'conv2d'"),
            std::string::npos);
}

} // namespace
