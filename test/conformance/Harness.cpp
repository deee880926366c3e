//===- Harness.cpp - hand-built plans run on a backend, for the suite -----===//

#include "Harness.h"

#include "loom/runtime/cpu/Float16.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <random>
#include <sstream>
#include <thread>

namespace loom {
namespace conformance {

namespace rt = loom::runtime;

AttrValue intAttr(Attr attr, int64_t value) { return {attr, {value}, 0, {}}; }
AttrValue intsAttr(Attr attr, std::vector<int64_t> values) {
  return {attr, std::move(values), 0, {}};
}
AttrValue realAttr(Attr attr, double value) { return {attr, {}, value, {}}; }
AttrValue textAttr(Attr attr, std::string value) {
  return {attr, {}, 0, std::move(value)};
}

namespace {
int64_t align64(int64_t bytes) { return (bytes + 63) / 64 * 64; }

std::unique_ptr<plan::MeshAxisT> axis(const char *name, int64_t size) {
  auto a = std::make_unique<plan::MeshAxisT>();
  a->name = name;
  a->size = size;
  return a;
}
} // namespace

PlanSketch::PlanSketch(int64_t dp, int64_t pp, int64_t tp)
    : plan_(std::make_unique<plan::PlanT>()) {
  plan::PlanT &p = *plan_;
  p.model = "conformance";
  p.compiler = "test/conformance";
  p.mesh.push_back(axis("dp", dp));
  p.mesh.push_back(axis("pp", pp));
  p.mesh.push_back(axis("tp", tp));
  p.micro_batch_size = 1;
  p.num_microbatches = 1;
  p.global_batch_size = dp;
  p.loss_normalizer = "microbatches";
  p.ignore_index = -100;
  p.microbatch = std::make_unique<plan::ProgramT>();
  p.microbatch->name = "microbatch";
  p.optimizer = std::make_unique<plan::ProgramT>();
  p.optimizer->name = "optimizer";
  p.optimizer_defaults = std::make_unique<plan::OptimizerDefaultsT>();
  p.optimizer_defaults->lr = 1e-3;
  p.optimizer_defaults->decay_style = "cosine";
  p.optimizer_defaults->beta1 = 0.9;
  p.optimizer_defaults->beta2 = 0.999;
  p.optimizer_defaults->eps = 1e-8;
  p.precision = std::make_unique<plan::PrecisionPolicyT>();
  p.precision->compute = plan::DType::F32;
  p.precision->initial_loss_scale = 1;
  p.precision->min_loss_scale = 1;
  p.precision->loss_scale_window = 1000;
}

BufferId PlanSketch::bufferAt(const std::string &name, plan::DType dtype,
                              Shape shape, plan::Arena arena, int64_t offset) {
  auto b = std::make_unique<plan::BufferT>();
  b->name = name;
  b->dtype = dtype;
  b->bytes = rt::numElements(shape) * rt::dtypeBytes(dtype);
  b->shape = std::move(shape);
  b->kind = plan::BufferKind::Temporary;
  b->arena = arena;
  b->offset = offset;
  size_t a = size_t(arena);
  end_[a] = std::max(end_[a], offset + b->bytes);
  // A gap of 64 bytes after each buffer: a kernel that writes past its
  // output's end is caught by its neighbour's comparison.
  next_[a] = std::max(next_[a], align64(offset + b->bytes) + 64);
  plan_->buffers.push_back(std::move(b));
  return BufferId(plan_->buffers.size() - 1);
}

BufferId PlanSketch::buffer(const std::string &name, plan::DType dtype,
                            Shape shape, plan::Arena arena) {
  return bufferAt(name, dtype, std::move(shape), arena, next_[size_t(arena)]);
}

void PlanSketch::instruction(Op op, std::vector<BufferId> inputs,
                             std::vector<BufferId> outputs,
                             std::vector<AttrValue> attrs,
                             ProgramKind program) {
  auto inst = std::make_unique<plan::InstructionT>();
  inst->op = rt::opName(op);
  inst->inputs = std::move(inputs);
  inst->outputs = std::move(outputs);
  for (AttrValue &a : attrs) {
    auto attr = std::make_unique<plan::AttributeT>();
    attr->name = rt::attrName(a.attr);
    attr->ints = std::move(a.ints);
    attr->f = a.f;
    attr->s = std::move(a.s);
    inst->attrs.push_back(std::move(attr));
  }
  inst->location = "conformance.loom:1:1";
  (program == ProgramKind::Microbatch ? plan_->microbatch : plan_->optimizer)
      ->instructions.push_back(std::move(inst));
}

std::unique_ptr<plan::PlanT> PlanSketch::finish() {
  if (!plan_) {
    ADD_FAILURE() << "PlanSketch::finish called twice";
    return nullptr;
  }
  if (loss_ < 0) {
    loss_ = buffer("loss", plan::DType::F32, {});
    plan_->buffers[size_t(loss_)]->kind = plan::BufferKind::Output;
  }
  plan_->loss = loss_;
  // Persistent, workspace, and an empty Stash (format 6).
  plan_->arena_bytes = {align64(end_[0]) + 64, align64(end_[1]) + 64, 0};
  rt::Status valid = rt::validatePlan(*plan_, "the hand-built plan");
  if (!valid.ok()) {
    ADD_FAILURE() << valid.message();
    return nullptr;
  }
  return std::move(plan_);
}

rt::MeshShape meshOf(const plan::PlanT &plan) {
  rt::MeshShape mesh;
  for (const auto &a : plan.mesh) {
    mesh.names.push_back(a->name);
    mesh.sizes.push_back(a->size);
  }
  return mesh;
}

//===--- Moving values in and out
//------------------------------------------===//

rt::Status uploadValues(rt::Executor &ex, const plan::PlanT &plan, BufferId id,
                        const std::vector<double> &values) {
  const plan::BufferT &b = *plan.buffers[size_t(id)];
  int64_t n = rt::numElements(b.shape);
  if (int64_t(values.size()) != n)
    return rt::Status::error("uploading " + std::to_string(values.size()) +
                             " values into '" + b.name + "' of " +
                             std::to_string(n) + " elements");
  std::vector<uint8_t> bytes(size_t(b.bytes));
  for (int64_t i = 0; i < n; ++i) {
    double v = values[size_t(i)];
    uint8_t *at = bytes.data() + i * rt::dtypeBytes(b.dtype);
    switch (b.dtype) {
    case plan::DType::F32: {
      float f = float(v);
      std::memcpy(at, &f, 4);
      break;
    }
    case plan::DType::BF16:
    case plan::DType::F16: {
      uint16_t h = b.dtype == plan::DType::BF16 ? rt::cpu::floatToBf16(float(v))
                                                : rt::cpu::floatToF16(float(v));
      std::memcpy(at, &h, 2);
      break;
    }
    case plan::DType::I32: {
      int32_t x = int32_t(v);
      std::memcpy(at, &x, 4);
      break;
    }
    case plan::DType::I64: {
      int64_t x = int64_t(v);
      std::memcpy(at, &x, 8);
      break;
    }
    case plan::DType::I1:
      *at = v != 0;
      break;
    }
  }
  return ex.upload(id, bytes.data(), bytes.size());
}

rt::Result<std::vector<double>>
downloadValues(rt::Executor &ex, const plan::PlanT &plan, BufferId id) {
  const plan::BufferT &b = *plan.buffers[size_t(id)];
  std::vector<uint8_t> bytes(size_t(b.bytes));
  if (rt::Status s = ex.download(id, bytes.data(), bytes.size()); !s.ok())
    return s;
  int64_t n = rt::numElements(b.shape);
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t *at = bytes.data() + i * rt::dtypeBytes(b.dtype);
    double &v = values[size_t(i)];
    switch (b.dtype) {
    case plan::DType::F32: {
      float f;
      std::memcpy(&f, at, 4);
      v = f;
      break;
    }
    case plan::DType::BF16:
    case plan::DType::F16: {
      uint16_t h;
      std::memcpy(&h, at, 2);
      v = b.dtype == plan::DType::BF16 ? rt::cpu::bf16ToFloat(h)
                                       : rt::cpu::f16ToFloat(h);
      break;
    }
    case plan::DType::I32: {
      int32_t x;
      std::memcpy(&x, at, 4);
      v = x;
      break;
    }
    case plan::DType::I64: {
      int64_t x;
      std::memcpy(&x, at, 8);
      v = double(x);
      break;
    }
    case plan::DType::I1:
      v = *at;
      break;
    }
  }
  return values;
}

//===--- Inputs and comparisons
//--------------------------------------------===//

std::vector<double> uniform(int64_t n, uint64_t seed, double lo, double hi,
                            plan::DType as) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> values(static_cast<size_t>(n));
  for (double &v : values) {
    float f = float(dist(gen));
    if (as == plan::DType::BF16)
      f = rt::cpu::bf16ToFloat(rt::cpu::floatToBf16(f));
    else if (as == plan::DType::F16)
      f = rt::cpu::f16ToFloat(rt::cpu::floatToF16(f));
    v = f;
  }
  return values;
}

