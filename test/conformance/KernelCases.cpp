//===- KernelCases.cpp - every generated kernel against its reference -----===//
//
// The `kernel` opcode runs a fusion region's generated code. Its oracle is
// the region's reference form, which the plan carries beside it: the same
// ops on the reference kernels (the CPU backend with generated kernels off).
// Each case compiles the tiny GPT with the fusion pass, on one rank, on
// tp=2 and on pp=2 (every chunk), and on one rank with a padded vocabulary
// (14 columns, 13 classes: the cross-entropy kernel masks the padded
// column), and runs every kernel instruction of the
// microbatch program on the backend and on the reference, from the same
// seeded inputs, comparing every output within the family's tolerance.
// Dropout masks must agree exactly (a dropped element is 0, a kept one is
// scaled), so a kernel drawing another stream fails by far.
//
//===----------------------------------------------------------------------===//

#include "Cases.h"
#include "TinyGpt.h"

#include "loom/runtime/Backend.h"
#include "loom/runtime/Communicator.h"

#include <map>
#include <set>

using namespace loom::conformance;
namespace rt = loom::runtime;
namespace plan = loom::plan;

namespace {

Family familyOfKernel(const std::string &family) {
  if (family == "layernorm" || family == "rmsnorm" ||
      family == "layernorm_grad" || family == "rmsnorm_grad")
    return Family::Norm;
  if (family == "softmax" || family == "softmax_grad")
    return Family::Softmax;
  if (family == "cross_entropy")
    return Family::CrossEntropy;
  if (family == "column_sum")
    return Family::Reduction;
  if (family == "adamw" || family == "adamw_decay")
    return Family::Optimizer;
  return Family::Activation; // elementwise chains: gelu's tanh is the widest
}

bool isInteger(plan::DType t) {
  return t == plan::DType::I32 || t == plan::DType::I64;
}

/// The fused plan of the tiny GPT on `mesh`; `padded`: its vocabulary of 13
/// padded to 14 columns (vocab_multiple 2), the 14th masked out of the loss.
std::unique_ptr<plan::PlanT> fusedTinyGpt(mlir::MLIRContext &context,
                                          llvm::StringRef mesh,
                                          bool padded = false) {
  mlir::OwningOpRef<mlir::ModuleOp> module =
      padded ? buildGpt(context,
                        {{"vocab", "13"},
                         {"vocab_multiple", "2"},
                         {"seq", "6"},
                         {"hidden", "16"},
                         {"heads", "2"},
                         {"layers", "2"}},
                        2, 4, "f32", mesh)
             : buildTinyGpt(context, 2, 4, "f32", mesh);
  if (!module || mlir::failed(loom::fuseTrainingStep(*module)))
    return nullptr;
  loom::PlanOptions options;
  options.optimizer.decay_style = "cosine";
  options.fuseOptimizer = true;
  auto built = loom::buildPlan(*module, options);
  return mlir::succeeded(built) ? std::move(*built) : nullptr;
}

/// Seeded inputs for instruction k: floats, token and label ids in the
/// vocabulary (every fifth label ignored), and the accumulators it adds to.
std::map<BufferId, std::vector<double>>
inputsOf(const plan::PlanT &p, const plan::InstructionT &inst, uint64_t seed) {
  std::map<BufferId, std::vector<double>> values;
  BufferId labels =
      p.labels_input >= 0 && size_t(p.labels_input) < p.inputs.size()
          ? p.inputs[size_t(p.labels_input)]->buffer
          : -1;
  auto fill = [&](BufferId id) {
    const plan::BufferT &b = *p.buffers[size_t(id)];
    int64_t n = rt::numElements(b.shape);
    if (isInteger(b.dtype)) {
      std::vector<double> ids =
          integers(n, seed + uint64_t(id), 0, p.vocab_size);
      if (id == labels)
        for (size_t i = 0; i < ids.size(); i += 5)
          ids[i] = double(p.ignore_index);
      values[id] = std::move(ids);
    } else {
      values[id] = uniform(n, seed + uint64_t(id), -1.5, 1.5);
    }
  };
  for (BufferId id : inst.inputs)
    fill(id);
  for (BufferId id : inst.outputs)
    if (p.buffers[size_t(id)]->kind == plan::BufferKind::Gradient)
      fill(id);
  return values;
}

/// Every kernel instruction of one program, run on both executors.
void checkProgram(const BackendEntry &backend, const plan::PlanT &p,
                  ProgramKind kind, const StepParams &params,
                  rt::Executor &reference, rt::Executor &tested,
                  std::set<std::string> &families, const std::string &what) {
  bool microbatch = kind == ProgramKind::Microbatch;
  const auto &program =
      microbatch ? p.microbatch->instructions : p.optimizer->instructions;
  for (size_t k = 0; k < program.size(); ++k) {
    const plan::InstructionT &inst = *program[k];
    if (inst.op != rt::opName(Op::Kernel))
      continue;
    const plan::KernelT &kernel = *p.kernels[size_t(inst.attrs[0]->ints[0])];
    families.insert(kernel.family);
    auto inputs = inputsOf(p, inst, 1000 * k + (microbatch ? 0 : 500));
    for (rt::Executor *ex : {&reference, &tested}) {
      for (const auto &[id, v] : inputs)
        ASSERT_OK(uploadValues(*ex, p, id, v));
      ex->beginStep();
      ex->setGradNorm(2.5); // AdamW clips by 1 / 2.5
      ASSERT_OK(ex->run(kind, params, k, k + 1));
    }
    Tolerance tol = backend.tolerance(familyOfKernel(kernel.family));
    for (BufferId id : inst.outputs) {
      auto want = downloadValues(reference, p, id);
      auto got = downloadValues(tested, p, id);
      ASSERT_TRUE(want.ok() && got.ok());
      expectClose(*got, *want, tol,
                  what + (microbatch ? " microbatch" : " optimizer") +
                      " instruction " + std::to_string(k) + " (" + kernel.name +
                      ") output '" + p.buffers[size_t(id)]->name + "'");
    }
  }
}

/// Runs every kernel instruction of one plan (or chunk) on both executors.
void checkPlan(const BackendEntry &backend, const plan::PlanT &p,
               std::vector<int64_t> coords, std::set<std::string> &families,
               const std::string &what) {
  rt::MeshShape mesh = meshOf(p);
  std::unique_ptr<rt::LocalCommunicatorGroup> comm;
  rt::RankContext rank;
  rank.coords = coords;
  if (mesh.numRanks() > 1) {
    comm = std::make_unique<rt::LocalCommunicatorGroup>(mesh, 60);
    rank.comm = &comm->forRank(0);
  }
  rt::RankContext referenceRank = rank;
  referenceRank.generatedKernels = false;
  auto reference = rt::createExecutor("cpu", p, referenceRank);
  ASSERT_TRUE(reference.ok()) << reference.message();
  std::unique_ptr<rt::Executor> tested = prepare(backend, p, rank);
  ASSERT_TRUE(tested);
  StepParams params;
  params.seed = 7;
  params.step = 3;
  params.microbatch = 1;
  params.lr = 1e-3;
  params.weightDecay = 0.1;
  params.clipGrad = 1;
  params.optimizerStep = 3;
  for (ProgramKind kind : {ProgramKind::Microbatch, ProgramKind::Optimizer})
    checkProgram(backend, p, kind, params, *reference->get(), *tested, families,
                 what);
}

void checkMesh(const BackendEntry &backend, llvm::StringRef mesh,
               std::set<std::string> want, bool padded = false) {
  mlir::MLIRContext context;
  loadTinyGptDialects(context);
  std::unique_ptr<plan::PlanT> p = fusedTinyGpt(context, mesh, padded);
  ASSERT_TRUE(p);
  std::set<std::string> families;
  if (p->chunks.empty()) {
    ASSERT_FALSE(p->kernels.empty());
    checkPlan(backend, *p, {}, families, "the plan's");
  }
  for (const auto &chunk : p->chunks) {
    std::vector<int64_t> coords(chunk->mesh.size(), 0);
    coords[1] = chunk->chunk_index % chunk->mesh[1]->size;
    checkPlan(backend, *chunk, coords, families,
              "chunk " + std::to_string(chunk->chunk_index) + "'s");
  }
  for (const std::string &family : want)
    EXPECT_TRUE(families.count(family))
        << "no " << family << " kernel was generated for mesh '" << mesh.str()
        << "'";
}

} // namespace

