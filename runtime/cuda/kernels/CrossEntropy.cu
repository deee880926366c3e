//===- CrossEntropy.cu - the CUDA kernel library: cross-entropy ----------===//
//
// Part of the kernel library: see Common.cuh. The reference is
// runtime/cpu/Kernels.cpp (crossEntropy, crossEntropyBackward) and
// runtime/cpu/VocabParallelKernels.cpp (the reductions, the
// vocabulary-parallel partials and combine). Labels are i32 (the decoder
// checks it). A label outside [0, classes) that is not ignore_index sets
// *flag to 1 (Bind.h, statusFlag). Only the first `classes` of a row's
// `vocab` columns (of the partials' `total`: `real`) are classes; the rest
// pad the vocabulary and stay out of the max and the sum, with gradient 0.
//
// Row kernels are one block per token (grid-stride over tokens), the row's
// max and sum block reductions; the reductions over tokens are one block
// with fixed-order trees: every result is the same every run.
//
//===----------------------------------------------------------------------===//

LOOM_LIB bool loom_crossentropy_bad_label(long long label, long long classes,
                                          long long ignoreIndex) {
  return label != ignoreIndex && (label < 0 || label >= classes);
}

/// losses[t] = logsumexp(logits[t, :classes]) - logits[t, label], 0 for
/// ignore_index. Needs blockDim.x a multiple of 32.
extern "C" __global__ void
loom_crossentropy_forward(const float *logits, const int *labels, float *losses,
                          long long tokens, long long vocab, long long classes,
                          long long ignoreIndex, int *flag) {
  __shared__ float shared[32];
  for (long long t = blockIdx.x; t < tokens; t += gridDim.x) {
    long long label = labels[t];
    if (label == ignoreIndex ||
        loom_crossentropy_bad_label(label, classes, ignoreIndex)) {
      if (threadIdx.x == 0) {
        losses[t] = 0.0f;
        if (label != ignoreIndex)
          atomicCAS(flag, 0, 1);
      }
      continue;
    }
    const float *row = logits + t * vocab;
    float m = loom_lib_float(0xFF800000u);
    for (long long j = threadIdx.x; j < classes; j += blockDim.x)
      m = fmaxf(m, row[j]);
    m = loom_lib_block_max(m, shared);
    float sum = 0.0f;
    for (long long j = threadIdx.x; j < classes; j += blockDim.x)
      sum += expf(row[j] - m);
    sum = loom_lib_block_sum(sum, shared);
    if (threadIdx.x == 0)
      losses[t] = m + logf(sum) - row[label];
  }
}
LOOM_KERNEL_ENTRY(loom_crossentropy_forward)

/// The number of labels that are not ignore_index, by one block (the
/// caller launches one): into *counted.
LOOM_LIB long long loom_crossentropy_count(const int *labels, long long tokens,
                                           long long ignoreIndex,
                                           double *shared) {
  double n = 0.0;
  for (long long t = threadIdx.x; t < tokens; t += blockDim.x)
    n += (long long)labels[t] != ignoreIndex ? 1.0 : 0.0;
  // Counts below 2^53 are exact in double, whatever the order.
  return (long long)loom_lib_block_sum_double(n, shared);
}

/// result[0] = the sum of the `tokens` losses (in double), or their mean
/// over the tokens whose label is not ignore_index (`mean` != 0; 0 with
/// none). One block of a multiple of 32 threads; more blocks do the same.
extern "C" __global__ void
loom_crossentropy_reduce(const float *losses, const int *labels, float *result,
                         long long tokens, long long ignoreIndex, int mean) {
  __shared__ double shared[32];
  double s = 0.0;
  for (long long t = threadIdx.x; t < tokens; t += blockDim.x)
    s += (double)losses[t];
  s = loom_lib_block_sum_double(s, shared);
  long long counted =
      mean ? loom_crossentropy_count(labels, tokens, ignoreIndex, shared) : 0;
  if (blockIdx.x == 0 && threadIdx.x == 0)
    result[0] = (float)(!mean ? s : counted ? s / (double)counted : 0.0);
}
LOOM_KERNEL_ENTRY(loom_crossentropy_reduce)

