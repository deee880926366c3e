//===- Harness.h - hand-built plans run on a backend, for the suite -*- C++
//-*-===//
//
// What every conformance test does: write a tiny plan by hand (PlanSketch:
// buffers at offsets in the two arenas, one instruction or a few, checked
// by validatePlan as a plan from a file would be), prepare it on a backend,
// move seeded random inputs in with upload(), run, move the outputs out
// with download() and compare them with a reference computed in double.
// Nothing here reads a backend's memory except through the Executor
// interface.
//
//   OneInstruction t(backend);
//   BufferId x = t.buffer("x", plan::DType::F32, {2, 3});
//   BufferId y = t.buffer("y", plan::DType::F32, {2, 3});
//   t.instruction(Op::Relu, {x}, {y});
//   if (!t.prepare())
//     return; // skipped (an unsupported opcode) or failed, already reported
//   t.upload(x, uniform(6, /*seed=*/1));
//   ASSERT_OK(t.run());
//   t.expect(y, want, Family::Activation);
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CONFORMANCE_HARNESS_H
#define LOOM_TEST_CONFORMANCE_HARNESS_H

#include "Backends.h"

#include "loom/runtime/Communicator.h"
#include "loom/runtime/Decoder.h"
#include "loom/runtime/Executor.h"
#include "loom/runtime/InstructionSet.h"
#include "loom/runtime/Plan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    ::loom::runtime::Status assertOkStatus_ = (expr);                          \
    ASSERT_TRUE(assertOkStatus_.ok()) << assertOkStatus_.message();            \
  } while (0)
#define EXPECT_OK(expr)                                                        \
  do {                                                                         \
    ::loom::runtime::Status expectOkStatus_ = (expr);                          \
    EXPECT_TRUE(expectOkStatus_.ok()) << expectOkStatus_.message();            \
  } while (0)

namespace loom {
namespace conformance {

using runtime::Attr;
using runtime::BufferId;
using runtime::Op;
using runtime::ProgramKind;
using runtime::Shape;
using runtime::StepParams;

//===--- Plans by hand
//-----------------------------------------------------===//

/// An instruction's attribute: integers (flags, dimensions), a real or a
/// text, as the plan stores them.
struct AttrValue {
  Attr attr;
  std::vector<int64_t> ints;
  double f = 0;
  std::string s;
};
AttrValue intAttr(Attr attr, int64_t value);
AttrValue intsAttr(Attr attr, std::vector<int64_t> values);
AttrValue realAttr(Attr attr, double value);
AttrValue textAttr(Attr attr, std::string value);

/// A plan written by hand. Buffers go into the workspace or the persistent
/// arena at 64-byte-aligned offsets, none at 0 and with gaps between them,
/// so a backend that ignores offsets or sizes is caught. The mesh is (dp,
/// pp, tp); one microbatch of one sequence per dp rank; the loss is a
/// buffer of its own unless setLoss names one.
class PlanSketch {
public:
  explicit PlanSketch(int64_t dp = 1, int64_t pp = 1, int64_t tp = 1);

  BufferId buffer(const std::string &name, plan::DType dtype, Shape shape,
                  plan::Arena arena = plan::Arena::Workspace);
  /// A buffer at an exact byte offset (adjacent buffers of a bucket).
  BufferId bufferAt(const std::string &name, plan::DType dtype, Shape shape,
                    plan::Arena arena, int64_t offset);
  void instruction(Op op, std::vector<BufferId> inputs,
                   std::vector<BufferId> outputs,
                   std::vector<AttrValue> attrs = {},
                   ProgramKind program = ProgramKind::Microbatch);
  void setLoss(BufferId loss) { loss_ = loss; }

