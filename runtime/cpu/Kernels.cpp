//===- Kernels.cpp - the CPU backend's reference kernels ------------------===//

#include "loom/runtime/cpu/Kernels.h"
#include "loom/runtime/Philox.h"
#include "loom/runtime/RandomStreams.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom {
namespace runtime {
namespace cpu {


//===--- Matrix multiplication ------------------------------------------===//

namespace {
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
          int64_t lda, const float *b, int64_t ldb, float beta, float *c) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb,
              beta, c, n);
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double *a,
          int64_t lda, const double *b, int64_t ldb, double beta, double *c) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0, a, lda, b, ldb,
              beta, c, n);
}
} // namespace

template <typename T>
void matmul(const MatmulShape &s, const T *a, const T *b, T *c, T beta) {
  // Row-major leading dimensions of a and b as stored.
  int64_t lda = s.transposeA ? s.m : s.k;
  int64_t ldb = s.transposeB ? s.k : s.n;
  int64_t strideA = s.broadcastA ? 0 : s.m * s.k;
  int64_t strideB = s.broadcastB ? 0 : s.k * s.n;
  for (int64_t i = 0; i < s.batch; ++i)
    gemm(s.transposeA, s.transposeB, s.m, s.n, s.k, a + i * strideA, lda,
         b + i * strideB, ldb, beta, c + i * s.m * s.n);
}


//===--- Broadcasting -----------------------------------------------------===//

namespace {
/// Strides of `shape` seen from `outShape` (aligned right): 0 along the
/// dimensions it broadcasts.
std::vector<int64_t> broadcastStrides(const Shape &shape,
                                      const Shape &outShape) {
  std::vector<int64_t> strides(outShape.size(), 0);
  int64_t stride = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    int64_t o = i + static_cast<int64_t>(outShape.size() - shape.size());
    strides[o] = shape[i] == 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

/// Calls f(outIndex, aIndex, bIndex) for every element of `outShape`.
template <typename F>
void forEachBroadcast(const Shape &outShape, const std::vector<int64_t> &sa,
                      const std::vector<int64_t> &sb, F f) {
  int64_t total = numElements(outShape);
  size_t rank = outShape.size();
  std::vector<int64_t> index(rank, 0);
  int64_t ia = 0, ib = 0;
  for (int64_t o = 0; o < total; ++o) {
    f(o, ia, ib);
    for (size_t d = rank; d-- > 0;) {
      ++index[d];
      ia += sa[d];
      ib += sb[d];
      if (index[d] < outShape[d])
        break;
      ia -= sa[d] * index[d];
      ib -= sb[d] * index[d];
      index[d] = 0;
    }
  }
}
} // namespace

template <typename T>
void broadcastBinary(BinaryKind kind, const T *a, const Shape &aShape,
                     const T *b, const Shape &bShape, T *out,
                     const Shape &outShape) {
  std::vector<int64_t> sa = broadcastStrides(aShape, outShape);
  std::vector<int64_t> sb = broadcastStrides(bShape, outShape);
  forEachBroadcast(outShape, sa, sb, [&](int64_t o, int64_t i, int64_t j) {
    switch (kind) {
    case BinaryKind::Add:
      out[o] = a[i] + b[j];
      break;
    case BinaryKind::Sub:
      out[o] = a[i] - b[j];
      break;
    case BinaryKind::Mul:
      out[o] = a[i] * b[j];
      break;
    case BinaryKind::Div:
      out[o] = a[i] / b[j];
      break;
    }
  });
}

template <typename T>
void reduceToShape(const T *in, const Shape &inShape, T *out,
                   const Shape &outShape) {
  std::fill(out, out + numElements(outShape), T(0));
  std::vector<int64_t> so = broadcastStrides(outShape, inShape);
  std::vector<int64_t> none(inShape.size(), 0);
  forEachBroadcast(inShape, so, none,
                   [&](int64_t i, int64_t o, int64_t) { out[o] += in[i]; });
}

template <typename T>
void scale(const T *x, T *y, int64_t n, T factor, bool accumulate) {
#pragma omp parallel for schedule(static) if (n > 262144)
  for (int64_t i = 0; i < n; ++i)
    y[i] = accumulate ? y[i] + x[i] : factor * x[i];
}

template <typename T, typename S>
void castElements(const S *x, T *y, int64_t n, bool accumulate) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = accumulate ? y[i] + T(x[i]) : T(x[i]);
}

