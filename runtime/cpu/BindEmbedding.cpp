//===- BindEmbedding.cpp - the CPU backend's embeddings, cross-entropy ----===//
//
// Token embeddings (whole tables and vocabulary-parallel blocks) and the
// cross-entropy: whole, and the vocabulary-parallel partials and combine.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "loom/runtime/cpu/Kernels.h"

#include <algorithm>
#include <memory>

namespace loom {
namespace runtime {
namespace cpu {

namespace {
template <typename I>
bool runEmbedding(const EmbeddingInstr &r, void *ids, float *table,
                  float *rows) {
  const I *id = static_cast<const I *>(ids);
  if (r.split)
    return r.forward
               ? embeddingBlock<float, I>(table, r.first, r.vocab, r.total,
                                          r.hidden, id, r.count, rows)
               : embeddingBlockBackward<float, I>(id, r.count, r.first,
                                                  r.vocab, r.total, r.hidden,
                                                  rows, table);
  return r.forward ? embedding<float, I>(table, r.vocab, r.hidden, id,
                                         r.count, rows)
                   : embeddingBackward<float, I>(id, r.count, r.vocab,
                                                 r.hidden, rows, table);
}

Status badLabel(const Instruction &inst, int64_t classes, int64_t ignore) {
  return runError(inst, "a label is outside [0, " + std::to_string(classes) +
                            ") and is not ignore_index " +
                            std::to_string(ignore));
}
} // namespace

Result<Kernel> bind(const EmbeddingInstr &r, const Instruction &inst,
                    Binder &b) {
  void *ids = b.storage(r.ids);
  float *table = b.f32(r.table), *rows = b.f32(r.rows);
  EmbeddingInstr e = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    if (!e.forward && !e.accumulate)
      std::fill(table, table + e.vocab * e.hidden, 0.0f);
    bool ok = e.wideIds ? runEmbedding<int64_t>(e, ids, table, rows)
                        : runEmbedding<int32_t>(e, ids, table, rows);
    return ok ? Status::success()
              : runError(inst, "a token id is outside the table's " +
                                   std::to_string(e.split ? e.total : e.vocab) +
                                   " rows");
  });
}

Result<Kernel> bind(const CrossEntropyInstr &r, const Instruction &inst,
                    Binder &b) {
  const int32_t *labels = b.as<int32_t>(r.labels);
  float *logits = b.f32(r.logits), *result = b.f32(r.result);
  float *dl = r.forward ? nullptr : b.f32(r.dloss);
  CrossEntropyInstr c = r;
  auto scratch = std::make_shared<std::vector<float>>(size_t(r.tokens));
  return Kernel([=](const StepParams &, StepOutputs &) {
    float *perToken = scratch->data();
    if (c.forward) {
      int64_t counted =
          crossEntropy<float, int32_t>(logits, labels, c.tokens, c.vocab,
                                       c.ignoreIndex, perToken, c.classes);
      if (counted < 0)
        return badLabel(inst, c.classes, c.ignoreIndex);
      if (c.reduction == LossReduction::None)
        std::copy(perToken, perToken + c.tokens, result);
      else
        crossEntropyReduce<float>(perToken, c.tokens, counted,
                                  c.reduction == LossReduction::Mean, result);
      return Status::success();
    }
    crossEntropyReduceBackward<float, int32_t>(
        dl, labels, c.tokens, c.ignoreIndex,
        c.reduction == LossReduction::None,
        c.reduction == LossReduction::Mean, perToken);
    if (!crossEntropyBackward<float, int32_t>(logits, labels, perToken,
                                              c.tokens, c.vocab, c.ignoreIndex,
                                              result, c.classes))
      return badLabel(inst, c.classes, c.ignoreIndex);
    return Status::success();
  });
}

Result<Kernel> bind(const CrossEntropyMaxInstr &r, const Instruction &,
                    Binder &b) {
  const float *z = b.f32(r.logits);
  float *mx = b.f32(r.max);
  CrossEntropyMaxInstr c = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    crossEntropyMax<float>(z, c.tokens, c.classes, c.first, c.real, mx);
    return Status::success();
  });
}

Result<Kernel> bind(const CrossEntropyPartialsInstr &r,
                    const Instruction &inst, Binder &b) {
  const float *z = b.f32(r.logits), *mx = b.f32(r.max);
  const int32_t *labels = b.as<int32_t>(r.labels);
  float *sumExp = b.f32(r.sumExp), *target = b.f32(r.target);
  float *dz = r.forward ? nullptr : b.f32(r.dlogits);
  CrossEntropyPartialsInstr c = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    bool ok = c.forward
                  ? crossEntropyPartials<float, int32_t>(
                        z, mx, labels, c.tokens, c.classes, c.first, c.total,
                        c.ignoreIndex, sumExp, target, c.real)
                  : crossEntropyPartialsBackward<float, int32_t>(
                        z, mx, labels, sumExp, target, c.tokens, c.classes,
                        c.first, c.total, c.ignoreIndex, dz, c.real);
    return ok ? Status::success() : badLabel(inst, c.real, c.ignoreIndex);
  });
}

Result<Kernel> bind(const CrossEntropyCombineInstr &r, const Instruction &,
                    Binder &b) {
  const float *sumExp = b.f32(r.sumExp), *other = b.f32(r.other);
  const int32_t *labels = b.as<int32_t>(r.labels);
  float *y = b.f32(r.y), *y2 = r.forward ? nullptr : b.f32(r.y2);
  CrossEntropyCombineInstr c = r;
  return Kernel([=](const StepParams &, StepOutputs &) {
    if (c.forward)
      crossEntropyCombine<float, int32_t>(sumExp, other, labels, c.tokens,
                                          c.ignoreIndex, y);
    else
      crossEntropyCombineBackward<float, int32_t>(sumExp, labels, other,
                                                  c.tokens, c.ignoreIndex, y,
                                                  y2);
    return Status::success();
  });
}

} // namespace cpu
} // namespace runtime
} // namespace loom
