//===- EmbeddingKernelsTest.cpp - kernels/Embedding.cu against the CPU's --===//
//
// Token embeddings under emulation against runtime/cpu's embedding,
// embeddingBackward, embeddingBlock and embeddingBlockBackward: i32 and i64
// ids, whole tables and vocabulary-parallel blocks with first > 0, repeated
// ids, grids smaller than the work, ids outside the vocabulary. The
// gradient adds in token order, so it equals the CPU's bit for bit.
//
//===----------------------------------------------------------------------===//

#include "Compare.h"
#include "Emulated.h"

#include "loom/runtime/cpu/Kernels.h"

#include <vector>

namespace loom {
namespace test {
namespace {

/// A table block: rows [first, first + vocab) of `total`.
struct TableBlock {
  int64_t first, vocab, total;
};

template <typename I> std::string suffix() {
  return sizeof(I) == 8 ? "_i64" : "_i32";
}

template <typename I>
std::vector<float> forward(const std::vector<float> &table,
                           const std::vector<I> &ids, int64_t hidden,
                           TableBlock t, unsigned grid, int *flag) {
  std::vector<float> rows(ids.size() * size_t(hidden), -7.0f);
  EXPECT_EQ(launchKernel("loom_embedding_forward" + suffix<I>(),
                         Dim3{grid, 1, 1}, Dim3{32, 1, 1},
                         {table.data(), ids.data(), rows.data(),
                          i64(int64_t(ids.size())), i64(hidden), i64(t.first),
                          i64(t.vocab), i64(t.total), flag}),
            "");
  return rows;
}

template <typename I>
void backward(const std::vector<I> &ids, const std::vector<float> &dy,
              std::vector<float> &table, int64_t hidden, TableBlock t,
              int64_t parts, unsigned grid, int *flag) {
  EXPECT_EQ(launchKernel("loom_embedding_backward" + suffix<I>(),
                         Dim3{grid, 1, 1}, Dim3{32, 1, 1},
                         {ids.data(), dy.data(), table.data(),
                          i64(int64_t(ids.size())), i64(hidden), i64(t.first),
                          i64(t.vocab), i64(t.total), i64(parts), flag}),
            "");
}

template <typename I> void checkForward(TableBlock t, bool split) {
  int64_t hidden = 37;
  std::vector<float> table = randomFloats(size_t(t.vocab * hidden), 1);
  std::vector<I> ids{0, 11, 4, 5, 8, 4, 3, 9, 2}; // all of [0, 12)
  std::vector<float> want(ids.size() * size_t(hidden));
  bool ok = split ? runtime::cpu::embeddingBlock<float, I>(
                        table.data(), t.first, t.vocab, t.total, hidden,
                        ids.data(), int64_t(ids.size()), want.data())
                  : runtime::cpu::embedding<float, I>(
                        table.data(), t.vocab, hidden, ids.data(),
                        int64_t(ids.size()), want.data());
  ASSERT_TRUE(ok);
  for (unsigned grid : {1u, 3u, 20u}) {
    int flag = 0;
    std::vector<float> got = forward(table, ids, hidden, t, grid, &flag);
    EXPECT_EQ(flag, 0);
    EXPECT_EQ(got, want) << "grid " << grid; // a copy: exact
  }
}

TEST(EmbeddingKernels, ForwardWholeTable) {
  checkForward<int32_t>({0, 12, 12}, false);
  checkForward<int64_t>({0, 12, 12}, false);
}

TEST(EmbeddingKernels, ForwardVocabularyParallelBlock) {
  checkForward<int32_t>({4, 5, 12}, true); // rows 4..8 of 12
  checkForward<int64_t>({7, 5, 12}, true); // the last rows
}

template <typename I> void checkBackward(TableBlock t, bool split) {
  int64_t hidden = 37;
  // Repeated ids: the order of the additions matters for bit equality.
  std::vector<I> ids{4, 11, 4, 5, 8, 4, 0, 9, 5, 8, 4, 7};
  std::vector<float> dy = randomFloats(ids.size() * size_t(hidden), 2, -3, 3);
  std::vector<float> want = randomFloats(size_t(t.vocab * hidden), 3);
  std::vector<float> start = want; // accumulate onto what is there
  bool ok = split ? runtime::cpu::embeddingBlockBackward<float, I>(
                        ids.data(), int64_t(ids.size()), t.first, t.vocab,
                        t.total, hidden, dy.data(), want.data())
                  : runtime::cpu::embeddingBackward<float, I>(
                        ids.data(), int64_t(ids.size()), t.vocab, hidden,
                        dy.data(), want.data());
  ASSERT_TRUE(ok);
  for (int64_t parts : {1, 2, 3, 5})
    for (unsigned grid : {1u, 2u, 9u}) {
      std::vector<float> got = start;
      int flag = 0;
      backward(ids, dy, got, hidden, t, parts, grid, &flag);
      EXPECT_EQ(flag, 0);
      EXPECT_EQ(got, want) << "parts " << parts << ", grid " << grid;
    }
}

TEST(EmbeddingKernels, BackwardWholeTable) {
  checkBackward<int32_t>({0, 12, 12}, false);
  checkBackward<int64_t>({0, 12, 12}, false);
}

TEST(EmbeddingKernels, BackwardVocabularyParallelBlock) {
  checkBackward<int32_t>({4, 5, 12}, true);
  checkBackward<int64_t>({3, 4, 12}, true);
}

TEST(EmbeddingKernels, OneElement) {
  std::vector<float> table{2.5f};
  std::vector<int32_t> ids{0};
  int flag = 0;
  EXPECT_EQ(forward(table, ids, 1, {0, 1, 1}, 1, &flag),
            std::vector<float>{2.5f});
  std::vector<float> dy{0.5f};
  backward(ids, dy, table, 1, {0, 1, 1}, 1, 1, &flag);
  EXPECT_EQ(table, std::vector<float>{3.0f});
  EXPECT_EQ(flag, 0);
}

TEST(EmbeddingKernels, IdsOutsideTheVocabularySetTheFlag) {
  int64_t hidden = 5;
  std::vector<float> table = randomFloats(size_t(5 * hidden), 4);
  for (std::vector<int64_t> ids :
       {std::vector<int64_t>{1, 12}, std::vector<int64_t>{-1, 2}}) {
    int flag = 0;
    forward(table, ids, hidden, {4, 5, 12}, 2, &flag);
    EXPECT_EQ(flag, 1) << "forward, id " << ids[0] << " " << ids[1];
    std::vector<float> dy = randomFloats(ids.size() * size_t(hidden), 5);
    flag = 0;
    backward(ids, dy, table, hidden, {4, 5, 12}, 2, 2, &flag);
    EXPECT_EQ(flag, 1) << "backward, id " << ids[0] << " " << ids[1];
  }
  // A whole table of 12 rows: 11 is in, 12 is out.
  std::vector<float> whole = randomFloats(size_t(12 * hidden), 6);
  std::vector<int32_t> in{11}, out{12};
  int flag = 0;
  forward(whole, in, hidden, {0, 12, 12}, 1, &flag);
  EXPECT_EQ(flag, 0);
  forward(whole, out, hidden, {0, 12, 12}, 1, &flag);
  EXPECT_EQ(flag, 1);
}

} // namespace
} // namespace test
} // namespace loom