//===--- Activations ------------------------------------------------------===//

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654; // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.7071067811865476;    // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1 / sqrt(2 pi)
constexpr double kGeluCubic = 0.044715;
} // namespace

template <typename T>
void activation(Activation kind, const T *x, T *y, int64_t n) {
  // Every element is independent: threads do not change the result.
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i];
    switch (kind) {
    case Activation::Relu:
      y[i] = v > T(0) ? v : T(0);
      break;
    case Activation::Silu:
      y[i] = v / (T(1) + std::exp(-v));
      break;
    case Activation::Gelu:
      y[i] = T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2)));
      break;
    case Activation::GeluTanh:
      y[i] =
          T(0.5) * v *
          (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v)));
      break;
    }
  }
}

template <typename T>
void activationBackward(Activation kind, const T *x, const T *dy, T *dx,
                        int64_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i], d = 0;
    switch (kind) {
    case Activation::Relu:
      d = v > T(0) ? T(1) : T(0);
      break;
    case Activation::Silu: {
      T s = T(1) / (T(1) + std::exp(-v));
      d = s * (T(1) + v * (T(1) - s));
      break;
    }
    case Activation::Gelu:
      d = T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2))) +
          v * T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
      break;
    case Activation::GeluTanh: {
      T u = T(kSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
      T t = std::tanh(u);
      d = T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * T(kSqrt2OverPi) *
                                    (T(1) + T(3 * kGeluCubic) * v * v);
      break;
    }
    }
    dx[i] = dy[i] * d;
  }
}

//===--- Softmax ----------------------------------------------------------===//

template <typename T>
void softmax(const SoftmaxShape &s, const T *x, const uint8_t *mask, T *y) {
  const T scale = static_cast<T>(s.scale);
#pragma omp parallel for schedule(static) if (s.rows * s.cols > 32768)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T *xr = x + r * s.cols;
    T *yr = y + r * s.cols;
    int64_t visible = s.cols;
    if (s.causal)
      visible = std::clamp<int64_t>(r % s.queries + (s.cols - s.queries) + 1, 0,
                                    s.cols);
    auto kept = [&](int64_t j) {
      return j < visible && (!mask || mask[r * s.cols + j]);
    };
    T max = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < s.cols; ++j)
      if (kept(j))
        max = std::max(max, scale * xr[j]);
    if (max == -std::numeric_limits<T>::infinity()) {
      std::fill(yr, yr + s.cols, T(0)); // every key masked
      continue;
    }
    T sum = 0;
    for (int64_t j = 0; j < s.cols; ++j) {
      yr[j] = kept(j) ? std::exp(scale * xr[j] - max) : T(0);
      sum += yr[j];
    }
    for (int64_t j = 0; j < s.cols; ++j)
      yr[j] /= sum;
  }
}

template <typename T>
void softmaxBackward(const SoftmaxShape &s, const T *y, const T *dy, T *dx) {
  const T scale = static_cast<T>(s.scale);
#pragma omp parallel for schedule(static) if (s.rows * s.cols > 32768)
  for (int64_t r = 0; r < s.rows; ++r) {
    const T *yr = y + r * s.cols, *dyr = dy + r * s.cols;
    T dot = 0;
    for (int64_t j = 0; j < s.cols; ++j)
      dot += dyr[j] * yr[j];
    for (int64_t j = 0; j < s.cols; ++j)
      dx[r * s.cols + j] = scale * yr[j] * (dyr[j] - dot);
  }
}

//===--- Normalisation ----------------------------------------------------===//

template <typename T>
void layerNorm(const T *x, const T *weight, const T *bias, T *y, T *mean,
               T *rstd, int64_t rows, int64_t cols, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * cols;
    T m = 0;
    for (int64_t j = 0; j < cols; ++j)
      m += xr[j];
    m /= T(cols);
    T var = 0;
    for (int64_t j = 0; j < cols; ++j)
      var += (xr[j] - m) * (xr[j] - m);
    var /= T(cols);
    T rs = T(1) / std::sqrt(var + T(eps));
    for (int64_t j = 0; j < cols; ++j)
      y[r * cols + j] = (xr[j] - m) * rs * weight[j] + bias[j];
    mean[r] = m;
    rstd[r] = rs;
  }
}

