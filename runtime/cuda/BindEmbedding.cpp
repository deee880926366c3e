//===- BindEmbedding.cpp - the CUDA backend's embeddings, cross-entropy ---===//
//
// Token embeddings (whole tables and vocabulary-parallel blocks) on
// kernels/Embedding.cu, and the cross-entropy on kernels/CrossEntropy.cu:
// whole (with its none/sum/mean reduction), and the vocabulary-parallel
// partials and combine. Bad token ids and labels are reported through the
// instruction's status flag with the CPU backend's messages
// (runtime/cpu/BindEmbedding.cpp): the device never waits for a check.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"
#include "BindRows.h"

#include <vector>

namespace loom {
namespace runtime {
namespace cuda {

namespace {
/// The vocabulary-parallel embedding gradient's row ranges: enough
/// (column, range) owners to fill the device, no more ranges than rows.
int64_t embeddingParts(int64_t vocab, int64_t hidden) {
  constexpr int64_t kOwners = 65536;
  int64_t parts = hidden > 0 ? kOwners / hidden : 1;
  if (parts > vocab)
    parts = vocab;
  return parts < 1 ? 1 : parts;
}

std::function<std::string(int)> badLabel(int64_t classes, int64_t ignore) {
  return [=](int) {
    return "a label is outside [0, " + std::to_string(classes) +
           ") and is not ignore_index " + std::to_string(ignore);
  };
}

Work launches(Device *d, const Instruction &inst, std::vector<Launch> steps) {
  return [=](const StepParams &) {
    for (const Launch &l : steps)
      if (Status s = enqueue(*d, inst, l); !s.ok())
        return s;
    return Status::success();
  };
}
} // namespace

Result<Work> bind(const EmbeddingInstr &r, const Instruction &inst, Binder &b) {
  Device *d = &b.device();
  const void *ids = b.storage(r.ids);
  float *table = b.f32(r.table), *rows = b.f32(r.rows);
  int64_t first = r.split ? r.first : 0, total = r.split ? r.total : r.vocab;
  int *flag = b.statusFlag(inst, [total](int) {
    return "a token id is outside the table's " + std::to_string(total) +
           " rows";
  });
  if (!flag)
    return Status::error("no status flag left for the instruction");
  std::string ending = r.wideIds ? "_i64" : "_i32";
  std::vector<Launch> steps;
  if (r.forward) {
    steps.push_back(
        launchOf("loom_embedding_forward" + ending, gridFor(r.count * r.hidden),
                 kBlockThreads,
                 {table, ids, rows, KernelArg::i64v(r.count),
                  KernelArg::i64v(r.hidden), KernelArg::i64v(first),
                  KernelArg::i64v(r.vocab), KernelArg::i64v(total), flag}));
    return launches(d, inst, std::move(steps));
  }
  int64_t parts = embeddingParts(r.vocab, r.hidden);
  steps.push_back(launchOf("loom_embedding_backward" + ending,
                           gridFor(parts * r.hidden), kBlockThreads,
                           {ids, rows, table, KernelArg::i64v(r.count),
                            KernelArg::i64v(r.hidden), KernelArg::i64v(first),
                            KernelArg::i64v(r.vocab), KernelArg::i64v(total),
                            KernelArg::i64v(parts), flag}));
  size_t tableBytes = size_t(r.vocab * r.hidden) * sizeof(float);
  bool clear = !r.accumulate;
  return Work([=](const StepParams &) {
    if (clear)
      if (Status s = d->clear(table, tableBytes); !s.ok())
        return runError(inst, s.message());
    for (const Launch &l : steps)
      if (Status s = enqueue(*d, inst, l); !s.ok())
        return s;
    return Status::success();
  });
}

Result<Work> bind(const CrossEntropyInstr &r, const Instruction &inst,
                  Binder &b) {
  Device *d = &b.device();
  const float *logits = b.f32(r.logits);
  const void *labels = b.storage(r.labels);
  float *result = b.f32(r.result);
  int *flag = b.statusFlag(inst, badLabel(r.classes, r.ignoreIndex));
  if (!flag)
    return Status::error("no status flag left for the instruction");
  bool none = r.reduction == LossReduction::None;
  float *perToken = nullptr;
  if (!r.forward || !none) {
    Result<void *> scratch =
        b.scratch(size_t(r.tokens) * sizeof(float), "per-token losses");
    if (!scratch.ok())
      return Status::error(scratch.message());
    perToken = static_cast<float *>(*scratch);
  }
  KernelArg tokens = KernelArg::i64v(r.tokens),
            vocab = KernelArg::i64v(r.vocab),
            classes = KernelArg::i64v(r.classes),
            ignore = KernelArg::i64v(r.ignoreIndex);
  Dim3 grid = rowGrid(r.tokens), one{1, 1, 1};
  unsigned threads = rowThreads(r.vocab);
  std::vector<Launch> steps;
  if (r.forward) {
    steps.push_back(launchOf("loom_crossentropy_forward", grid, threads,
                             {logits, labels, none ? result : perToken, tokens,
                              vocab, classes, ignore, flag}));
    if (!none)
      steps.push_back(
          launchOf("loom_crossentropy_reduce", one, kBlockThreads,
                   {perToken, labels, result, tokens, ignore,
                    KernelArg::i32v(r.reduction == LossReduction::Mean)}));
    return launches(d, inst, std::move(steps));
  }
  const float *dloss = b.f32(r.dloss);
  int reduction = none ? 0 : r.reduction == LossReduction::Sum ? 1 : 2;
  steps.push_back(launchOf(
      "loom_crossentropy_token_grads", one, kBlockThreads,
      {dloss, labels, perToken, tokens, ignore, KernelArg::i32v(reduction)}));
  steps.push_back(launchOf("loom_crossentropy_backward", grid, threads,
                           {logits, labels, perToken, result, tokens, vocab,
                            classes, ignore, flag}));
  return launches(d, inst, std::move(steps));
}

Result<Work> bind(const CrossEntropyMaxInstr &r, const Instruction &inst,
                  Binder &b) {
  return launches(
      &b.device(), inst,
      {launchOf("loom_crossentropy_max", rowGrid(r.tokens),
                rowThreads(r.classes),
                {b.f32(r.logits), b.f32(r.max), KernelArg::i64v(r.tokens),
                 KernelArg::i64v(r.classes), KernelArg::i64v(r.first),
                 KernelArg::i64v(r.real)})});
}

Result<Work> bind(const CrossEntropyPartialsInstr &r, const Instruction &inst,
                  Binder &b) {
  Device *d = &b.device();
  const float *z = b.f32(r.logits), *mx = b.f32(r.max);
  const void *labels = b.storage(r.labels);
  float *sumExp = b.f32(r.sumExp), *target = b.f32(r.target);
  int *flag = b.statusFlag(inst, badLabel(r.real, r.ignoreIndex));
  if (!flag)
    return Status::error("no status flag left for the instruction");
  // The kernels bound the labels by the real classes, not the padded total.
  KernelArg tokens = KernelArg::i64v(r.tokens),
            classes = KernelArg::i64v(r.classes),
            first = KernelArg::i64v(r.first), total = KernelArg::i64v(r.real),
            ignore = KernelArg::i64v(r.ignoreIndex);
  if (r.forward)
    return launches(d, inst,
                    {launchOf("loom_crossentropy_partials", rowGrid(r.tokens),
                              rowThreads(r.classes),
                              {z, mx, labels, sumExp, target, tokens, classes,
                               first, total, ignore, flag})});
  float *dz = b.f32(r.dlogits);
  return launches(d, inst,
                  {launchOf("loom_crossentropy_partials_backward",
                            gridFor(r.tokens * r.classes), kBlockThreads,
                            {z, mx, labels, sumExp, target, dz, tokens, classes,
                             first, total, ignore, flag})});
}

Result<Work> bind(const CrossEntropyCombineInstr &r, const Instruction &inst,
                  Binder &b) {
  Device *d = &b.device();
  const float *sumExp = b.f32(r.sumExp), *other = b.f32(r.other);
  const void *labels = b.storage(r.labels);
  float *y = b.f32(r.y);
  KernelArg tokens = KernelArg::i64v(r.tokens),
            ignore = KernelArg::i64v(r.ignoreIndex);
  if (r.forward)
    return launches(
        d, inst,
        {launchOf("loom_crossentropy_combine", gridFor(r.tokens), kBlockThreads,
                  {sumExp, other, labels, y, tokens, ignore})});
  float *y2 = b.f32(r.y2);
  return launches(d, inst,
                  {launchOf("loom_crossentropy_combine_backward",
                            gridFor(r.tokens), kBlockThreads,
                            {sumExp, labels, other, y, y2, tokens, ignore})});
}

} // namespace cuda
} // namespace runtime
} // namespace loom
