//===- OptimizerProgram.cpp - the plan's optimizer program ----------------===//
//
// What runs once per step, after every microbatch has accumulated its
// gradients: with data parallelism the all-reduces of the gradients over dp
// in buckets of contiguous gradients (PyTorch DDP's), the global gradient
// norm (for clipping; a tensor-parallel gradient adds its block), one adamw
// per parameter, and the zeroing of the gradients for the next step.
// With the distributed optimizer (ZeRO-1) the buckets are reduce-scattered,
// the norm and AdamW work on the rank's shard of each bucket, whose moments
// alone it holds, and the updated parameters are all-gathered.
//
//===----------------------------------------------------------------------===//

#include "Lowering.h"

#include "loom/Codegen/Emit.h"
#include "loom/Codegen/OptimizerKernel.h"

#include "loom/runtime/InstructionSet.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/ErrorHandling.h"

/// The plan's instruction set (include/loom/runtime/Instructions.def).
namespace instr = loom::runtime;

using namespace loom::detail;

namespace loom {

namespace {

/// The dp buckets: parameter indices in the order their gradients are laid
/// out (the reverse of declaration), about options.gradBucketBytes each.
std::vector<std::vector<size_t>> gradientBuckets(const plan::PlanT &plan,
                                                 const PlanOptions &options) {
  std::vector<std::vector<size_t>> buckets;
  int64_t bytes = 0;
  for (size_t i = plan.parameters.size(); i-- > 0;) {
    if (buckets.empty() || bytes >= options.gradBucketBytes) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(i);
    bytes += plan.buffers[plan.parameters[i]->grad]->bytes;
  }
  return buckets;
}

int32_t addShardBuffer(plan::PlanT &plan, const std::string &name,
                       int64_t elements) {
  auto b = std::make_unique<plan::BufferT>();
  b->name = name;
  b->dtype = plan::DType::F32;
  b->shape = {elements};
  b->kind = plan::BufferKind::OptimizerState;
  b->arena = plan::Arena::Persistent;
  b->bytes = elements * 4;
  plan.buffers.push_back(std::move(b));
  return int32_t(plan.buffers.size() - 1);
}

/// ZeRO-1: per bucket, a reduce_scatter of the gradients over dp; the norm
/// of each rank's shard; adamw on each parameter's part of the rank's
/// shard, with moments of the shard's size; an all_gather of the values.
/// The bucket's span (gradients, and the parameters laid out alike by
/// layoutPersistent) is padded to dp equal shards of a multiple of 16
/// elements, so every shard starts 64-byte aligned.
std::unique_ptr<plan::ProgramT>
buildShardedProgram(plan::PlanT &plan, const PlanOptions &options) {
  auto opt = std::make_unique<plan::ProgramT>();
  opt->name = "optimizer";
  int64_t dpAxis = meshAxisIndex(plan, "dp"), dp = meshAxisSize(plan, "dp");
  std::vector<std::vector<size_t>> buckets = gradientBuckets(plan, options);
  std::vector<int64_t> shardOf(plan.parameters.size(), 0);
  std::vector<std::unique_ptr<plan::InstructionT>> gathers;
  for (size_t k = 0; k < buckets.size(); ++k) {
    int64_t span = 0;
    for (size_t i : buckets[k]) {
      plan::ParameterT &p = *plan.parameters[i];
      p.shard_offset = span;
      span += alignBuffer(plan.buffers[p.grad]->bytes) / 4;
    }
    int64_t shard = (span + dp - 1) / dp;
    shard = (shard + 15) / 16 * 16;
    std::string n = std::to_string(k);
    int32_t m = addShardBuffer(plan, "adam_m.bucket." + n, shard);
    int32_t v = addShardBuffer(plan, "adam_v.bucket." + n, shard);
    auto scatter = std::make_unique<plan::InstructionT>();
    scatter->op = instr::opName(instr::Op::ReduceScatter);
    scatter->location = "gradient bucket " + n;
    auto gather = std::make_unique<plan::InstructionT>();
    gather->op = instr::opName(instr::Op::AllGather);
    gather->location = "parameter bucket " + n;
    for (auto *inst : {scatter.get(), gather.get()}) {
      setInts(*inst, instr::Attr::Axis, {dpAxis});
      setInts(*inst, instr::Attr::Dim, {0});
      setInts(*inst, instr::Attr::Shard, {shard});
    }
    for (size_t i : buckets[k]) {
      plan::ParameterT &p = *plan.parameters[i];
      p.moment1 = m;
      p.moment2 = v;
      shardOf[i] = shard;
      scatter->inputs.push_back(p.grad);
      gather->inputs.push_back(p.value);
    }
    scatter->outputs = scatter->inputs;
    gather->outputs = gather->inputs;
    opt->instructions.push_back(std::move(scatter));
    gathers.push_back(std::move(gather));
  }
  auto norm = std::make_unique<plan::InstructionT>();
  norm->op = instr::opName(instr::Op::GradNorm);
  auto zero = std::make_unique<plan::InstructionT>();
  zero->op = instr::opName(instr::Op::Zero);
  int64_t tp = meshAxisIndex(plan, "tp");
  std::vector<int64_t> split, offsets;
  for (size_t i = 0; i < plan.parameters.size(); ++i) {
    const plan::ParameterT &p = *plan.parameters[i];
    norm->inputs.push_back(p.grad);
    zero->outputs.push_back(p.grad);
    split.push_back(
        llvm::any_of(p.shard_axis, [&](int32_t a) { return a == tp; }));
    offsets.push_back(p.shard_offset);
  }
  if (meshAxisSize(plan, "tp") > 1) {
    setInts(*norm, instr::Attr::Split, split);
    setInts(*norm, instr::Attr::Axis, {tp});
  }
  setInts(*norm, instr::Attr::ShardOver, {dpAxis});
  setInts(*norm, instr::Attr::ShardOffset, offsets);
  setInts(*norm, instr::Attr::Shard, shardOf);
  opt->instructions.push_back(std::move(norm));
  // The fused optimizer kernel works on whole buffers; a shard is a range
  // of one, so the sharded updates are the reference adamw (docs/memory.md).
  for (size_t i = 0; i < plan.parameters.size(); ++i) {
    const plan::ParameterT &p = *plan.parameters[i];
    auto adam = std::make_unique<plan::InstructionT>();
    adam->op = instr::opName(instr::Op::AdamW);
    adam->inputs = {p.value, p.grad, p.moment1, p.moment2};
    adam->outputs = {p.value, p.moment1, p.moment2};
    setInts(*adam, instr::Attr::WeightDecay, {p.weight_decay});
    setInts(*adam, instr::Attr::ShardOver, {dpAxis});
    setInts(*adam, instr::Attr::ShardOffset, {p.shard_offset});
    setInts(*adam, instr::Attr::Shard, {shardOf[i]});
    opt->instructions.push_back(std::move(adam));
  }
  for (auto &gather : gathers)
    opt->instructions.push_back(std::move(gather));
  opt->instructions.push_back(std::move(zero));
  return opt;
}

} // namespace

std::unique_ptr<plan::ProgramT>
detail::buildOptimizerProgram(plan::PlanT &plan,
                              const PlanOptions &options) {
  plan.distributed_optimizer =
      options.distributedOptimizer && meshAxisSize(plan, "dp") > 1;
  if (plan.distributed_optimizer)
    return buildShardedProgram(plan, options);
  auto opt = std::make_unique<plan::ProgramT>();
  opt->name = "optimizer";
  // Data parallelism: sum the accumulated gradients over dp, a bucket of
  // contiguous gradients per all-reduce.
  if (meshAxisSize(plan, "dp") > 1) {
    std::unique_ptr<plan::InstructionT> bucket;
    int64_t bytes = 0;
    auto flush = [&] {
      if (bucket)
        opt->instructions.push_back(std::move(bucket));
      bucket.reset();
      bytes = 0;
    };
    for (auto it = plan.parameters.rbegin(); it != plan.parameters.rend();
         ++it) {
      if (!bucket) {
        bucket = std::make_unique<plan::InstructionT>();
        bucket->op = instr::opName(instr::Op::AllReduce);
        setString(*bucket, instr::Attr::Kind, "sum");
        setInts(*bucket, instr::Attr::Axis, {meshAxisIndex(plan, "dp")});
        bucket->location =
            "gradient bucket " + std::to_string(opt->instructions.size());
      }
      bucket->inputs.push_back((*it)->grad);
      bucket->outputs.push_back((*it)->grad);
      bytes += plan.buffers[(*it)->grad]->bytes;
      if (bytes >= options.gradBucketBytes)
        flush();
    }
    flush();
  }
  auto norm = std::make_unique<plan::InstructionT>();
  norm->op = instr::opName(instr::Op::GradNorm);
  auto zero = std::make_unique<plan::InstructionT>();
  zero->op = instr::opName(instr::Op::Zero);
  // A gradient split over tp adds each rank's block to the norm; a whole one
  // counts once (on tp rank 0), then the squares are summed over tp.
  int64_t tp = meshAxisIndex(plan, "tp");
  std::vector<int64_t> split;
  for (const auto &p : plan.parameters) {
    norm->inputs.push_back(p->grad);
    zero->outputs.push_back(p->grad);
    split.push_back(
        llvm::any_of(p->shard_axis, [&](int32_t a) { return a == tp; }));
  }
  if (meshAxisSize(plan, "tp") > 1) {
    setInts(*norm, instr::Attr::Split, split);
    setInts(*norm, instr::Attr::Axis, {tp});
  }
  opt->instructions.push_back(std::move(norm));
  // The fused kernels, by weight decay: one each serves every parameter.
  int64_t kernelOf[2] = {-1, -1};
  for (const auto &p : plan.parameters) {
    auto adam = std::make_unique<plan::InstructionT>();
    adam->op = instr::opName(instr::Op::AdamW);
    adam->inputs = {p->value, p->grad, p->moment1, p->moment2};
    adam->outputs = {p->value, p->moment1, p->moment2};
    setInts(*adam, instr::Attr::WeightDecay, {p->weight_decay});
    if (!options.fuseOptimizer) {
      opt->instructions.push_back(std::move(adam));
      continue;
    }
    int64_t &index = kernelOf[p->weight_decay ? 1 : 0];
    if (index < 0) {
      index = int64_t(plan.kernels.size());
      codegen::KernelDesc desc = codegen::adamwKernel(
          "loom_k" + std::to_string(index) +
              (p->weight_decay ? "_adamw_decay" : "_adamw"),
          p->weight_decay);
      // A malformed description is the compiler's bug: never in a plan.
      if (std::string problem = codegen::verifyKernel(desc); !problem.empty())
        llvm::report_fatal_error(llvm::Twine("loomc: ") + problem);
      plan.kernels.push_back(kernelEntry(desc));
    }
    // AdamW and the gradient's zeroing in one pass; the reference form is
    // the two instructions.
    auto fused = std::make_unique<plan::InstructionT>();
    fused->op = instr::opName(instr::Op::Kernel);
    fused->inputs = adam->inputs;
    fused->outputs = {p->value, p->moment1, p->moment2, p->grad};
    setInts(*fused, instr::Attr::Kernel, {index});
    fused->kernel_sites.assign(plan.kernels[size_t(index)]->params.size(), "");
    auto clear = std::make_unique<plan::InstructionT>();
    clear->op = instr::opName(instr::Op::Zero);
    clear->outputs = {p->grad};
    fused->reference.push_back(std::move(adam));
    fused->reference.push_back(std::move(clear));
    opt->instructions.push_back(std::move(fused));
  }
  if (!options.fuseOptimizer)
    opt->instructions.push_back(std::move(zero));
  if (options.fuseOptimizer && plan.kernel_host_prelude.empty()) {
    plan.kernel_host_prelude = codegen::hostPrelude();
    plan.kernel_cuda_prelude = codegen::cudaPrelude();
  }
  return opt;
}

} // namespace loom
