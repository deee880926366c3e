//===- Embedding.cu - the CUDA kernel library: token embeddings ----------===//
//
// Part of the kernel library: see Common.cuh. The reference is
// runtime/cpu/Kernels.cpp (embedding, embeddingBackward) and
// runtime/cpu/VocabParallelKernels.cpp (embeddingBlock,
// embeddingBlockBackward). A whole table is the block with first = 0 and
// total = vocab: the table holds rows [first, first + vocab) of `total`, a
// token it does not hold reads zeros and adds nothing, and a token id
// outside [0, total) sets *flag to 1 (Bind.h, statusFlag).
//
// The gradient is deterministic without float atomics: every element of the
// table is owned by one thread, which adds the tokens' rows in token order,
// so the result is the CPU's bit for bit. A thread owns column h of the
// table rows of one of `parts` row ranges; it walks every token id (cheap,
// the same ids for the whole warp) and reads dy only for the ids in its
// range.
//
//===----------------------------------------------------------------------===//

template <typename I>
LOOM_LIB void
loom_embedding_forward_impl(const float *table, const I *ids, float *rows,
                            long long count, long long hidden, long long first,
                            long long vocab, long long total, int *flag) {
  long long n = count * hidden;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    long long token = i / hidden, h = i % hidden;
    long long id = (long long)ids[token];
    if (id < 0 || id >= total) {
      atomicCAS(flag, 0, 1);
      rows[i] = 0.0f;
      continue;
    }
    long long r = id - first;
    rows[i] = r >= 0 && r < vocab ? table[r * hidden + h] : 0.0f;
  }
}

/// rows[i, :] = table[ids[i] - first, :], zeros for ids the table does not
/// hold. Grid-stride over count · hidden elements.
extern "C" __global__ void
loom_embedding_forward_i32(const float *table, const int *ids, float *rows,
                           long long count, long long hidden, long long first,
                           long long vocab, long long total, int *flag) {
  loom_embedding_forward_impl(table, ids, rows, count, hidden, first, vocab,
                              total, flag);
}
LOOM_KERNEL_ENTRY(loom_embedding_forward_i32)
extern "C" __global__ void
loom_embedding_forward_i64(const float *table, const long long *ids,
                           float *rows, long long count, long long hidden,
                           long long first, long long vocab, long long total,
                           int *flag) {
  loom_embedding_forward_impl(table, ids, rows, count, hidden, first, vocab,
                              total, flag);
}
LOOM_KERNEL_ENTRY(loom_embedding_forward_i64)

template <typename I>
LOOM_LIB void loom_embedding_backward_impl(const I *ids, const float *dy,
                                           float *table, long long count,
                                           long long hidden, long long first,
                                           long long vocab, long long total,
                                           long long parts, int *flag) {
  long long partRows = (vocab + parts - 1) / parts;
  long long items = parts * hidden;
  for (long long w = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       w < items; w += (long long)gridDim.x * blockDim.x) {
    long long h = w % hidden, part = w / hidden;
    long long lo = part * partRows, hi = min(vocab, lo + partRows);
    for (long long t = 0; t < count; ++t) {
      long long id = (long long)ids[t];
      if (id < 0 || id >= total) {
        atomicCAS(flag, 0, 1);
        continue;
      }
      long long r = id - first;
      if (r >= lo && r < hi)
        table[r * hidden + h] += dy[t * hidden + h];
    }
  }
}

/// table[ids[t] - first, :] += dy[t, :] for the ids the table holds, in
/// token order. Grid-stride over parts · hidden owners.
extern "C" __global__ void
loom_embedding_backward_i32(const int *ids, const float *dy, float *table,
                            long long count, long long hidden, long long first,
                            long long vocab, long long total, long long parts,
                            int *flag) {
  loom_embedding_backward_impl(ids, dy, table, count, hidden, first, vocab,
                               total, parts, flag);
}
LOOM_KERNEL_ENTRY(loom_embedding_backward_i32)
extern "C" __global__ void
loom_embedding_backward_i64(const long long *ids, const float *dy, float *table,
                            long long count, long long hidden, long long first,
                            long long vocab, long long total, long long parts,
                            int *flag) {
  loom_embedding_backward_impl(ids, dy, table, count, hidden, first, vocab,
                               total, parts, flag);
}
LOOM_KERNEL_ENTRY(loom_embedding_backward_i64)