  /// The plan, checked by validatePlan; null (with the failure reported)
  /// when it does not validate.
  std::unique_ptr<plan::PlanT> finish();

private:
  std::unique_ptr<plan::PlanT> plan_;
  int64_t next_[2] = {128, 128}; // per arena
  int64_t end_[2] = {0, 0};
  BufferId loss_ = -1;
};

/// `plan`'s mesh as the communicator's.
runtime::MeshShape meshOf(const plan::PlanT &plan);

//===--- Moving values in and out
//------------------------------------------===//

/// Writes `values` into the buffer, converted to its element type (f32,
/// bf16 and f16 rounded to nearest even, integers, i1 as one byte).
runtime::Status uploadValues(runtime::Executor &ex, const plan::PlanT &plan,
                             BufferId id, const std::vector<double> &values);
/// The buffer's elements, widened to double.
runtime::Result<std::vector<double>>
downloadValues(runtime::Executor &ex, const plan::PlanT &plan, BufferId id);

//===--- Inputs and comparisons
//--------------------------------------------===//

/// `n` values uniform in [lo, hi) from a seeded generator, each exactly
/// representable in `as` (so the reference sees what the backend stores).
std::vector<double> uniform(int64_t n, uint64_t seed, double lo = -1,
                            double hi = 1, plan::DType as = plan::DType::F32);
/// `n` integers uniform in [lo, hi).
std::vector<double> integers(int64_t n, uint64_t seed, int64_t lo, int64_t hi);
/// Values as float (the f32 storage of the inputs the reference reads).
std::vector<float> asFloats(const std::vector<double> &values);

/// A tolerance widened by one unit in the last place of a 16-bit output
/// type (the result is rounded to it once more).
Tolerance forStorage(Tolerance tol, plan::DType dtype);

/// Each element within tol (NaN matches NaN, an infinity itself); reports
/// how many differ and the first few, prefixed by `what`.
void expectClose(const std::vector<double> &got,
                 const std::vector<double> &want, Tolerance tol,
                 const std::string &what);
/// As expectClose, the absolute part scaled by the largest |want|: for a
/// model's gradients, whose elements range over magnitudes.
void expectCloseScaled(const std::vector<double> &got,
                       const std::vector<double> &want, Tolerance tol,
                       const std::string &what);

/// Two double-precision references of one op agree (the kernel library's,
/// and one written from the op's definition): the oracle is checked too.
void expectReferencesAgree(const std::vector<double> &kernel,
                           const std::vector<double> &definition,
                           const std::string &what);

//===--- Running on a backend
//----------------------------------------------===//

/// Prepares `plan` on the backend for the rank `rank`. Null when the plan
/// holds an opcode the backend does not run (the test is skipped, naming
/// both) or creating the executor failed (a failure).
std::unique_ptr<runtime::Executor> prepare(const BackendEntry &backend,
                                           const plan::PlanT &plan,
                                           runtime::RankContext rank = {});

/// A plan by hand with its executor: the one-instruction tests.
class OneInstruction {
public:
  explicit OneInstruction(const BackendEntry &backend, int64_t dp = 1,
                          int64_t pp = 1, int64_t tp = 1)
      : backend_(backend), sketch_(dp, pp, tp) {}

  BufferId buffer(const std::string &name, plan::DType dtype, Shape shape,
                  plan::Arena arena = plan::Arena::Workspace) {
    return sketch_.buffer(name, dtype, std::move(shape), arena);
  }
  PlanSketch &sketch() { return sketch_; }
  void instruction(Op op, std::vector<BufferId> inputs,
                   std::vector<BufferId> outputs,
                   std::vector<AttrValue> attrs = {},
                   ProgramKind program = ProgramKind::Microbatch) {
    sketch_.instruction(op, std::move(inputs), std::move(outputs),
                        std::move(attrs), program);
  }

  /// Finishes the plan and prepares it for the rank at `coords` (empty:
  /// coordinate 0 everywhere). False when skipped or failed (reported).
  /// A plan with a collective gets a communicator of its own mesh.
  bool prepare(std::vector<int64_t> coords = {});

  void upload(BufferId id, const std::vector<double> &values);
  std::vector<double> download(BufferId id);
  /// beginStep, the program, then readStepOutputs (where a device backend
  /// reports a failed check): the first error.
  runtime::Status run(const StepParams &params = {},
                      ProgramKind program = ProgramKind::Microbatch);
  /// Downloads the buffer and compares it with `want` within the family's
  /// tolerance (widened for a 16-bit buffer, except for the exact families,
  /// Cast and DataMovement, whose references round themselves).
  void expect(BufferId id, const std::vector<double> &want, Family family,
              const std::string &what = "");

  const plan::PlanT &plan() const { return *plan_; }
  runtime::Executor &executor() { return *executor_; }
  const BackendEntry &backend() const { return backend_; }

private:
  const BackendEntry &backend_;
  PlanSketch sketch_;
  std::unique_ptr<plan::PlanT> plan_;
  std::unique_ptr<runtime::LocalCommunicatorGroup> comm_;
  std::unique_ptr<runtime::Executor> executor_;
};

/// Runs `body` for every rank of `plan`'s mesh, each rank a thread with its
/// own executor (its coordinates, and the communicator of one
/// LocalCommunicatorGroup), as a Session runs them. A rank whose body
/// fails aborts the others' collectives. Failures are reported naming the
/// rank; an unsupported opcode skips. False unless every rank ran.
bool onEveryRank(
    const BackendEntry &backend, const plan::PlanT &plan,
    const std::function<runtime::Status(int64_t rank, runtime::Executor &)>
        &body);

//===--- Blocks of partitioned tensors
//-------------------------------------===//

/// The block of shape `local` at `offset` of a row-major tensor of shape
/// `global`.
std::vector<double> blockOf(const std::vector<double> &whole,
                            const Shape &global, const Shape &local,
                            const std::vector<int64_t> &offset);
/// Writes a block back into the whole tensor.
void placeBlock(std::vector<double> &whole, const Shape &global,
                const std::vector<double> &block, const Shape &local,
                const std::vector<int64_t> &offset);

} // namespace conformance
} // namespace loom

#endif // LOOM_TEST_CONFORMANCE_HARNESS_H