CONFORMANCE_CASE(Kernel, tiny_gpt_one_rank) {
  checkMesh(backend, "",
            {"elementwise", "layernorm", "layernorm_grad", "softmax",
             "softmax_grad", "cross_entropy", "column_sum", "adamw",
             "adamw_decay"});
}
CONFORMANCE_CASE(Kernel, tiny_gpt_padded_vocabulary) {
  checkMesh(backend, "", {"cross_entropy"}, /*padded=*/true);
}
CONFORMANCE_CASE(Kernel, tiny_gpt_tp2) {
  checkMesh(backend, "tp=2", {"layernorm", "layernorm_grad", "softmax"});
}
CONFORMANCE_CASE(Kernel, tiny_gpt_pp2_chunks) {
  checkMesh(backend, "pp=2", {"layernorm", "layernorm_grad", "softmax"});
}

namespace {
void checkBadLabel(const BackendEntry &backend, bool padded) {
  mlir::MLIRContext context;
  loadTinyGptDialects(context);
  std::unique_ptr<plan::PlanT> p = fusedTinyGpt(context, "", padded);
  ASSERT_TRUE(p);
  std::unique_ptr<rt::Executor> ex = prepare(backend, *p);
  ASSERT_TRUE(ex);
  const auto &program = p->microbatch->instructions;
  for (size_t k = 0; k < program.size(); ++k) {
    const plan::InstructionT &inst = *program[k];
    if (inst.op != rt::opName(Op::Kernel) ||
        p->kernels[size_t(inst.attrs[0]->ints[0])]->family != "cross_entropy")
      continue;
    auto inputs = inputsOf(*p, inst, 5);
    BufferId labels = p->inputs[size_t(p->labels_input)]->buffer;
    inputs[labels][3] = double(p->vocab_size); // one past the last class
    for (const auto &[id, v] : inputs)
      ASSERT_OK(uploadValues(*ex, *p, id, v));
    rt::Status s = ex->run(ProgramKind::Microbatch, StepParams(), k, k + 1);
    if (s.ok()) { // a device backend reports its kernels' checks at the step's end
      rt::Result<rt::StepOutputs> end = ex->readStepOutputs();
      s = end.ok() ? rt::Status::success() : rt::Status::error(end.message());
    }
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("a label is outside [0, 13)"), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("microbatch instruction"), std::string::npos)
        << s.message();
    return;
  }
  FAIL() << "the tiny GPT's plan has no cross_entropy kernel";
}
} // namespace

// A label outside the vocabulary is an error naming the instruction, from
// the generated cross-entropy kernel as from the reference kernel; and so is
// one among the padded classes (label 13 of a vocabulary padded to 14).
CONFORMANCE_CASE(Kernel, bad_label_is_an_error) {
  checkBadLabel(backend, false);
}
CONFORMANCE_CASE(Kernel, padded_label_is_an_error) {
  checkBadLabel(backend, true);
}