/// The per-token loss gradients of a reduction's dloss: `reduction` 0
/// none (dloss per token), 1 sum (dloss[0]), 2 mean (dloss[0] over the
/// counted tokens). One block of a multiple of 32 threads.
extern "C" __global__ void
loom_crossentropy_token_grads(const float *dloss, const int *labels,
                              float *perToken, long long tokens,
                              long long ignoreIndex, int reduction) {
  __shared__ double shared[32];
  float each = 0.0f;
  if (reduction == 2) {
    long long counted =
        loom_crossentropy_count(labels, tokens, ignoreIndex, shared);
    each = counted ? (float)((double)dloss[0] / (double)counted) : 0.0f;
  } else if (reduction == 1) {
    each = dloss[0];
  }
  if (blockIdx.x != 0)
    return;
  for (long long t = threadIdx.x; t < tokens; t += blockDim.x)
    perToken[t] = reduction == 0 ? dloss[t] : each;
}
LOOM_KERNEL_ENTRY(loom_crossentropy_token_grads)

/// dlogits[t, :] = perToken[t] · (softmax(logits[t, :]) - onehot(label)),
/// 0 for ignore_index and at the padded columns [classes, vocab). dlogits
/// may be logits. Needs blockDim.x a multiple of 32.
extern "C" __global__ void
loom_crossentropy_backward(const float *logits, const int *labels,
                           const float *perToken, float *dlogits,
                           long long tokens, long long vocab, long long classes,
                           long long ignoreIndex, int *flag) {
  __shared__ float shared[32];
  for (long long t = blockIdx.x; t < tokens; t += gridDim.x) {
    long long label = labels[t];
    float *drow = dlogits + t * vocab;
    if (label == ignoreIndex ||
        loom_crossentropy_bad_label(label, classes, ignoreIndex)) {
      for (long long j = threadIdx.x; j < vocab; j += blockDim.x)
        drow[j] = 0.0f;
      if (threadIdx.x == 0 && label != ignoreIndex)
        atomicCAS(flag, 0, 1);
      continue;
    }
    const float *row = logits + t * vocab;
    float m = loom_lib_float(0xFF800000u);
    for (long long j = threadIdx.x; j < classes; j += blockDim.x)
      m = fmaxf(m, row[j]);
    m = loom_lib_block_max(m, shared);
    float sum = 0.0f;
    for (long long j = threadIdx.x; j < classes; j += blockDim.x)
      sum += expf(row[j] - m);
    sum = loom_lib_block_sum(sum, shared);
    float d = perToken[t];
    // Each thread reads and writes only its own keys: in place is safe.
    for (long long j = threadIdx.x; j < vocab; j += blockDim.x)
      drow[j] = j < classes
                    ? d * (expf(row[j] - m) / sum - (j == label ? 1.0f : 0.0f))
                    : 0.0f;
  }
}
LOOM_KERNEL_ENTRY(loom_crossentropy_backward)

/// Where token t's label falls in this rank's classes [first, first +
/// classes), or -1 (not held, or ignored).
LOOM_LIB long long loom_crossentropy_held(long long label,
                                          long long ignoreIndex,
                                          long long first, long long classes) {
  long long mine = label != ignoreIndex ? label - first : -1;
  return mine >= 0 && mine < classes ? mine : -1;
}

/// The real classes of this rank's block: [0, clamp(real - first, 0,
/// classes)).
LOOM_LIB long long loom_crossentropy_real(long long classes, long long first,
                                          long long real) {
  long long mine = real - first;
  return mine < 0 ? 0 : mine < classes ? mine : classes;
}

/// The per-token max of this rank's block over its real classes (-inf when
/// it holds none): the shift the vocabulary-parallel partials subtract.
/// Needs blockDim.x a multiple of 32.
extern "C" __global__ void
loom_crossentropy_max(const float *logits, float *max, long long tokens,
                      long long classes, long long first, long long real) {
  __shared__ float shared[32];
  long long mine = loom_crossentropy_real(classes, first, real);
  for (long long t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float *row = logits + t * classes;
    float m = loom_lib_float(0xFF800000u);
    for (long long c = threadIdx.x; c < mine; c += blockDim.x)
      m = fmaxf(m, row[c]);
    m = loom_lib_block_max(m, shared);
    if (threadIdx.x == 0)
      max[t] = m;
  }
}
LOOM_KERNEL_ENTRY(loom_crossentropy_max)

