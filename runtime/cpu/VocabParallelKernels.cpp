//===- VocabParallelKernels.cpp - partitioned embedding and cross-entropy ===//
//
// The reference kernels of the vocabulary-parallel embedding and
// cross-entropy (include/loom/runtime/cpu/Kernels.h), and the reductions
// of a whole cross-entropy. For float and double, like every kernel.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom {
namespace runtime {
namespace cpu {

template <typename T>
void crossEntropyReduce(const T *losses, int64_t tokens, int64_t counted,
                        bool mean, T *result) {
  double sum = 0;
  for (int64_t t = 0; t < tokens; ++t)
    sum += losses[t];
  result[0] = T(!mean ? sum : counted ? sum / double(counted) : 0.0);
}

template <typename T, typename I>
void crossEntropyReduceBackward(const T *dloss, const I *labels,
                                int64_t tokens, int64_t ignoreIndex,
                                bool none, bool mean, T *perToken) {
  int64_t counted = std::count_if(labels, labels + tokens, [&](I l) {
    return int64_t(l) != ignoreIndex;
  });
  for (int64_t t = 0; t < tokens; ++t)
    perToken[t] = none    ? dloss[t]
                  : !mean ? dloss[0]
                          : (counted ? T(double(dloss[0]) / double(counted))
                                     : T(0));
}

template <typename T, typename I>
bool embeddingBlock(const T *table, int64_t first, int64_t vocab,
                    int64_t total, int64_t hidden, const I *ids,
                    int64_t count, T *y) {
  for (int64_t i = 0; i < count; ++i) {
    int64_t t = int64_t(ids[i]);
    if (t < 0 || t >= total)
      return false;
    int64_t r = t - first;
    T *row = y + i * hidden;
    if (r >= 0 && r < vocab)
      std::copy_n(table + r * hidden, hidden, row);
    else
      std::fill(row, row + hidden, T(0));
  }
  return true;
}

template <typename T, typename I>
bool embeddingBlockBackward(const I *ids, int64_t count, int64_t first,
                            int64_t vocab, int64_t total, int64_t hidden,
                            const T *dy, T *dtable) {
  for (int64_t i = 0; i < count; ++i) {
    int64_t t = int64_t(ids[i]);
    if (t < 0 || t >= total)
      return false;
    int64_t r = t - first;
    if (r < 0 || r >= vocab)
      continue;
    T *dst = dtable + r * hidden;
    const T *row = dy + i * hidden;
    for (int64_t h = 0; h < hidden; ++h)
      dst[h] += row[h];
  }
  return true;
}

namespace {
template <typename I>
bool labelsInRange(const I *labels, int64_t tokens, int64_t total,
                   int64_t ignoreIndex) {
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t l = int64_t(labels[t]);
    if (l != ignoreIndex && (l < 0 || l >= total))
      return false;
  }
  return true;
}
/// Where a token's label falls in this rank's `classes` from `first`, or -1
/// when the rank does not hold it (or the token is ignored).
template <typename I>
int64_t heldClass(I label, int64_t ignoreIndex, int64_t first,
                  int64_t classes) {
  int64_t l = int64_t(label), mine = l != ignoreIndex ? l - first : -1;
  return mine >= 0 && mine < classes ? mine : -1;
}
} // namespace

template <typename T>
void crossEntropyMax(const T *logits, int64_t tokens, int64_t classes,
                     int64_t first, int64_t real, T *max) {
  int64_t mine = realClassesOfBlock(classes, first, real);
  for (int64_t t = 0; t < tokens; ++t) {
    const T *row = logits + t * classes;
    max[t] = mine ? *std::max_element(row, row + mine)
                  : -std::numeric_limits<T>::infinity();
  }
}

template <typename T, typename I>
bool crossEntropyPartials(const T *logits, const T *max, const I *labels,
                          int64_t tokens, int64_t classes, int64_t first,
                          int64_t total, int64_t ignoreIndex, T *sumExp,
                          T *target, int64_t real) {
  if (!labelsInRange(labels, tokens, real > 0 ? real : total, ignoreIndex))
    return false;
  // The padded classes [real, total) are not classes: no label names one,
  // and they stay out of the sum.
  int64_t mineReal = realClassesOfBlock(classes, first, real);
#pragma omp parallel for schedule(static) if (tokens * classes > 65536)
  for (int64_t t = 0; t < tokens; ++t) {
    const T *row = logits + t * classes;
    int64_t mine = heldClass(labels[t], ignoreIndex, first, classes);
    T m = max[t];
    double sum = 0;
    for (int64_t c = 0; c < mineReal; ++c)
      sum += std::exp(double(row[c]) - double(m));
    sumExp[t] = T(sum);
    target[t] = mine >= 0 ? row[mine] - m : T(0);
  }
  return true;
}

template <typename T, typename I>
bool crossEntropyPartialsBackward(const T *logits, const T *max,
                                  const I *labels, const T *a, const T *b,
                                  int64_t tokens, int64_t classes,
                                  int64_t first, int64_t total,
                                  int64_t ignoreIndex, T *dlogits,
                                  int64_t real) {
  if (!labelsInRange(labels, tokens, real > 0 ? real : total, ignoreIndex))
    return false;
  int64_t mineReal = realClassesOfBlock(classes, first, real);
#pragma omp parallel for schedule(static) if (tokens * classes > 65536)
  for (int64_t t = 0; t < tokens; ++t) {
    const T *row = logits + t * classes;
    int64_t mine = heldClass(labels[t], ignoreIndex, first, classes);
    T m = max[t];
    T *drow = dlogits + t * classes;
    for (int64_t c = 0; c < mineReal; ++c)
      drow[c] = T(double(a[t]) * std::exp(double(row[c]) - double(m)));
    std::fill(drow + mineReal, drow + classes, T(0));
    if (mine >= 0)
      drow[mine] += b[t];
  }
  return true;
}

template <typename T, typename I>
void crossEntropyCombine(const T *sumExp, const T *target, const I *labels,
                         int64_t tokens, int64_t ignoreIndex, T *loss) {
  for (int64_t t = 0; t < tokens; ++t)
    loss[t] = int64_t(labels[t]) != ignoreIndex
                  ? T(std::log(double(sumExp[t])) - target[t])
                  : T(0);
}

template <typename T, typename I>
void crossEntropyCombineBackward(const T *sumExp, const I *labels,
                                 const T *dloss, int64_t tokens,
                                 int64_t ignoreIndex, T *a, T *b) {
  for (int64_t t = 0; t < tokens; ++t) {
    bool counted = int64_t(labels[t]) != ignoreIndex;
    a[t] = counted ? T(double(dloss[t]) / double(sumExp[t])) : T(0);
    b[t] = counted ? -dloss[t] : T(0);
  }
}

#define LOOM_INSTANTIATE(T, I)                                                 \
  template void crossEntropyReduceBackward<T, I>(                              \
      const T *, const I *, int64_t, int64_t, bool, bool, T *);                \
  template bool embeddingBlock<T, I>(const T *, int64_t, int64_t, int64_t,     \
                                     int64_t, const I *, int64_t, T *);        \
  template bool embeddingBlockBackward<T, I>(                                  \
      const I *, int64_t, int64_t, int64_t, int64_t, int64_t, const T *, T *); \
  template bool crossEntropyPartials<T, I>(const T *, const T *, const I *,    \
                                           int64_t, int64_t, int64_t, int64_t, \
                                           int64_t, T *, T *, int64_t);        \
  template bool crossEntropyPartialsBackward<T, I>(                            \
      const T *, const T *, const I *, const T *, const T *, int64_t, int64_t, \
      int64_t, int64_t, int64_t, T *, int64_t);                                \
  template void crossEntropyCombine<T, I>(const T *, const T *, const I *,     \
                                          int64_t, int64_t, T *);              \
  template void crossEntropyCombineBackward<T, I>(                             \
      const T *, const I *, const T *, int64_t, int64_t, T *, T *);

template void crossEntropyMax<float>(const float *, int64_t, int64_t, int64_t,
                                     int64_t, float *);
template void crossEntropyMax<double>(const double *, int64_t, int64_t, int64_t,
                                      int64_t, double *);

LOOM_INSTANTIATE(float, int32_t)
LOOM_INSTANTIATE(float, int64_t)
LOOM_INSTANTIATE(double, int32_t)
LOOM_INSTANTIATE(double, int64_t)
#undef LOOM_INSTANTIATE
template void crossEntropyReduce<float>(const float *, int64_t, int64_t, bool,
                                        float *);
template void crossEntropyReduce<double>(const double *, int64_t, int64_t,
                                         bool, double *);

} // namespace cpu
} // namespace runtime
} // namespace loom