template <typename T>
void layerNormBackward(const T *x, const T *weight, const T *mean,
                       const T *rstd, const T *dy, T *dx, T *dweight, T *dbias,
                       int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * cols, *dyr = dy + r * cols;
    // With xhat = (x - mean) · rstd and g = dy · weight:
    // dx = rstd · (g - mean(g) - xhat · mean(g · xhat)).
    T meanG = 0, meanGX = 0;
    for (int64_t j = 0; j < cols; ++j) {
      T xhat = (xr[j] - mean[r]) * rstd[r];
      T g = dyr[j] * weight[j];
      meanG += g;
      meanGX += g * xhat;
      dweight[j] += dyr[j] * xhat;
      dbias[j] += dyr[j];
    }
    meanG /= T(cols);
    meanGX /= T(cols);
    for (int64_t j = 0; j < cols; ++j) {
      T xhat = (xr[j] - mean[r]) * rstd[r];
      dx[r * cols + j] = rstd[r] * (dyr[j] * weight[j] - meanG - xhat * meanGX);
    }
  }
}

template <typename T>
void rmsNorm(const T *x, const T *weight, T *y, T *rstd, int64_t rows,
             int64_t cols, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * cols;
    T ms = 0;
    for (int64_t j = 0; j < cols; ++j)
      ms += xr[j] * xr[j];
    ms /= T(cols);
    T rs = T(1) / std::sqrt(ms + T(eps));
    for (int64_t j = 0; j < cols; ++j)
      y[r * cols + j] = xr[j] * rs * weight[j];
    rstd[r] = rs;
  }
}

template <typename T>
void rmsNormBackward(const T *x, const T *weight, const T *rstd, const T *dy,
                     T *dx, T *dweight, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * cols, *dyr = dy + r * cols;
    // dx = rstd · (g - x · rstd² · mean(g · x)), g = dy · weight.
    T meanGX = 0;
    for (int64_t j = 0; j < cols; ++j) {
      meanGX += dyr[j] * weight[j] * xr[j];
      dweight[j] += dyr[j] * xr[j] * rstd[r];
    }
    meanGX /= T(cols);
    for (int64_t j = 0; j < cols; ++j)
      dx[r * cols + j] =
          rstd[r] * (dyr[j] * weight[j] - xr[j] * rstd[r] * rstd[r] * meanGX);
  }
}

//===--- Dropout ----------------------------------------------------------===//

uint64_t dropoutKey(uint64_t seed, std::string_view site, uint64_t step) {
  return streamKey(seed, StreamPurpose::Dropout, site, step);
}

template <typename T>
void dropout(const T *x, T *y, int64_t n, int64_t offset, double rate,
             uint64_t key) {
  const T keepScale = static_cast<T>(1.0 / (1.0 - rate));
  const float threshold = static_cast<float>(rate);
  PhiloxKey k{
      {static_cast<PhiloxWord>(key), static_cast<PhiloxWord>(key >> 32)}};
  // Four elements share one Philox block: element g uses word g % 4 of the
  // block at counter g / 4, so a partition draws what the whole tensor does.
  // One block is drawn per four elements.
  if (n <= 0)
    return;
  const int64_t first = offset / 4, last = (offset + n - 1) / 4;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t block = first; block <= last; ++block) {
    PhiloxCounter c =
        philox4x32_10({{static_cast<PhiloxWord>(uint64_t(block)),
                        static_cast<PhiloxWord>(uint64_t(block) >> 32), 0, 0}},
                      k);
    for (int64_t w = 0; w < 4; ++w) {
      int64_t i = block * 4 + w - offset;
      if (i < 0 || i >= n)
        continue;
      bool keep = uniformOpen01(c.word[w]) >= threshold;
      y[i] = keep ? x[i] * keepScale : T(0);
    }
  }
}