/// The vocabulary-parallel forward partials of each token over this rank's
/// classes: sumExp = sum of exp(logit - max) (in double) over its real
/// classes, target = logit[label] - max when the rank holds the label (else
/// 0). A label outside [0, real) sets *flag. Needs blockDim.x a multiple of
/// 32.
extern "C" __global__ void
loom_crossentropy_partials(const float *logits, const float *max,
                           const int *labels, float *sumExp, float *target,
                           long long tokens, long long classes, long long first,
                           long long real, long long ignoreIndex, int *flag) {
  __shared__ double shared[32];
  long long held = loom_crossentropy_real(classes, first, real);
  for (long long t = blockIdx.x; t < tokens; t += gridDim.x) {
    const float *row = logits + t * classes;
    long long label = labels[t];
    if (threadIdx.x == 0 &&
        loom_crossentropy_bad_label(label, real, ignoreIndex))
      atomicCAS(flag, 0, 1);
    long long mine = loom_crossentropy_held(label, ignoreIndex, first, classes);
    double m = (double)max[t];
    double s = 0.0;
    for (long long c = threadIdx.x; c < held; c += blockDim.x)
      s += exp((double)row[c] - m);
    s = loom_lib_block_sum_double(s, shared);
    if (threadIdx.x == 0) {
      sumExp[t] = (float)s;
      target[t] = mine >= 0 ? row[mine] - max[t] : 0.0f;
    }
  }
}
LOOM_KERNEL_ENTRY(loom_crossentropy_partials)

/// Its backward: dlogits = a · exp(logit - max), plus b at the label this
/// rank holds; 0 at the padded classes. Grid-stride over tokens · classes
/// elements.
extern "C" __global__ void loom_crossentropy_partials_backward(
    const float *logits, const float *max, const int *labels, const float *a,
    const float *b, float *dlogits, long long tokens, long long classes,
    long long first, long long real, long long ignoreIndex, int *flag) {
  long long n = tokens * classes;
  long long held = loom_crossentropy_real(classes, first, real);
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    long long t = i / classes, c = i % classes;
    long long label = labels[t];
    if (c == 0 && loom_crossentropy_bad_label(label, real, ignoreIndex))
      atomicCAS(flag, 0, 1);
    float d =
        c < held
            ? (float)((double)a[t] * exp((double)logits[i] - (double)max[t]))
            : 0.0f;
    if (c == loom_crossentropy_held(label, ignoreIndex, first, classes))
      d += b[t];
    dlogits[i] = d;
  }
}
LOOM_KERNEL_ENTRY(loom_crossentropy_partials_backward)

/// The loss per token from the all-reduced partials: log(sumExp) - target,
/// 0 for ignored tokens. Grid-stride over tokens.
extern "C" __global__ void
loom_crossentropy_combine(const float *sumExp, const float *target,
                          const int *labels, float *loss, long long tokens,
                          long long ignoreIndex) {
  for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       t < tokens; t += (long long)gridDim.x * blockDim.x)
    loss[t] = (long long)labels[t] != ignoreIndex
                  ? (float)(log((double)sumExp[t]) - (double)target[t])
                  : 0.0f;
}
LOOM_KERNEL_ENTRY(loom_crossentropy_combine)

/// Its backward: a = dloss / sumExp, b = -dloss (0 for ignored tokens).
extern "C" __global__ void
loom_crossentropy_combine_backward(const float *sumExp, const int *labels,
                                   const float *dloss, float *a, float *b,
                                   long long tokens, long long ignoreIndex) {
  for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
       t < tokens; t += (long long)gridDim.x * blockDim.x) {
    bool counted = (long long)labels[t] != ignoreIndex;
    a[t] = counted ? (float)((double)dloss[t] / (double)sumExp[t]) : 0.0f;
    b[t] = counted ? -dloss[t] : 0.0f;
  }
}
LOOM_KERNEL_ENTRY(loom_crossentropy_combine_backward)
