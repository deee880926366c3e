//===- Init.cpp - parameter initialisation keyed by global index ----------===//

#include "loom/runtime/Init.h"
#include "loom/runtime/Philox.h"
#include "loom/runtime/RandomStreams.h"

#include <cmath>

namespace loom {
namespace runtime {

namespace {
/// The normal draw of global element `g` of the stream `key`.
double normalAt(uint64_t g, PhiloxKey key) {
  uint64_t block = g / 2;
  PhiloxCounter c =
      philox4x32_10({{static_cast<PhiloxWord>(block),
                      static_cast<PhiloxWord>(block >> 32), 0, 0}},
                    key);
  unsigned w = 2 * static_cast<unsigned>(g % 2);
  double u1 = uniformOpen01(c.word[w]), u2 = uniformOpen01(c.word[w + 1]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

template <typename T>
void fillNormal(T *data, const TensorBlock &block, double std, uint64_t key) {
  PhiloxKey k{
      {static_cast<PhiloxWord>(key), static_cast<PhiloxWord>(key >> 32)}};
  size_t rank = block.shape.size();
  int64_t count = 1;
  for (int64_t d : block.shape)
    count *= d;
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < count; ++i) {
    // The element's row-major index in the whole tensor.
    uint64_t g = 0;
    for (size_t d = 0; d < rank; ++d)
      g = g * block.globalShape[d] + (block.offset[d] + index[d]);
    data[i] = static_cast<T>(std * normalAt(g, k));
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < block.shape[d])
        break;
      index[d] = 0;
    }
  }
}
} // namespace

bool isKnownInitializer(std::string_view kind) {
  return kind == "normal" || kind == "zeros" || kind == "ones" ||
         kind == "constant";
}

uint64_t parameterKey(uint64_t seed, std::string_view name) {
  return streamKey(seed, StreamPurpose::Parameter, name, 0);
}

TensorBlock TensorBlock::whole(std::vector<int64_t> shape) {
  TensorBlock b;
  b.offset.assign(shape.size(), 0);
  b.globalShape = shape;
  b.shape = std::move(shape);
  return b;
}

void initNormal(float *data, const TensorBlock &block, double std,
                uint64_t key) {
  fillNormal(data, block, std, key);
}
void initNormal(double *data, const TensorBlock &block, double std,
                uint64_t key) {
  fillNormal(data, block, std, key);
}

} // namespace runtime
} // namespace loom