template <typename T>
void dropoutBlock(const T *x, T *y, const Block &block, int64_t offset,
                  double rate, uint64_t key) {
  const Shape &local = block.local;
  int64_t n = numElements(local);
  if (!block.split) {
    dropout<T>(x, y, n, offset, rate, key);
    return;
  }
  // Runs of whole trailing dimensions are contiguous in the block and the
  // whole tensor: each run is one dropout call at its global index.
  size_t rank = local.size(), last = 0;
  for (size_t d = 0; d < rank; ++d)
    if (block.offset[d] != 0 || block.global[d] != local[d])
      last = d;
  int64_t inner = 1, outer = 1;
  for (size_t d = last + 1; d < rank; ++d)
    inner *= local[d];
  for (size_t d = 0; d <= last; ++d)
    outer *= local[d];
  std::vector<int64_t> stride(rank, 1);
  for (size_t d = rank - 1; d-- > 0;)
    stride[d] = stride[d + 1] * block.global[d + 1];
  std::vector<int64_t> index(last + 1, 0);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t g = 0;
    for (size_t d = 0; d <= last; ++d)
      g += (block.offset[d] + index[d]) * stride[d];
    dropout<T>(x + o * inner, y + o * inner, inner, offset + g, rate, key);
    for (size_t d = last + 1; d-- > 0;) {
      if (++index[d] < local[d])
        break;
      index[d] = 0;
    }
  }
}

//===--- Gathers ----------------------------------------------------------===//

template <typename T, typename I>
bool embedding(const T *table, int64_t vocab, int64_t hidden, const I *ids,
               int64_t count, T *y) {
  for (int64_t i = 0; i < count; ++i) {
    int64_t id = static_cast<int64_t>(ids[i]);
    if (id < 0 || id >= vocab)
      return false;
    std::copy(table + id * hidden, table + (id + 1) * hidden, y + i * hidden);
  }
  return true;
}

template <typename T, typename I>
bool embeddingBackward(const I *ids, int64_t count, int64_t vocab,
                       int64_t hidden, const T *dy, T *dtable) {
  for (int64_t i = 0; i < count; ++i) {
    int64_t id = static_cast<int64_t>(ids[i]);
    if (id < 0 || id >= vocab)
      return false;
    T *row = dtable + id * hidden;
    for (int64_t j = 0; j < hidden; ++j)
      row[j] += dy[i * hidden + j];
  }
  return true;
}

//===--- Cross-entropy ----------------------------------------------------===//

template <typename T, typename I>
int64_t crossEntropy(const T *logits, const I *labels, int64_t tokens,
                     int64_t vocab, int64_t ignoreIndex, T *losses,
                     int64_t classes) {
  // The padded columns [classes, vocab) are not classes: they stay out of
  // the max and the sum, and no label may name one.
  int64_t real = classes > 0 ? classes : vocab;
  int64_t counted = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t label = static_cast<int64_t>(labels[t]);
    if (label != ignoreIndex && (label < 0 || label >= real))
      return -1;
    counted += label != ignoreIndex;
  }
  // Rows are independent: threads do not change the result.
#pragma omp parallel for schedule(static) if (tokens * vocab > 32768)
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t label = static_cast<int64_t>(labels[t]);
    if (label == ignoreIndex) {
      losses[t] = 0;
      continue;
    }
    const T *row = logits + t * vocab;
    T max = *std::max_element(row, row + real);
    T sum = 0;
    for (int64_t j = 0; j < real; ++j)
      sum += std::exp(row[j] - max);
    losses[t] = max + std::log(sum) - row[label];
  }
  return counted;
}

template <typename T, typename I>
bool crossEntropyBackward(const T *logits, const I *labels, const T *dloss,
                          int64_t tokens, int64_t vocab, int64_t ignoreIndex,
                          T *dlogits, int64_t classes) {
  int64_t real = classes > 0 ? classes : vocab;
  for (int64_t t = 0; t < tokens; ++t) {
    int64_t label = static_cast<int64_t>(labels[t]);
    if (label != ignoreIndex && (label < 0 || label >= real))
      return false;
  }
#pragma omp parallel for schedule(static) if (tokens * vocab > 32768)
  for (int64_t t = 0; t < tokens; ++t) {
    const T *row = logits + t * vocab;
    T *drow = dlogits + t * vocab;
    int64_t label = static_cast<int64_t>(labels[t]);
    if (label == ignoreIndex) {
      std::fill(drow, drow + vocab, T(0));
      continue;
    }
    T max = *std::max_element(row, row + real);
    T sum = 0;
    for (int64_t j = 0; j < real; ++j)
      sum += std::exp(row[j] - max);
    for (int64_t j = 0; j < real; ++j)
      drow[j] = dloss[t] * (std::exp(row[j] - max) / sum - T(j == label));
    std::fill(drow + real, drow + vocab, T(0));
  }
  return true;
}

//===--- Shape ops --------------------------------------------------------===//

