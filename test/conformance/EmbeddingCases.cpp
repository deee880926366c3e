//===- EmbeddingCases.cpp - embedding lookups and their gradients ---------===//

#include "Cases.h"

#include "loom/runtime/cpu/Kernels.h"

#include <cstdint>

using namespace loom::conformance;
namespace kern = loom::runtime::cpu;
namespace plan = loom::plan;
using loom::runtime::numElements;

namespace {

const int64_t kHidden = 4;

std::vector<int64_t> asIds(const std::vector<double> &ids) {
  return std::vector<int64_t>(ids.begin(), ids.end());
}

/// An error of a running instruction names it and its model source
/// position (Executor::run).
void expectRunError(loom::runtime::Status s, const char *op) {
  ASSERT_FALSE(s.ok()) << "an index outside the table ran without an error";
  EXPECT_NE(s.message().find(op), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("conformance.loom:1:1"), std::string::npos)
      << s.message();
}

/// The ids are 2×3 tokens; the table is `vocab` rows, or with `tp` > 1 this
/// rank's block of `vocab` rows split over tp (vocabulary-parallel). For
/// each tp coordinate, the block's rows must be the whole table's for its
/// tokens and zero for the others', so that their sum (the all-reduce after
/// it) is the whole lookup.
void runEmbedding(const BackendEntry &backend, plan::DType idType,
                  const std::vector<double> &ids, int64_t vocab, int64_t tp) {
  int64_t count = int64_t(ids.size()), rowsOfBlock = vocab / tp;
  std::vector<double> table = uniform(vocab * kHidden, 101);
  std::vector<double> whole(size_t(count * kHidden));
  std::vector<int64_t> idv = asIds(ids);
  ASSERT_TRUE((kern::embedding<double, int64_t>(
      table.data(), vocab, kHidden, idv.data(), count, whole.data())));
  std::vector<double> sum(whole.size(), 0.0);
  for (int64_t coord = 0; coord < tp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, tp);
    BufferId tb = t.buffer("table", plan::DType::F32, {rowsOfBlock, kHidden}),
             ib = t.buffer("ids", idType, {2, count / 2}),
             rb = t.buffer("rows", plan::DType::F32, {2, count / 2, kHidden});
    std::vector<AttrValue> attrs;
    if (tp > 1)
      attrs = {intsAttr(Attr::ShardAxis, {2, -1}),
               intsAttr(Attr::GlobalShape, {vocab, kHidden})};
    t.instruction(Op::Embedding, {tb, ib}, {rb}, std::move(attrs));
    if (!t.prepare({0, 0, coord}))
      return;
    int64_t first = coord * rowsOfBlock;
    t.upload(tb, blockOf(table, {vocab, kHidden}, {rowsOfBlock, kHidden},
                         {first, 0}));
    t.upload(ib, ids);
    t.upload(rb, uniform(count * kHidden, 102));
    ASSERT_OK(t.run());
    std::vector<double> want = whole;
    for (int64_t i = 0; i < count; ++i)
      if (idv[size_t(i)] < first || idv[size_t(i)] >= first + rowsOfBlock)
        std::fill_n(want.begin() + i * kHidden, kHidden, 0.0);
    t.expect(rb, want, Family::Embedding);
    std::vector<double> got = t.download(rb);
    for (size_t i = 0; i < got.size() && i < sum.size(); ++i)
      sum[i] += got[i];
  }
  expectClose(sum, whole, backend.tolerance(Family::Embedding),
              "the blocks' rows summed over tp");
}

void runEmbeddingError(const BackendEntry &backend, double badId, int64_t tp) {
  const int64_t vocab = 6;
  OneInstruction t(backend, 1, 1, tp);
  BufferId tb = t.buffer("table", plan::DType::F32, {vocab / tp, kHidden}),
           ib = t.buffer("ids", plan::DType::I32, {5}),
           rb = t.buffer("rows", plan::DType::F32, {5, kHidden});
  std::vector<AttrValue> attrs;
  if (tp > 1)
    attrs = {intsAttr(Attr::ShardAxis, {2, -1}),
             intsAttr(Attr::GlobalShape, {vocab, kHidden})};
  t.instruction(Op::Embedding, {tb, ib}, {rb}, std::move(attrs));
  if (!t.prepare({0, 0, tp - 1}))
    return;
  t.upload(tb, uniform(vocab / tp * kHidden, 103));
  t.upload(ib, {0, 1, badId, 2, 3});
  expectRunError(t.run(), "embedding");
}

} // namespace