std::vector<double> integers(int64_t n, uint64_t seed, int64_t lo, int64_t hi) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi - 1);
  std::vector<double> values(static_cast<size_t>(n));
  for (double &v : values)
    v = double(dist(gen));
  return values;
}

std::vector<float> asFloats(const std::vector<double> &values) {
  return std::vector<float>(values.begin(), values.end());
}

Tolerance forStorage(Tolerance tol, plan::DType dtype) {
  if (dtype == plan::DType::BF16)
    tol.rtol += 0x1p-7; // 8 significant bits
  if (dtype == plan::DType::F16) {
    tol.rtol += 0x1p-10; // 11 significant bits
    tol.atol += 0x1p-24; // the subnormals' spacing
  }
  return tol;
}

namespace {
void compare(const std::vector<double> &got, const std::vector<double> &want,
             const std::string &what,
             const std::function<double(double)> &allowed) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << ": " << got.size() << " values, expected "
                  << want.size();
    return;
  }
  size_t bad = 0;
  std::ostringstream first;
  first << std::setprecision(9);
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], w = want[i];
    bool ok = std::isnan(w)   ? std::isnan(g)
              : std::isinf(w) ? g == w
                              : std::abs(g - w) <= allowed(w);
    if (ok)
      continue;
    if (++bad <= 5)
      first << "\n  [" << i << "] got " << g << ", expected " << w
            << " (off by " << std::abs(g - w) << ", allowed " << allowed(w)
            << ")";
  }
  if (bad)
    ADD_FAILURE() << what << ": " << bad << " of " << got.size()
                  << " elements differ" << first.str();
}
} // namespace

