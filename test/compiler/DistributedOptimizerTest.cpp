//===- DistributedOptimizerTest.cpp - ZeRO-1's memory, from the plan ------===//
//
// The tiny GPT with 1 KB gradient buckets (7 to 9) on dp=2 and
// dp=2 x tp=2, with and without --distributed-optimizer: the moments shrink
// to each bucket's shard (the test's own account from the plan's buffers
// and its reduce_scatters), parameters and gradients stay whole, and the
// persistent arena is exactly the padded buckets plus the shard moments.
// validatePlan refuses moments smaller than the shard and a shard that does
// not cover its bucket.
//
//===----------------------------------------------------------------------===//

#include "TinyGpt.h"

#include "loom/Plan/PlanBuilder.h"
#include "loom/Plan/StageMemory.h"
#include "loom/runtime/Plan.h"

#include <gtest/gtest.h>

namespace rt = loom::runtime;
namespace plan = loom::plan;

namespace {

class DistributedOptimizerTest : public TinyGptTest {
protected:
  std::unique_ptr<plan::PlanT> build(llvm::StringRef mesh, bool sharded) {
    mlir::OwningOpRef<mlir::ModuleOp> module = tinyGpt(2, 8, "f32", mesh);
    if (!module)
      return nullptr;
    loom::PlanOptions options;
    options.optimizer.decay_style = "cosine";
    options.gradBucketBytes = 1024;
    options.fuseOptimizer = true; // the sharded program falls back to adamw
    options.distributedOptimizer = sharded;
    auto built = loom::buildPlan(*module, options);
    EXPECT_TRUE(mlir::succeeded(built));
    return mlir::succeeded(built) ? std::move(*built) : nullptr;
  }
};

const plan::AttributeT *attrOf(const plan::InstructionT &inst,
                               const char *name) {
  return rt::findAttr(inst, name);
}

TEST_F(DistributedOptimizerTest, MomentsShrinkToTheShards) {
  for (const char *mesh : {"dp=2", "dp=2,tp=2"}) {
    SCOPED_TRACE(mesh);
    auto whole = build(mesh, false), sharded = build(mesh, true);
    ASSERT_TRUE(whole && sharded);
    EXPECT_FALSE(whole->distributed_optimizer);
    EXPECT_TRUE(sharded->distributed_optimizer);
    const int64_t dp = 2;

    // The test's account: per reduce_scatter (a bucket), its gradients'
    // aligned bytes make the span; each rank's shard is the span / dp,
    // rounded up to 16 elements; two moments of a shard per bucket, and
    // the parameters and gradients padded to dp shards each.
    int64_t buckets = 0, moments = 0, arena = 0, params = 0;
    for (const auto &inst : sharded->optimizer->instructions) {
      if (inst->op != "reduce_scatter")
        continue;
      ++buckets;
      int64_t span = 0;
      for (int32_t id : inst->inputs)
        span += loom::alignBuffer(sharded->buffers[size_t(id)]->bytes) / 4;
      int64_t shard = ((span + dp - 1) / dp + 15) / 16 * 16;
      const plan::AttributeT *s = attrOf(*inst, "shard");
      ASSERT_TRUE(s);
      EXPECT_EQ(s->ints[0], shard);
      moments += 2 * loom::alignBuffer(shard * 4);
      arena += 2 * dp * shard * 4 + 2 * loom::alignBuffer(shard * 4);
    }
    EXPECT_GT(buckets, 5);
    for (const auto &p : whole->parameters)
      params += loom::alignBuffer(whole->buffers[size_t(p->value)]->bytes);

    loom::StageMemory w = loom::stageMemory(*whole).front(),
                      z = loom::stageMemory(*sharded).front();
    EXPECT_EQ(w.optimizerState, 2 * params); // m and v of every parameter
    EXPECT_EQ(z.optimizerState, moments);
    EXPECT_EQ(z.parameters, w.parameters); // f32 master weights stay whole
    EXPECT_EQ(z.gradients, w.gradients);
    EXPECT_EQ(sharded->arena_bytes[size_t(plan::Arena::Persistent)], arena);
    // What each rank saves: all but its 1/dp of the moments, less the
    // padding (at most 15 elements per shard and the alignment).
    int64_t saved = w.optimizerState - z.optimizerState;
    EXPECT_GE(saved, w.optimizerState / 2 - buckets * 2 * (16 * 4 + 64));
    EXPECT_LE(saved, w.optimizerState / 2);
    // The same program otherwise: the fused optimizer kernels are not used
    // on shards (one adamw per parameter).
    int64_t adamws = 0;
    for (const auto &inst : sharded->optimizer->instructions)
      adamws += inst->op == "adamw";
    EXPECT_EQ(adamws, int64_t(sharded->parameters.size()));
  }
}

TEST_F(DistributedOptimizerTest, OneDataParallelRankIsANoOp) {
  auto whole = build("tp=2", false), sharded = build("tp=2", true);
  ASSERT_TRUE(whole && sharded);
  EXPECT_FALSE(sharded->distributed_optimizer);
  EXPECT_EQ(sharded->arena_bytes, whole->arena_bytes);
  EXPECT_EQ(sharded->optimizer->instructions.size(),
            whole->optimizer->instructions.size());
}

TEST_F(DistributedOptimizerTest, ValidationChecksTheShards) {
  auto sharded = build("dp=2", true);
  ASSERT_TRUE(sharded);
  ASSERT_TRUE(rt::validatePlan(*sharded, "the plan").ok());
  auto mutate = [&](const char *op, auto change) {
    auto copy = std::make_unique<plan::PlanT>(*sharded);
    for (auto &inst : copy->optimizer->instructions)
      if (inst->op == op) {
        change(*inst);
        break;
      }
    return rt::validatePlan(*copy, "the plan");
  };
  auto bigger = [](plan::InstructionT &inst) {
    for (auto &a : inst.attrs)
      if (a->name == "shard")
        a->ints[0] += 16;
  };
  auto smaller = [](plan::InstructionT &inst) {
    for (auto &a : inst.attrs)
      if (a->name == "shard")
        a->ints[0] /= 2;
  };
  rt::Status s = mutate("adamw", bigger);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("adamw's moments are not the bucket's shard"),
            std::string::npos)
      << s.message();
  s = mutate("reduce_scatter", smaller);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not cover the bucket"), std::string::npos)
      << s.message();
  // A sharded span that reaches into the next bucket.
  s = mutate("all_gather", bigger);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("its sharded span overlaps"), std::string::npos)
      << s.message();
}

} // namespace