CONFORMANCE_CASE(Embedding, i32_ids) {
  runEmbedding(backend, plan::DType::I32, {1, 5, 0, 6, 5, 2}, 7, 1);
}
CONFORMANCE_CASE(Embedding, i64_ids) {
  runEmbedding(backend, plan::DType::I64, {6, 0, 3, 3, 4, 1}, 7, 1);
}
CONFORMANCE_CASE(Embedding, vocab_parallel_block) {
  runEmbedding(backend, plan::DType::I32, {1, 5, 0, 7, 4, 3, 6, 2}, 8, 2);
}
CONFORMANCE_CASE(Embedding, out_of_range_id) {
  runEmbeddingError(backend, 6, 1);
}
CONFORMANCE_CASE(Embedding, negative_id) { runEmbeddingError(backend, -1, 1); }
// A block's check is against the whole vocabulary, not its own rows.
CONFORMANCE_CASE(Embedding, vocab_parallel_out_of_range_id) {
  runEmbeddingError(backend, 6, 2);
}

namespace {
/// dtable (+)= the rows scattered by id, duplicates adding up; with `tp`
/// > 1, each rank's block of the table takes its own tokens' rows.
void runEmbeddingGrad(const BackendEntry &backend, plan::DType idType,
                      const std::vector<double> &ids, int64_t vocab, int64_t tp,
                      bool accumulate) {
  int64_t count = int64_t(ids.size()), rowsOfBlock = vocab / tp;
  std::vector<double> dy = uniform(count * kHidden, 111),
                      before = uniform(vocab * kHidden, 112);
  std::vector<double> whole =
      accumulate ? before : std::vector<double>(before.size(), 0.0);
  std::vector<int64_t> idv = asIds(ids);
  ASSERT_TRUE((kern::embeddingBackward<double, int64_t>(
      idv.data(), count, vocab, kHidden, dy.data(), whole.data())));
  for (int64_t coord = 0; coord < tp; ++coord) {
    SCOPED_TRACE("tp coordinate " + std::to_string(coord));
    OneInstruction t(backend, 1, 1, tp);
    BufferId db = t.buffer("drows", plan::DType::F32, {count, kHidden}),
             ib = t.buffer("ids", idType, {count}),
             tb = t.buffer("dtable", plan::DType::F32, {rowsOfBlock, kHidden},
                           plan::Arena::Persistent);
    std::vector<AttrValue> attrs;
    if (accumulate)
      attrs.push_back(intAttr(Attr::Accumulate, 1));
    if (tp > 1) {
      attrs.push_back(intsAttr(Attr::ShardAxis, {2, -1}));
      attrs.push_back(intsAttr(Attr::GlobalShape, {vocab, kHidden}));
    }
    t.instruction(Op::EmbeddingGrad, {db, ib}, {tb}, std::move(attrs));
    if (!t.prepare({0, 0, coord}))
      return;
    Shape global = {vocab, kHidden}, local = {rowsOfBlock, kHidden};
    std::vector<int64_t> offset = {coord * rowsOfBlock, 0};
    t.upload(db, dy);
    t.upload(ib, ids);
    t.upload(tb, blockOf(before, global, local, offset));
    ASSERT_OK(t.run());
    t.expect(tb, blockOf(whole, global, local, offset), Family::Embedding);
  }
}
} // namespace

CONFORMANCE_CASE(EmbeddingGrad, scatter_with_duplicates) {
  runEmbeddingGrad(backend, plan::DType::I32, {1, 3, 1, 6, 0, 1}, 7, 1, false);
}
CONFORMANCE_CASE(EmbeddingGrad, accumulate_i64_ids) {
  runEmbeddingGrad(backend, plan::DType::I64, {2, 2, 5, 0}, 7, 1, true);
}
CONFORMANCE_CASE(EmbeddingGrad, vocab_parallel_block) {
  runEmbeddingGrad(backend, plan::DType::I32, {1, 5, 0, 7, 4, 4, 6, 1}, 8, 2,
                   false);
}
CONFORMANCE_CASE(EmbeddingGrad, vocab_parallel_accumulate) {
  runEmbeddingGrad(backend, plan::DType::I32, {3, 4, 4, 0}, 8, 2, true);
}
CONFORMANCE_CASE(EmbeddingGrad, out_of_range_id) {
  OneInstruction t(backend);
  BufferId db = t.buffer("drows", plan::DType::F32, {3, kHidden}),
           ib = t.buffer("ids", plan::DType::I32, {3}),
           tb = t.buffer("dtable", plan::DType::F32, {5, kHidden});
  t.instruction(Op::EmbeddingGrad, {db, ib}, {tb});
  if (!t.prepare())
    return;
  t.upload(db, uniform(3 * kHidden, 113));
  t.upload(ib, {0, 5, 1});
  expectRunError(t.run(), "embedding_grad");
}