template <typename T>
void transpose(const T *x, const Shape &xShape,
               const std::vector<int64_t> &perm, T *y) {
  size_t rank = xShape.size();
  std::vector<int64_t> inStrides(rank, 1);
  for (size_t d = rank; d-- > 1;)
    inStrides[d - 1] = inStrides[d] * xShape[d];
  Shape outShape(rank);
  std::vector<int64_t> strides(rank); // input stride of each output dimension
  for (size_t d = 0; d < rank; ++d) {
    outShape[d] = xShape[perm[d]];
    strides[d] = inStrides[perm[d]];
  }
  std::vector<int64_t> none(rank, 0);
  forEachBroadcast(outShape, strides, none,
                   [&](int64_t o, int64_t i, int64_t) { y[o] = x[i]; });
}

//===--- Instantiations ---------------------------------------------------===//

#define LOOM_INSTANTIATE(T)                                                    \
  template void matmul<T>(const MatmulShape &, const T *, const T *, T *, T);  \
  template void broadcastBinary<T>(BinaryKind, const T *, const Shape &,       \
                                   const T *, const Shape &, T *,              \
                                   const Shape &);                             \
  template void reduceToShape<T>(const T *, const Shape &, T *,                \
                                 const Shape &);                               \
  template void activation<T>(Activation, const T *, T *, int64_t);            \
  template void activationBackward<T>(Activation, const T *, const T *, T *,   \
                                      int64_t);                                \
  template void softmax<T>(const SoftmaxShape &, const T *, const uint8_t *,   \
                           T *);                                               \
  template void softmaxBackward<T>(const SoftmaxShape &, const T *, const T *, \
                                   T *);                                       \
  template void layerNorm<T>(const T *, const T *, const T *, T *, T *, T *,   \
                             int64_t, int64_t, double);                        \
  template void layerNormBackward<T>(const T *, const T *, const T *,          \
                                     const T *, const T *, T *, T *, T *,      \
                                     int64_t, int64_t);                        \
  template void rmsNorm<T>(const T *, const T *, T *, T *, int64_t, int64_t,   \
                           double);                                            \
  template void rmsNormBackward<T>(const T *, const T *, const T *, const T *, \
                                   T *, T *, int64_t, int64_t);                \
  template void dropout<T>(const T *, T *, int64_t, int64_t, double,           \
                           uint64_t);                                          \
  template void dropoutBlock<T>(const T *, T *, const Block &, int64_t,        \
                                double, uint64_t);                             \
  template void transpose<T>(const T *, const Shape &,                         \
                             const std::vector<int64_t> &, T *);               \
  template bool embedding<T, int32_t>(const T *, int64_t, int64_t,             \
                                      const int32_t *, int64_t, T *);          \
  template bool embedding<T, int64_t>(const T *, int64_t, int64_t,             \
                                      const int64_t *, int64_t, T *);          \
  template bool embeddingBackward<T, int32_t>(                                 \
      const int32_t *, int64_t, int64_t, int64_t, const T *, T *);             \
  template bool embeddingBackward<T, int64_t>(                                 \
      const int64_t *, int64_t, int64_t, int64_t, const T *, T *);             \
  template int64_t crossEntropy<T, int32_t>(                                   \
      const T *, const int32_t *, int64_t, int64_t, int64_t, T *, int64_t);    \
  template int64_t crossEntropy<T, int64_t>(                                   \
      const T *, const int64_t *, int64_t, int64_t, int64_t, T *, int64_t);    \
  template bool crossEntropyBackward<T, int32_t>(const T *, const int32_t *,   \
                                                 const T *, int64_t, int64_t,  \
                                                 int64_t, T *, int64_t);       \
  template bool crossEntropyBackward<T, int64_t>(const T *, const int64_t *,   \
                                                 const T *, int64_t, int64_t,  \
                                                 int64_t, T *, int64_t);

LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE
template void scale<float>(const float *, float *, int64_t, float, bool);
template void scale<double>(const double *, double *, int64_t, double, bool);
template void castElements<float, float>(const float *, float *, int64_t,
                                         bool);
template void castElements<float, int32_t>(const int32_t *, float *, int64_t,
                                           bool);
template void castElements<double, double>(const double *, double *, int64_t,
                                           bool);
template void castElements<double, int32_t>(const int32_t *, double *,
                                            int64_t, bool);

} // namespace cpu
} // namespace runtime
} // namespace loom
