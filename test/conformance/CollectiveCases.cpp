//===- CollectiveCases.cpp - collectives of a rank alone on its axis ------===//
//
// The per-instruction cases of the collectives: a group of one (a copy, with
// a communicator of one rank) and all_slice, which needs no communication.
// CollectivesTest.cpp runs them on groups of 2, 3 and 4 ranks.
//
//===----------------------------------------------------------------------===//

#include "Cases.h"

using namespace loom::conformance;
namespace plan = loom::plan;
using loom::runtime::numElements;

namespace {
void runAlone(const BackendEntry &backend, Op op, std::vector<AttrValue> attrs,
              plan::DType dtype = plan::DType::F32) {
  OneInstruction t(backend);
  BufferId x = t.buffer("x", dtype, {2, 3}), y = t.buffer("y", dtype, {2, 3});
  t.instruction(op, {x}, {y}, std::move(attrs));
  if (!t.prepare())
    return;
  std::vector<double> xv = op == Op::AllSlice && dtype == plan::DType::I32
                               ? integers(6, 181, -50, 50)
                               : uniform(6, 181);
  t.upload(x, xv);
  ASSERT_OK(t.run());
  t.expect(y, xv,
           op == Op::AllSlice ? Family::DataMovement : Family::Collective);
}
} // namespace

CONFORMANCE_CASE(AllReduce, alone_on_the_axis) {
  runAlone(backend, Op::AllReduce,
           {intAttr(Attr::Axis, 2), textAttr(Attr::Kind, "sum")});
}
CONFORMANCE_CASE(AllGather, alone_on_the_axis) {
  runAlone(backend, Op::AllGather,
           {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 1)});
}
CONFORMANCE_CASE(ReduceScatter, alone_on_the_axis) {
  runAlone(backend, Op::ReduceScatter,
           {intAttr(Attr::Axis, 0), intAttr(Attr::Dim, 0)});
}
CONFORMANCE_CASE(AllSlice, alone_on_the_axis) {
  runAlone(backend, Op::AllSlice,
           {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 1)}, plan::DType::I32);
}

// Each rank keeps its block, of any element type (labels come along with a
// split activation): no communication, so one executor per coordinate.
CONFORMANCE_CASE(AllSlice, block_per_coordinate) {
  const int64_t tp = 2;
  std::vector<double> floats = uniform(2 * 6, 182),
                      labels = integers(4 * 3, 183, 0, 100);
  for (int64_t coord = 0; coord < tp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, tp);
    BufferId fx = t.buffer("x", plan::DType::F32, {2, 6}),
             fy = t.buffer("x_block", plan::DType::F32, {2, 3}),
             lx = t.buffer("labels", plan::DType::I32, {4, 3}),
             ly = t.buffer("labels_block", plan::DType::I32, {2, 3});
    t.instruction(Op::AllSlice, {fx}, {fy},
                  {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 1)});
    t.instruction(Op::AllSlice, {lx}, {ly},
                  {intAttr(Attr::Axis, 2), intAttr(Attr::Dim, 0)});
    if (!t.prepare({0, 0, coord}))
      return;
    t.upload(fx, floats);
    t.upload(lx, labels);
    ASSERT_OK(t.run());
    t.expect(fy, blockOf(floats, {2, 6}, {2, 3}, {0, coord * 3}),
             Family::DataMovement);
    t.expect(ly, blockOf(labels, {4, 3}, {2, 3}, {coord * 2, 0}),
             Family::DataMovement);
  }
}