void expectClose(const std::vector<double> &got,
                 const std::vector<double> &want, Tolerance tol,
                 const std::string &what) {
  compare(got, want, what,
          [&](double w) { return tol.atol + tol.rtol * std::abs(w); });
}

void expectCloseScaled(const std::vector<double> &got,
                       const std::vector<double> &want, Tolerance tol,
                       const std::string &what) {
  double scale = 0;
  for (double w : want)
    if (std::isfinite(w))
      scale = std::max(scale, std::abs(w));
  compare(got, want, what, [&](double) { return tol.atol + tol.rtol * scale; });
}

void expectReferencesAgree(const std::vector<double> &kernel,
                           const std::vector<double> &definition,
                           const std::string &what) {
  expectClose(kernel, definition, {1e-12, 1e-12},
              what + ": the kernel library's double reference against the "
                     "op's definition");
}

//===--- Running on a backend
//----------------------------------------------===//

namespace {
void skipUnsupported(const BackendEntry &backend, Op op) {
  GTEST_SKIP() << "backend '" << backend.name << "' does not run the opcode '"
               << rt::opName(op) << "' yet";
}

/// Whether the plan holds an instruction that talks to other ranks.
bool communicates(const plan::PlanT &plan) {
  for (const auto *program : {plan.microbatch.get(), plan.optimizer.get()})
    for (const auto &inst : program->instructions) {
      std::optional<Op> op = rt::lookupOp(inst->op);
      if (op == Op::AllReduce || op == Op::AllGather ||
          op == Op::ReduceScatter ||
          (op == Op::GradNorm && rt::findAttr(*inst, "split")))
        return true;
    }
  return false;
}
} // namespace

std::unique_ptr<rt::Executor> prepare(const BackendEntry &backend,
                                      const plan::PlanT &plan,
                                      rt::RankContext rank) {
  if (std::optional<Op> op = backend.firstUnsupported(plan)) {
    skipUnsupported(backend, *op);
    return nullptr;
  }
  auto created = backend.create(plan, std::move(rank));
  if (!created.ok()) {
    ADD_FAILURE() << "backend '" << backend.name
                  << "' refused the plan: " << created.message();
    return nullptr;
  }
  if (std::string name = (*created)->backend(); name != backend.name) {
    ADD_FAILURE() << "the executor of backend '" << backend.name
                  << "' calls itself '" << name << "'";
    return nullptr;
  }
  return std::move(*created);
}

bool OneInstruction::prepare(std::vector<int64_t> coords) {
  plan_ = sketch_.finish();
  if (!plan_)
    return false;
  rt::RankContext rank;
  rank.coords = std::move(coords);
  if (communicates(*plan_)) {
    rt::MeshShape mesh = meshOf(*plan_);
    if (mesh.numRanks() != 1) {
      ADD_FAILURE() << "a plan that communicates on several ranks runs "
                       "through onEveryRank";
      return false;
    }
    comm_ = std::make_unique<rt::LocalCommunicatorGroup>(mesh, 60);
    rank.comm = &comm_->forRank(0);
  }
  executor_ = conformance::prepare(backend_, *plan_, std::move(rank));
  return executor_ != nullptr;
}

