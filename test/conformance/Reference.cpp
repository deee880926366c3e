//===- Reference.cpp - double references the kernel library lacks ---------===//

#include "Reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace loom {
namespace conformance {
namespace reference {

double roundTo(double x, plan::DType dtype) {
  if (!std::isfinite(x) || x == 0)
    return x;
  int bits, minExponent; // significant bits, smallest normal exponent
  double largest;
  switch (dtype) {
  case plan::DType::BF16:
    bits = 8, minExponent = -126, largest = std::ldexp(2 - 0x1p-7, 127);
    break;
  case plan::DType::F16:
    bits = 11, minExponent = -14, largest = 65504;
    break;
  default:
    bits = 24, minExponent = -126, largest = std::ldexp(2 - 0x1p-23, 127);
    break;
  }
  int exponent;
  std::frexp(x, &exponent); // |x| in [2^(exponent-1), 2^exponent)
  // Below the normals the spacing stays that of the smallest exponent.
  int lead = std::max(exponent - 1, minExponent);
  double spacing = std::ldexp(1.0, lead - (bits - 1));
  // x / spacing is exact (a power of two); nearbyint rounds half to even.
  double rounded = std::nearbyint(x / spacing) * spacing;
  if (std::abs(rounded) > largest)
    return std::copysign(std::numeric_limits<double>::infinity(), x);
  return rounded;
}

std::vector<double> reduce(const std::vector<double> &x,
                           const std::vector<int64_t> &shape,
                           const std::vector<int64_t> &dims, Reduction kind) {
  size_t rank = shape.size();
  std::vector<bool> reduced(rank, false);
  for (int64_t d : dims)
    reduced[size_t(d)] = true;
  int64_t outElements = 1, count = 1;
  for (size_t d = 0; d < rank; ++d)
    (reduced[d] ? count : outElements) *= shape[d];
  std::vector<double> y(
      size_t(outElements),
      kind == Reduction::Max ? -std::numeric_limits<double>::infinity() : 0.0);
  std::vector<int64_t> index(rank, 0);
  for (size_t i = 0; i < x.size(); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < rank; ++d)
      if (!reduced[d])
        o = o * shape[d] + index[d];
    double &acc = y[size_t(o)];
    acc = kind == Reduction::Max ? std::max(acc, x[i]) : acc + x[i];
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  if (kind == Reduction::Mean)
    for (double &v : y)
      v /= double(count);
  return y;
}

void crossEntropyPartials(const std::vector<double> &logits,
                          const std::vector<double> &max,
                          const std::vector<double> &labels, int64_t tokens,
                          int64_t classes, int64_t first, int64_t ignoreIndex,
                          std::vector<double> &sumExp,
                          std::vector<double> &target) {
  sumExp.assign(size_t(tokens), 0.0);
  target.assign(size_t(tokens), 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    const double *z = logits.data() + t * classes;
    double m = max[size_t(t)];
    for (int64_t c = 0; c < classes; ++c)
      sumExp[size_t(t)] += std::exp(z[c] - m);
    int64_t label = int64_t(labels[size_t(t)]), mine = label - first;
    if (label != ignoreIndex && mine >= 0 && mine < classes)
      target[size_t(t)] = z[mine] - m;
  }
}

std::vector<double> crossEntropyPartialsGrad(
    const std::vector<double> &logits, const std::vector<double> &max,
    const std::vector<double> &labels, const std::vector<double> &a,
    const std::vector<double> &b, int64_t tokens, int64_t classes,
    int64_t first, int64_t ignoreIndex) {
  std::vector<double> dz(size_t(tokens * classes));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = 0; c < classes; ++c)
      dz[size_t(t * classes + c)] =
          a[size_t(t)] *
          std::exp(logits[size_t(t * classes + c)] - max[size_t(t)]);
    int64_t label = int64_t(labels[size_t(t)]), mine = label - first;
    if (label != ignoreIndex && mine >= 0 && mine < classes)
      dz[size_t(t * classes + mine)] += b[size_t(t)];
  }
  return dz;
}

std::vector<double> crossEntropyCombine(const std::vector<double> &sumExp,
                                        const std::vector<double> &target,
                                        const std::vector<double> &labels,
                                        int64_t ignoreIndex) {
  std::vector<double> loss(sumExp.size(), 0.0);
  for (size_t t = 0; t < loss.size(); ++t)
    if (int64_t(labels[t]) != ignoreIndex)
      loss[t] = std::log(sumExp[t]) - target[t];
  return loss;
}

void crossEntropyCombineGrad(const std::vector<double> &sumExp,
                             const std::vector<double> &labels,
                             const std::vector<double> &dloss,
                             int64_t ignoreIndex, std::vector<double> &a,
                             std::vector<double> &b) {
  a.assign(sumExp.size(), 0.0);
  b.assign(sumExp.size(), 0.0);
  for (size_t t = 0; t < sumExp.size(); ++t)
    if (int64_t(labels[t]) != ignoreIndex) {
      a[t] = dloss[t] / sumExp[t];
      b[t] = -dloss[t];
    }
}

void adamw(const runtime::AdamW &c, double lr, double weightDecay, int64_t step,
           double scale, std::vector<double> &param,
           const std::vector<double> &grad, std::vector<double> &m,
           std::vector<double> &v) {
  double t = double(std::max<int64_t>(step, 1));
  double correction1 = 1 - std::pow(c.beta1, t),
         correction2 = 1 - std::pow(c.beta2, t);
  for (size_t i = 0; i < param.size(); ++i) {
    double g = grad[i] * scale;
    m[i] = c.beta1 * m[i] + (1 - c.beta1) * g;
    v[i] = c.beta2 * v[i] + (1 - c.beta2) * g * g;
    double update =
        (m[i] / correction1) / (std::sqrt(v[i] / correction2) + c.eps);
    param[i] -= lr * (update + weightDecay * param[i]);
  }
}

} // namespace reference
} // namespace conformance
} // namespace loom
