//===- Init.h - parameter initialisation keyed by global index --*- C++ -*-===//
//
// DESIGN.md's Invariance: the same seed gives the same model on 1 rank or 64.
// Each element of a parameter is drawn from a Philox stream keyed by (seed,
// the parameter's name) at a counter given by the element's *global* index,
// its row-major position in the unpartitioned tensor. A rank holding any
// block of the tensor (a tensor-parallel shard) draws exactly the numbers
// the whole tensor would have there.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_INIT_H
#define LOOM_RUNTIME_INIT_H

#include <cstdint>
#include <string_view>
#include <vector>

namespace loom {
namespace runtime {

/// Whether the runtime knows the initializer `kind` a plan names for a
/// parameter: normal, zeros, ones or constant. A plan naming another is
/// refused at load rather than started from some default.
bool isKnownInitializer(std::string_view kind);

/// The key of a parameter's stream: a hash of (seed, name).
uint64_t parameterKey(uint64_t seed, std::string_view name);

/// A rectangular block of a tensor: the whole tensor's shape, the block's
/// starting coordinates and its shape. The block is stored row-major.
struct TensorBlock {
  std::vector<int64_t> globalShape;
  std::vector<int64_t> offset;
  std::vector<int64_t> shape;

  /// The whole tensor as one block.
  static TensorBlock whole(std::vector<int64_t> shape);
};

/// Fills `block` of a parameter with N(0, std²) draws: element g (its global
/// index) takes the Box–Muller normal of Philox block g / 2, words
/// 2·(g % 2) and 2·(g % 2) + 1.
void initNormal(float *data, const TensorBlock &block, double std,
                uint64_t key);
void initNormal(double *data, const TensorBlock &block, double std,
                uint64_t key);

} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_INIT_H
