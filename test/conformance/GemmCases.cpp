//===- GemmCases.cpp - matmul: transposes, batches, broadcasts, 16-bit ----===//

#include "Cases.h"

#include "loom/runtime/cpu/Kernels.h"

using namespace loom::conformance;
namespace kern = loom::runtime::cpu;
namespace plan = loom::plan;
using loom::runtime::numElements;

namespace {

/// The reference GEMM's geometry, written out per case rather than derived
/// by the decoder's matmulShapeOf (which the backends share).
kern::MatmulShape gemm(int64_t batch, int64_t m, int64_t n, int64_t k,
                       bool transposeA = false, bool transposeB = false,
                       bool broadcastA = false, bool broadcastB = false) {
  kern::MatmulShape s;
  s.batch = batch;
  s.m = m;
  s.n = n;
  s.k = k;
  s.transposeA = transposeA;
  s.transposeB = transposeB;
  s.broadcastA = broadcastA;
  s.broadcastB = broadcastB;
  return s;
}

struct MatmulCase {
  Shape a, b, c;
  bool transposeA = false, transposeB = false, accumulate = false;
  kern::MatmulShape reference;
  plan::DType operands = plan::DType::F32, result = plan::DType::F32;
};

void runMatmul(const BackendEntry &backend, const MatmulCase &mc) {
  OneInstruction t(backend);
  BufferId a = t.buffer("a", mc.operands, mc.a),
           b = t.buffer("b", mc.operands, mc.b),
           c = t.buffer("c", mc.result, mc.c);
  std::vector<AttrValue> attrs = {intAttr(Attr::TransposeA, mc.transposeA),
                                  intAttr(Attr::TransposeB, mc.transposeB)};
  if (mc.accumulate)
    attrs.push_back(intAttr(Attr::Accumulate, 1));
  t.instruction(Op::Matmul, {a, b}, {c}, std::move(attrs));
  if (!t.prepare())
    return;
  std::vector<double> av = uniform(numElements(mc.a), 11, -1, 1, mc.operands),
                      bv = uniform(numElements(mc.b), 12, -1, 1, mc.operands),
                      cv = uniform(numElements(mc.c), 13, -1, 1, mc.result);
  t.upload(a, av);
  t.upload(b, bv);
  // Without accumulate, what c held before must not matter.
  t.upload(c, cv);
  ASSERT_OK(t.run());
  std::vector<double> want =
      mc.accumulate ? cv : std::vector<double>(cv.size(), 0.0);
  kern::matmul<double>(mc.reference, av.data(), bv.data(), want.data(),
                       mc.accumulate ? 1.0 : 0.0);
  t.expect(c, want, Family::Gemm);
}

} // namespace

CONFORMANCE_CASE(Matmul, plain) {
  runMatmul(backend,
            {{3, 4}, {4, 5}, {3, 5}, false, false, false, gemm(1, 3, 5, 4)});
}

CONFORMANCE_CASE(Matmul, transpose_a) {
  runMatmul(
      backend,
      {{4, 3}, {4, 5}, {3, 5}, true, false, false, gemm(1, 3, 5, 4, true)});
}

CONFORMANCE_CASE(Matmul, transpose_b) {
  runMatmul(backend, {{3, 4},
                      {5, 4},
                      {3, 5},
                      false,
                      true,
                      false,
                      gemm(1, 3, 5, 4, false, true)});
}

CONFORMANCE_CASE(Matmul, transpose_both) {
  runMatmul(backend, {{4, 3},
                      {5, 4},
                      {3, 5},
                      true,
                      true,
                      false,
                      gemm(1, 3, 5, 4, true, true)});
}

CONFORMANCE_CASE(Matmul, batched) {
  runMatmul(
      backend,
      {{2, 3, 4}, {2, 4, 5}, {2, 3, 5}, false, false, false, gemm(2, 3, 5, 4)});
}

CONFORMANCE_CASE(Matmul, batched_transpose_b) {
  runMatmul(backend, {{2, 3, 4},
                      {2, 5, 4},
                      {2, 3, 5},
                      false,
                      true,
                      false,
                      gemm(2, 3, 5, 4, false, true)});
}

CONFORMANCE_CASE(Matmul, batched_rank4) {
  runMatmul(backend, {{2, 2, 3, 4},
                      {2, 2, 4, 5},
                      {2, 2, 3, 5},
                      false,
                      false,
                      false,
                      gemm(4, 3, 5, 4)});
}

// x[b, m, k] · w[k, n]: one weight for every batch element.
CONFORMANCE_CASE(Matmul, broadcast_b) {
  runMatmul(backend, {{2, 3, 4},
                      {4, 5},
                      {2, 3, 5},
                      false,
                      false,
                      false,
                      gemm(2, 3, 5, 4, false, false, false, true)});
}

CONFORMANCE_CASE(Matmul, broadcast_b_transpose_a) {
  runMatmul(backend, {{2, 4, 3},
                      {4, 5},
                      {2, 3, 5},
                      true,
                      false,
                      false,
                      gemm(2, 3, 5, 4, true, false, false, true)});
}

CONFORMANCE_CASE(Matmul, broadcast_a) {
  runMatmul(backend, {{3, 4},
                      {2, 4, 5},
                      {2, 3, 5},
                      false,
                      false,
                      false,
                      gemm(2, 3, 5, 4, false, false, true)});
}

// A weight gradient accumulated over microbatches: c += a^T · b.
CONFORMANCE_CASE(Matmul, accumulate) {
  runMatmul(
      backend,
      {{4, 3}, {4, 5}, {3, 5}, true, false, true, gemm(1, 3, 5, 4, true)});
}

CONFORMANCE_CASE(Matmul, batched_accumulate) {
  runMatmul(
      backend,
      {{2, 3, 4}, {2, 4, 5}, {2, 3, 5}, false, false, true, gemm(2, 3, 5, 4)});
}

CONFORMANCE_CASE(Matmul, bf16_operands) {
  MatmulCase mc{{3, 8}, {8, 5}, {3, 5}, false, false, false, gemm(1, 3, 5, 8)};
  mc.operands = mc.result = plan::DType::BF16;
  runMatmul(backend, mc);
}

CONFORMANCE_CASE(Matmul, bf16_operands_f32_result) {
  MatmulCase mc{{2, 3, 8},
                {8, 5},
                {2, 3, 5},
                false,
                false,
                false,
                gemm(2, 3, 5, 8, false, false, false, true)};
  mc.operands = plan::DType::BF16;
  runMatmul(backend, mc);
}

// f32 operands, a bf16 product: not a type mix a device GEMM takes
// (cuBLASLt's f32 inputs need an f32 output), so a device backend computes
// it through f32 views and rounds, as the CPU backend does.
CONFORMANCE_CASE(Matmul, f32_operands_bf16_result) {
  MatmulCase mc{{4, 6}, {6, 3}, {4, 3}, false, false, false,
                gemm(1, 4, 3, 6, false, false)};
  mc.result = plan::DType::BF16;
  runMatmul(backend, mc);
}

CONFORMANCE_CASE(Matmul, f16_operands_transpose_b) {
  MatmulCase mc{{3, 8},
                {5, 8},
                {3, 5},
                false,
                true,
                false,
                gemm(1, 3, 5, 8, false, true)};
  mc.operands = mc.result = plan::DType::F16;
  runMatmul(backend, mc);
}