void OneInstruction::upload(BufferId id, const std::vector<double> &values) {
  EXPECT_OK(uploadValues(*executor_, *plan_, id, values));
}

std::vector<double> OneInstruction::download(BufferId id) {
  auto values = downloadValues(*executor_, *plan_, id);
  if (!values.ok()) {
    ADD_FAILURE() << values.message();
    return {};
  }
  return std::move(*values);
}

rt::Status OneInstruction::run(const StepParams &params, ProgramKind program) {
  executor_->beginStep();
  if (rt::Status s = executor_->run(program, params); !s.ok())
    return s;
  // The step's end: a device backend reports a kernel's bad-input check
  // here (Executor::readStepOutputs), having never waited inside the step.
  rt::Result<rt::StepOutputs> outputs = executor_->readStepOutputs();
  return outputs.ok() ? rt::Status::success() : rt::Status::error(outputs.message());
}

void OneInstruction::expect(BufferId id, const std::vector<double> &want,
                            Family family, const std::string &what) {
  const plan::BufferT &b = *plan_->buffers[size_t(id)];
  Tolerance tol = backend_.tolerance(family);
  if (tol.rtol < 0) {
    ADD_FAILURE() << "backend '" << backend_.name
                  << "' gives no tolerance for the " << familyName(family)
                  << " family";
    return;
  }
  // Casts and data movement are exact: their references round to the
  // output type themselves.
  bool exact = family == Family::Cast || family == Family::DataMovement;
  expectClose(download(id), want, exact ? tol : forStorage(tol, b.dtype),
              (what.empty() ? "'" + b.name + "'" : what) + " on " +
                  backend_.name + " (" + familyName(family) + ")");
}

bool onEveryRank(
    const BackendEntry &backend, const plan::PlanT &plan,
    const std::function<rt::Status(int64_t rank, rt::Executor &)> &body) {
  if (std::optional<Op> op = backend.firstUnsupported(plan)) {
    skipUnsupported(backend, *op);
    return false;
  }
  rt::MeshShape mesh = meshOf(plan);
  rt::LocalCommunicatorGroup group(mesh, /*timeoutSeconds=*/60);
  int64_t n = mesh.numRanks();
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      rt::Communicator &comm = group.forRank(r);
      rt::RankContext rank;
      rank.coords = mesh.coordinates(r);
      rank.comm = &comm;
      auto created = backend.create(plan, rank);
      rt::Status s =
          created.ok()
              ? body(r, **created)
              : rt::Status::error("preparing the plan: " + created.message());
      if (!s.ok()) {
        errors[size_t(r)] = s.message();
        comm.abort(s.message()); // the others stop waiting for this rank
      }
    });
  for (std::thread &t : threads)
    t.join();
  bool ok = true;
  for (int64_t r = 0; r < n; ++r)
    if (!errors[size_t(r)].empty()) {
      ADD_FAILURE() << "backend '" << backend.name << "', " << mesh.describe(r)
                    << ": " << errors[size_t(r)];
      ok = false;
    }
  return ok;
}

//===--- Blocks of partitioned tensors
//-------------------------------------===//

namespace {
/// Calls f(index in the block, index in the whole) for every element.
template <typename F>
void forEachInBlock(const Shape &global, const Shape &local,
                    const std::vector<int64_t> &offset, F f) {
  size_t rank = global.size();
  std::vector<int64_t> stride(rank, 1), index(rank, 0);
  for (size_t d = rank; d-- > 1;)
    stride[d - 1] = stride[d] * global[d];
  int64_t n = rt::numElements(local);
  for (int64_t i = 0; i < n; ++i) {
    int64_t g = 0;
    for (size_t d = 0; d < rank; ++d)
      g += (offset[d] + index[d]) * stride[d];
    f(i, g);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < local[d])
        break;
      index[d] = 0;
    }
  }
}
} // namespace

std::vector<double> blockOf(const std::vector<double> &whole,
                            const Shape &global, const Shape &local,
                            const std::vector<int64_t> &offset) {
  std::vector<double> block(size_t(rt::numElements(local)));
  forEachInBlock(global, local, offset, [&](int64_t i, int64_t g) {
    block[size_t(i)] = whole[size_t(g)];
  });
  return block;
}

void placeBlock(std::vector<double> &whole, const Shape &global,
                const std::vector<double> &block, const Shape &local,
                const std::vector<int64_t> &offset) {
  forEachInBlock(global, local, offset, [&](int64_t i, int64_t g) {
    whole[size_t(g)] = block[size_t(i)];
  });
}

} // namespace conformance
} // namespace loom
