//===- Kernels.h - the CPU backend's reference kernels ----------*- C++ -*-===//
//
// One forward kernel per primitive op of the loom dialect, and a backward
// kernel wherever the vector-Jacobian product is not just other forward
// kernels. Dense row-major tensors are a pointer and a shape. Every kernel is
// instantiated for float (what the CPU backend runs) and double (what the
// gradient checks run). The CPU backend is the oracle: these kernels are
// written for clarity first, and are independent of the code generator.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CPU_KERNELS_H
#define LOOM_RUNTIME_CPU_KERNELS_H

#include <cstdint>
#include <string_view>
#include <vector>

namespace loom {
namespace runtime {
namespace cpu {

using Shape = std::vector<int64_t>;

int64_t numElements(const Shape &shape);

//===--- Matrix multiplication ------------------------------------------===//

/// c[i] = beta·c[i] + op(a[i]) · op(b[i]) for each of `batch` matrices, with
/// op = transpose when asked: op(a) is m×k, op(b) is k×n, c is m×n. A side
/// with `broadcast` set is one matrix used for every batch element. GEMMs go
/// to OpenBLAS.
struct MatmulShape {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transposeA = false, transposeB = false;
  bool broadcastA = false, broadcastB = false;
};
template <typename T>
void matmul(const MatmulShape &s, const T *a, const T *b, T *c, T beta = 0);

/// The GEMMs of loom.matmul on row-major operands of shapes `a` and `b`
/// (rank 2 or more; a rank-2 side broadcasts over the other's batch). A
/// batch of x[b, m, k] · w[k, n] folds into one GEMM of b·m rows.
MatmulShape matmulShapeOf(const Shape &a, const Shape &b, bool transposeA,
                          bool transposeB);

//===--- Broadcasting elementwise ops -----------------------------------===//

enum class BinaryKind { Add, Sub, Mul, Div };

/// out = a (op) b with numpy broadcasting; `outShape` is the broadcast shape.
template <typename T>
void broadcastBinary(BinaryKind kind, const T *a, const Shape &aShape,
                     const T *b, const Shape &bShape, T *out,
                     const Shape &outShape);

/// Sums `in` (of `inShape`) down to `outShape`, which broadcasts to it: the
/// backward of a broadcast.
template <typename T>
void reduceToShape(const T *in, const Shape &inShape, T *out,
                   const Shape &outShape);

//===--- Activations ------------------------------------------------------===//

enum class Activation { Relu, Silu, Gelu, GeluTanh };

template <typename T>
void activation(Activation kind, const T *x, T *y, int64_t n);
/// dx = dy · f'(x).
template <typename T>
void activationBackward(Activation kind, const T *x, const T *dy, T *dx,
                        int64_t n);

//===--- Softmax ----------------------------------------------------------===//

/// Rows of length `cols` (the keys); `queries` is the size of the dimension
/// before the last, for the causal mask: row r is query r % queries, and key
/// j is masked when j > query + (cols - queries). `mask`, if not null, has
/// one byte per element (already broadcast), nonzero = keep. Masked
/// positions are -inf before the exponent; a row with every key masked is 0.
struct SoftmaxShape {
  int64_t rows = 0, cols = 0, queries = 1;
  bool causal = false;
  double scale = 1.0;
};
template <typename T>
void softmax(const SoftmaxShape &s, const T *x, const uint8_t *mask, T *y);
/// dx = scale · y · (dy - sum(dy · y)) per row.
template <typename T>
void softmaxBackward(const SoftmaxShape &s, const T *y, const T *dy, T *dx);

//===--- Normalisation ----------------------------------------------------===//

/// Over rows of length `cols`. `mean` and `rstd` (one per row) are saved for
/// the backward.
template <typename T>
void layerNorm(const T *x, const T *weight, const T *bias, T *y, T *mean,
               T *rstd, int64_t rows, int64_t cols, double eps);
/// dx, and dweight/dbias accumulated (+=) over rows.
template <typename T>
void layerNormBackward(const T *x, const T *weight, const T *mean,
                       const T *rstd, const T *dy, T *dx, T *dweight, T *dbias,
                       int64_t rows, int64_t cols);

template <typename T>
void rmsNorm(const T *x, const T *weight, T *y, T *rstd, int64_t rows,
             int64_t cols, double eps);
template <typename T>
void rmsNormBackward(const T *x, const T *weight, const T *rstd, const T *dy,
                     T *dx, T *dweight, int64_t rows, int64_t cols);

//===--- Dropout ----------------------------------------------------------===//

/// The key of a dropout site's random stream: a hash of (seed, site name,
/// step). Element i of the site's tensor is kept when the Philox draw keyed by
/// this and its global index i is at least `rate`, so any partition of the
/// tensor draws the same mask.
uint64_t dropoutKey(uint64_t seed, std::string_view site, uint64_t step);

/// y = x · keep / (1 - rate) for the `n` elements whose global indices start
/// at `offset`. The backward is the same function applied to dy.
template <typename T>
void dropout(const T *x, T *y, int64_t n, int64_t offset, double rate,
             uint64_t key);

//===--- Gathers ----------------------------------------------------------===//

/// y[i, :] = table[ids[i], :]. Returns false (and writes nothing further)
/// when an index is outside [0, vocab).
template <typename T, typename I>
bool embedding(const T *table, int64_t vocab, int64_t hidden, const I *ids,
               int64_t count, T *y);
/// dtable[ids[i], :] += dy[i, :]. Returns false when an index is outside
/// [0, vocab) (rows before it are already added).
template <typename T, typename I>
bool embeddingBackward(const I *ids, int64_t count, int64_t vocab,
                       int64_t hidden, const T *dy, T *dtable);

//===--- Cross-entropy ----------------------------------------------------===//

/// Per token: logsumexp(logits) - logits[label], 0 for ignore_index. Writes
/// the per-token losses and returns the number of tokens counted, or -1 when
/// a label is outside [0, vocab) and is not ignore_index.
template <typename T, typename I>
int64_t crossEntropy(const T *logits, const I *labels, int64_t tokens,
                     int64_t vocab, int64_t ignoreIndex, T *losses);
/// dlogits = dloss[t] · (softmax(logits) - onehot(label)), 0 for ignored
/// tokens. Returns false when a label is outside [0, vocab) and is not
/// ignore_index.
template <typename T, typename I>
bool crossEntropyBackward(const T *logits, const I *labels, const T *dloss,
                          int64_t tokens, int64_t vocab, int64_t ignoreIndex,
                          T *dlogits);

//===--- Shape ops --------------------------------------------------------===//

/// y = transpose(x, perm): result dimension d is input dimension perm[d].
template <typename T>
void transpose(const T *x, const Shape &xShape,
               const std::vector<int64_t> &perm, T *y);

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_KERNELS_H
