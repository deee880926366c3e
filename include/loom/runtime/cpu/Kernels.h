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

#include "loom/runtime/Decoder.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

namespace loom {
namespace runtime {
namespace cpu {

// The geometry types are the decoder's (loom/runtime/Decoder.h): a record
// and its kernel share them.
using runtime::Activation;
using runtime::BinaryKind;
using runtime::Block;
using runtime::MatmulShape;
using runtime::matmulShapeOf;
using runtime::numElements;
using runtime::Shape;
using runtime::SoftmaxShape;

//===--- Matrix multiplication ------------------------------------------===//

/// The GEMMs (of a MatmulShape) go to OpenBLAS.
template <typename T>
void matmul(const MatmulShape &s, const T *a, const T *b, T *c, T beta = 0);


//===--- Broadcasting elementwise ops -----------------------------------===//

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

/// y = factor · x, or y += x with `accumulate`.
template <typename T>
void scale(const T *x, T *y, int64_t n, T factor, bool accumulate);

/// y = T(x), or y += T(x) with `accumulate`: casts between element types.
template <typename T, typename S>
void castElements(const S *x, T *y, int64_t n, bool accumulate);

//===--- Activations ------------------------------------------------------===//

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

/// dropout on a rank's block of a partitioned tensor (`block`): each
/// element's mask is the whole tensor's at its global index, whose elements
/// start at `offset` (the microbatch's first).
template <typename T>
void dropoutBlock(const T *x, T *y, const Block &block, int64_t offset,
                  double rate, uint64_t key);

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
/// a label is outside [0, classes) and is not ignore_index. Rows are `vocab`
/// long; only their first `classes` (0: all) are real classes, the rest pad
/// the vocabulary and take no part in the softmax.
template <typename T, typename I>
int64_t crossEntropy(const T *logits, const I *labels, int64_t tokens,
                     int64_t vocab, int64_t ignoreIndex, T *losses,
                     int64_t classes = 0);
/// dlogits = dloss[t] · (softmax(logits) - onehot(label)), 0 for ignored
/// tokens and for the padded classes from `classes` on (0: none). Returns
/// false when a label is outside [0, classes) and is not ignore_index.
template <typename T, typename I>
bool crossEntropyBackward(const T *logits, const I *labels, const T *dloss,
                          int64_t tokens, int64_t vocab, int64_t ignoreIndex,
                          T *dlogits, int64_t classes = 0);

/// The reduction of cross_entropy: `result[0]` = the sum of the per-token
/// `losses`, or their mean over the `counted` tokens (0 with none).
template <typename T>
void crossEntropyReduce(const T *losses, int64_t tokens, int64_t counted,
                        bool mean, T *result);
/// Its backward: the per-token loss gradients of a reduction's `dloss`
/// (none: dloss per token; sum: dloss[0]; mean: dloss[0] / counted tokens).
template <typename T, typename I>
void crossEntropyReduceBackward(const T *dloss, const I *labels,
                                int64_t tokens, int64_t ignoreIndex,
                                bool none, bool mean, T *perToken);

//===--- Vocabulary-parallel embedding and cross-entropy ------------------===//
// (Megatron-LM's VocabParallelEmbedding and vocab_parallel_cross_entropy: a
// rank holds rows or classes [first, first + vocab) of `total`.)

/// y[i, :] = table[ids[i] - first, :] for the ids this rank holds, 0 for
/// the others (the all-reduce after adds the owner's row). Returns false
/// when an id is outside [0, total) (rows before it are written).
template <typename T, typename I>
bool embeddingBlock(const T *table, int64_t first, int64_t vocab,
                    int64_t total, int64_t hidden, const I *ids,
                    int64_t count, T *y);
/// dtable[ids[i] - first, :] += dy[i, :] for the ids this rank holds.
template <typename T, typename I>
bool embeddingBlockBackward(const I *ids, int64_t count, int64_t first,
                            int64_t vocab, int64_t total, int64_t hidden,
                            const T *dy, T *dtable);

/// The real classes of a block [first, first + classes) when only the first
/// `real` (0: all) of the vocabulary are real: [0, clamp(real - first, 0,
/// classes)) of the block.
inline int64_t realClassesOfBlock(int64_t classes, int64_t first,
                                  int64_t real) {
  if (real <= 0)
    return classes;
  return std::min(classes, std::max<int64_t>(0, real - first));
}
/// Per token, the max of this rank's block of `classes` (from `first`)
/// over its real classes (the vocabulary's first `real`, 0: all); -inf when
/// the block holds none.
template <typename T>
void crossEntropyMax(const T *logits, int64_t tokens, int64_t classes,
                     int64_t first, int64_t real, T *max);
/// Per token over this rank's `classes` (from `first`): sumExp = sum of
/// exp(logit - max), target = logit[label] - max when this rank holds the
/// label (else 0); `max` is the all-reduced row maximum. Only the first
/// `real` (0: all) classes of the `total` are real: the padded ones are left
/// out. Returns false when a label is outside [0, real or total) and is not
/// ignore_index.
template <typename T, typename I>
bool crossEntropyPartials(const T *logits, const T *max, const I *labels,
                          int64_t tokens, int64_t classes, int64_t first,
                          int64_t total, int64_t ignoreIndex, T *sumExp,
                          T *target, int64_t real = 0);
/// dlogits = a · exp(logit - max), plus b at the label this rank holds; 0
/// at the padded classes.
template <typename T, typename I>
bool crossEntropyPartialsBackward(const T *logits, const T *max,
                                  const I *labels, const T *a, const T *b,
                                  int64_t tokens, int64_t classes,
                                  int64_t first, int64_t total,
                                  int64_t ignoreIndex, T *dlogits,
                                  int64_t real = 0);
/// The loss per token from the all-reduced partials: log(sumExp) - target,
/// 0 for ignored tokens.
template <typename T, typename I>
void crossEntropyCombine(const T *sumExp, const T *target, const I *labels,
                         int64_t tokens, int64_t ignoreIndex, T *loss);
/// Its backward: a = dloss / sumExp, b = -dloss (0 for ignored tokens).
template <typename T, typename I>
void crossEntropyCombineBackward(const T *sumExp, const I *labels,
                                 const T *dloss, int64_t tokens,
                                 int64_t ignoreIndex, T *a, T *b);

//===--- Reductions -------------------------------------------------------===//

/// y = the sum, mean or max of x (of `shape`) over the dimensions marked in
/// `reduced`; y holds the kept dimensions in order (`outElements`).
/// Accumulates in double.
template <typename T>
void reduceDims(const T *x, const Shape &shape,
                const std::vector<bool> &reduced, bool max, bool mean, T *y,
                int64_t outElements);

//===--- Shape ops --------------------------------------------------------===//

/// split (whole -> pieces) or concat (pieces -> whole) along an axis: the
/// whole is `outer` rows of `wholeAxis · inner`; piece i has `sizes[i] ·
/// inner` per row.
template <typename T>
void splitConcat(bool split, T *whole, const std::vector<T *> &pieces,
                 const std::vector<int64_t> &sizes, int64_t outer,
                 int64_t inner, int64_t wholeAxis);

/// all_slice: block `index` of `parts` along a dimension, of any element
/// type: `outer` rows of `rowBytes` each, taken from rows of parts ·
/// rowBytes.
void sliceBlock(const void *whole, void *block, size_t outer,
                size_t rowBytes, size_t parts, size_t index);

/// y = transpose(x, perm): result dimension d is input dimension perm[d].
template <typename T>
void transpose(const T *x, const Shape &xShape,
               const std::vector<int64_t> &perm, T *y);

} // namespace cpu
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CPU_KERNELS_H
