//===- OptimizerProgram.cpp - the plan's optimizer program ----------------===//
//
// What runs once per step, after every microbatch has accumulated its
// gradients: with data parallelism the all-reduces of the gradients over dp
// in buckets of contiguous gradients (PyTorch DDP's), the global gradient
// norm (for clipping; a tensor-parallel gradient adds its block), one adamw
// per parameter, and the zeroing of the gradients for the next step.
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

std::unique_ptr<plan::ProgramT>
detail::buildOptimizerProgram(plan::PlanT &plan,
                              const PlanOptions &options) {
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
