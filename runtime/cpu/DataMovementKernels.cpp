//===- DataMovementKernels.cpp - reductions, split/concat, blocks ---------===//
//
// Reference kernels (include/loom/runtime/cpu/Kernels.h) for loom.reduce,
// the copies of split and concat and all_slice's block, for float and
// double.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace loom {
namespace runtime {
namespace cpu {

template <typename T>
void reduceDims(const T *x, const Shape &shape,
                const std::vector<bool> &reduced, bool max, bool mean, T *y,
                int64_t outElements) {
  // The common case, bias gradients: a sum over the leading dimensions.
  size_t prefix = 0;
  while (prefix < reduced.size() && reduced[prefix])
    ++prefix;
  bool leading = !max && std::none_of(reduced.begin() + prefix, reduced.end(),
                                      [](bool r) { return r; });
  if (leading) {
    int64_t rows = 1, cols = outElements;
    for (size_t d = 0; d < prefix; ++d)
      rows *= shape[d];
    std::vector<double> acc(size_t(cols), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        acc[size_t(c)] += x[r * cols + c];
    for (int64_t c = 0; c < cols; ++c)
      y[c] = T(mean ? acc[size_t(c)] / double(rows) : acc[size_t(c)]);
    return;
  }
  std::vector<double> acc(size_t(outElements), max ? -INFINITY : 0.0);
  size_t rank = shape.size();
  std::vector<int64_t> index(rank, 0);
  int64_t n = numElements(shape);
  for (int64_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < rank; ++d)
      if (!reduced[d])
        o = o * shape[d] + index[d];
    acc[o] = max ? std::max(acc[o], double(x[i])) : acc[o] + double(x[i]);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  double count = double(n) / double(std::max<int64_t>(1, outElements));
  for (int64_t o = 0; o < outElements; ++o)
    y[o] = T(mean ? acc[o] / count : acc[o]);
}

template <typename T>
void splitConcat(bool split, T *whole, const std::vector<T *> &pieces,
                 const std::vector<int64_t> &sizes, int64_t outer,
                 int64_t inner, int64_t wholeAxis) {
  int64_t offset = 0;
  for (size_t p = 0; p < pieces.size(); ++p) {
    int64_t size = sizes[p];
    for (int64_t i = 0; i < outer; ++i) {
      T *w = whole + (i * wholeAxis + offset) * inner;
      T *part = pieces[p] + i * size * inner;
      if (split)
        std::copy_n(w, size * inner, part);
      else
        std::copy_n(part, size * inner, w);
    }
    offset += size;
  }
}

void sliceBlock(const void *whole, void *block, size_t outer,
                size_t rowBytes, size_t parts, size_t index) {
  const uint8_t *x = static_cast<const uint8_t *>(whole);
  uint8_t *y = static_cast<uint8_t *>(block);
  for (size_t o = 0; o < outer; ++o)
    std::memcpy(y + o * rowBytes, x + (o * parts + index) * rowBytes,
                rowBytes);
}

#define LOOM_INSTANTIATE(T)                                                    \
  template void reduceDims<T>(const T *, const Shape &,                        \
                              const std::vector<bool> &, bool, bool, T *,      \
                              int64_t);                                        \
  template void splitConcat<T>(bool, T *, const std::vector<T *> &,            \
                               const std::vector<int64_t> &, int64_t, int64_t, \
                               int64_t);
LOOM_INSTANTIATE(float)
LOOM_INSTANTIATE(double)
#undef LOOM_INSTANTIATE

} // namespace cpu
} // namespace runtime
} // namespace loom
