//===- Reference.h - double references the kernel library lacks -*- C++ -*-===//
//
// The suite's oracle is the CPU backend's kernel library run in double
// (loom/runtime/cpu/Kernels.h). Where an op's reference is not a kernel of
// that library (the reductions, the vocabulary-parallel cross-entropy's
// pieces, AdamW's update, the rounding of a cast), it is written here from
// the op's definition in docs/dialect.md and the headers' comments, in
// double, independently of any backend.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_CONFORMANCE_REFERENCE_H
#define LOOM_TEST_CONFORMANCE_REFERENCE_H

#include "loom/runtime/Optimizer.h"
#include "loom/runtime/Plan.h"

#include <cstdint>
#include <vector>

namespace loom {
namespace conformance {
namespace reference {

/// x rounded to the nearest value of `dtype` (f32, bf16, f16), ties to
/// even; past the largest finite value, an infinity (f16 overflows at
/// 65520). Exact arithmetic in double: no backend's conversion is used.
double roundTo(double x, plan::DType dtype);

enum class Reduction { Sum, Mean, Max };
/// x of `shape` reduced over `dims`, the kept dimensions in order.
std::vector<double> reduce(const std::vector<double> &x,
                           const std::vector<int64_t> &shape,
                           const std::vector<int64_t> &dims, Reduction kind);

/// The vocabulary-parallel cross-entropy over a block [first, first +
/// classes) of the classes, per token t (logits row z, the whole row's max
/// m, label l): sumExp = Σ_c exp(z_c - m), target = z_{l - first} - m when
/// the label is in the block, else 0 (and both for ignored tokens too,
/// target 0).
void crossEntropyPartials(const std::vector<double> &logits,
                          const std::vector<double> &max,
                          const std::vector<double> &labels, int64_t tokens,
                          int64_t classes, int64_t first, int64_t ignoreIndex,
                          std::vector<double> &sumExp,
                          std::vector<double> &target);
/// The backward of one block: dlogits_c = a · exp(z_c - m), plus b at the
/// label's class when it is in the block.
std::vector<double> crossEntropyPartialsGrad(
    const std::vector<double> &logits, const std::vector<double> &max,
    const std::vector<double> &labels, const std::vector<double> &a,
    const std::vector<double> &b, int64_t tokens, int64_t classes,
    int64_t first, int64_t ignoreIndex);
/// loss_t = log(sumExp_t) - target_t (0 for ignored tokens).
std::vector<double> crossEntropyCombine(const std::vector<double> &sumExp,
                                        const std::vector<double> &target,
                                        const std::vector<double> &labels,
                                        int64_t ignoreIndex);
/// a_t = dloss_t / sumExp_t and b_t = -dloss_t (0 for ignored tokens): with
/// the partials' backward, dloss · (softmax - onehot).
void crossEntropyCombineGrad(const std::vector<double> &sumExp,
                             const std::vector<double> &labels,
                             const std::vector<double> &dloss,
                             int64_t ignoreIndex, std::vector<double> &a,
                             std::vector<double> &b);

/// One AdamW step in double, from the formula of
/// loom/runtime/cpu/Optimizer.h: g = grad · scale, m = β1·m + (1-β1)·g,
/// v = β2·v + (1-β2)·g², p -= lr · ((m / (1-β1^t)) / (sqrt(v / (1-β2^t)) +
/// eps) + wd · p).
void adamw(const runtime::AdamW &config, double lr, double weightDecay,
           int64_t step, double scale, std::vector<double> &param,
           const std::vector<double> &grad, std::vector<double> &m,
           std::vector<double> &v);

} // namespace reference
} // namespace conformance
} // namespace loom

#endif // LOOM_TEST_CONFORMANCE_REFERENCE_H
