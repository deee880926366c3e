//===- FlashAttention.cu - the CUDA kernel library: flash attention ------===//
//
// Part of the kernel library: see Common.cuh. Attention without the
// [queries, keys] score matrix in memory, in the FlashAttention-2 structure
// (Dao, arXiv 2307.08691; Triton's 06-fused-attention.py): the forward
// keeps a query tile in shared memory and streams key/value tiles through an
// online softmax; the backward recomputes the probabilities from Q, K and
// the saved row log-sum-exp. This is the f32 correctness-first version
// (tensor cores and bf16 tiles are future work: docs/cuda.md).
//
// Semantics are the plan's composition (matmul, softmax, dropout, matmul) on
// the CPU backend: S = scale · Q Kᵀ; key j of query q is masked when
// j > q + (keys - queries) (causal, SoftmaxShape's rule) or j ≥ length[b /
// heads] (padding); a row with every key masked is 0; P is dropped as the
// CPU's dropout would drop the softmax output, element g = (bh · queries +
// q) · keys + j + offset of the [bh, queries, keys] tensor keeps when
// loom_lib_dropout_keep(key, g, rate), scaled by 1 / (1 - rate).
//
// Q, dO, O, dQ are [bh, queries, headDim]; K, V, dK, dV [bh, keys,
// headDim]; L (the natural-log log-sum-exp of the scaled scores, -inf for a
// row with every key masked) and the backward's Delta are [bh, queries].
// headDim is any value up to 128: an entry _dN handles headDim ≤ N (the
// missing dimensions are zeros in shared memory and never stored).
//
// Every entry takes 128 threads per block (4 warps; another block size
// returns without writing) and any grid: blocks stride over the tiles.
// Every sum has a fixed order (no atomics), so results are deterministic.
//
//===----------------------------------------------------------------------===//

/// The block size every flash entry assumes, and its key tile (one key per
/// lane in the forward).
constexpr int loom_flash_threads = 128;
constexpr int loom_flash_warps = loom_flash_threads / 32;
constexpr int loom_flash_key_tile = 32;

// The loops over a thread's accumulators are unrolled so the arrays stay in
// registers (the host compiler does not know these pragmas).
#ifdef LOOM_CUDA_EMULATION
#define LOOM_FLASH_PRAGMA(text)
#else
#define LOOM_FLASH_PRAGMA(text) _Pragma(#text)
#endif
#define LOOM_FLASH_UNROLL LOOM_FLASH_PRAGMA(unroll)

LOOM_LIB float loom_flash_neg_inf() { return loom_lib_float(0xFF800000u); }

/// Whether key `kk` is visible to query `qq` (both in range of their
/// sequences' starts): SoftmaxShape's causal rule and the padding length.
LOOM_LIB bool loom_flash_visible(long long qq, long long kk, long long queries,
                                 long long keys, long long length, int causal) {
  return kk < keys && kk < length && (!causal || kk <= qq + (keys - queries));
}

/// The end of the keys a query tile [q0, q0 + rows) can see: tiles past it
/// are all masked, so the loops stop there.
LOOM_LIB long long loom_flash_key_end(long long q0, int rows, long long queries,
                                      long long keys, long long length,
                                      int causal) {
  long long end = keys < length ? keys : length;
  if (causal) {
    long long last = q0 + rows + (keys - queries); // one past the last row's
    end = end < last ? end : last;
  }
  return end;
}

/// The key length of batch·head `b`: keys when there is no padding mask.
LOOM_LIB long long loom_flash_length(const long long *lengths, long long b,
                                     long long heads, long long keys) {
  return lengths ? lengths[b / heads] : keys;
}

/// The dropout factor of element g: 1 without dropout, else 0 or
/// 1 / (1 - rate) as the CPU's dropout draws it.
LOOM_LIB float loom_flash_keep_factor(unsigned long long key, long long g,
                                      float threshold, float keepScale) {
  return loom_lib_dropout_keep(key, g, threshold) ? keepScale : 0.0f;
}

template <int D> LOOM_LIB float loom_flash_dot(const float *a, const float *b) {
  float s = 0.0f;
  for (int d = 0; d < D; ++d)
    s += a[d] * b[d];
  return s;
}

LOOM_LIB float loom_flash_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
/// A butterfly: every lane adds the same pairs, so all get the same sum.
LOOM_LIB float loom_flash_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

//===--- Forward ----------------------------------------------------------===//

/// A block owns a tile of Br queries of one batch·head (warp w its rows
/// [w · Br/4, (w + 1) · Br/4)); lane j scores key j of each 32-key tile, and
/// lane l accumulates output dimensions l, l + 32, ... of its warp's rows.
template <int D, int Br>
LOOM_LIB void loom_flash_forward_tiles(
    const float *q, const float *k, const float *v, float *o, float *lse,
    long long bh, long long queries, long long keys, long long headDim,
    long long heads, const long long *lengths, float scale, int causal,
    double rate, unsigned long long key, long long offset) {
  constexpr int Bc = loom_flash_key_tile, RPW = Br / loom_flash_warps,
                DL = D / 32;
  static_assert(Br % loom_flash_warps == 0 && D % 32 == 0, "tile shapes");
  __shared__ float qs[Br][D];
  __shared__ float ks[Bc][D + 1]; // padded: lanes read different rows
  __shared__ float vs[Bc][D];
  __shared__ float ps[Br][Bc];
  if (blockDim.x != loom_flash_threads)
    return;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const float negInf = loom_flash_neg_inf();
  const float threshold = (float)rate;
  const float keepScale = (float)(1.0 / (1.0 - rate));
  const long long qTiles = (queries + Br - 1) / Br;
  for (long long tile = blockIdx.x; tile < bh * qTiles; tile += gridDim.x) {
    const long long b = tile / qTiles, q0 = tile % qTiles * Br;
    const long long length = loom_flash_length(lengths, b, heads, keys);
    const long long kEnd =
        loom_flash_key_end(q0, Br, queries, keys, length, causal);
    __syncthreads(); // the previous tile's readers of qs are done
    for (int e = tid; e < Br * D; e += loom_flash_threads) {
      int r = e / D, d = e % D;
      long long qq = q0 + r;
      qs[r][d] = qq < queries && d < headDim
                     ? q[(b * queries + qq) * headDim + d]
                     : 0.0f;
    }
    float m[RPW], l[RPW], acc[RPW][DL];
    LOOM_FLASH_UNROLL
    for (int i = 0; i < RPW; ++i) {
      m[i] = negInf;
      l[i] = 0.0f;
      LOOM_FLASH_UNROLL
      for (int c = 0; c < DL; ++c)
        acc[i][c] = 0.0f;
    }
    for (long long k0 = 0; k0 < kEnd; k0 += Bc) {
      __syncthreads(); // qs is written; the last tile's ks/vs are read
      for (int e = tid; e < Bc * D; e += loom_flash_threads) {
        int j = e / D, d = e % D;
        long long kk = k0 + j;
        bool in = kk < keys && d < headDim;
        ks[j][d] = in ? k[(b * keys + kk) * headDim + d] : 0.0f;
        vs[j][d] = in ? v[(b * keys + kk) * headDim + d] : 0.0f;
      }
      __syncthreads();
      const long long kk = k0 + lane;
      float alpha[RPW];
      LOOM_FLASH_UNROLL
      for (int i = 0; i < RPW; ++i) {
        const int r = warp * RPW + i;
        const long long qq = q0 + r;
        const bool visible =
            qq < queries &&
            loom_flash_visible(qq, kk, queries, keys, length, causal);
        float s = visible ? scale * loom_flash_dot<D>(qs[r], ks[lane]) : negInf;
        float mNew = fmaxf(m[i], loom_flash_warp_max(s));
        // Until a row has seen a visible key its max is -inf: nothing to
        // rescale, and exp(-inf - -inf) would be NaN.
        float p = 0.0f, a = 1.0f;
        if (mNew != negInf) {
          p = visible ? expf(s - mNew) : 0.0f;
          a = expf(m[i] - mNew);
        }
        l[i] = l[i] * a + loom_flash_warp_sum(p);
        m[i] = mNew;
        alpha[i] = a;
        // The sum l is of the undropped probabilities: dropout applies to
        // the normalised P, and O = dropout(P) V = (dropped p) V / l.
        if (rate > 0.0 && visible)
          p *= loom_flash_keep_factor(key,
                                      (b * queries + qq) * keys + kk + offset,
                                      threshold, keepScale);
        ps[r][lane] = p;
      }
      __syncwarp(); // each warp reads back only its own rows of ps
      LOOM_FLASH_UNROLL
      for (int i = 0; i < RPW; ++i) {
        const int r = warp * RPW + i;
        LOOM_FLASH_UNROLL
        for (int c = 0; c < DL; ++c) {
          float x = acc[i][c] * alpha[i];
          for (int j = 0; j < Bc; ++j)
            x += ps[r][j] * vs[j][lane + 32 * c];
          acc[i][c] = x;
        }
      }
    }
    LOOM_FLASH_UNROLL
    for (int i = 0; i < RPW; ++i) {
      const long long qq = q0 + warp * RPW + i;
      if (qq >= queries)
        continue;
      const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
      LOOM_FLASH_UNROLL
      for (int c = 0; c < DL; ++c) {
        const int d = lane + 32 * c;
        if (d < headDim)
          o[(b * queries + qq) * headDim + d] = acc[i][c] * inv;
      }
      if (lane == 0)
        lse[b * queries + qq] = l[i] > 0.0f ? m[i] + logf(l[i]) : negInf;
    }
  }
}

//===--- Backward ---------------------------------------------------------===//

/// Delta = rowsum(dO ∘ O) per query row (the softmax backward's dot, since
/// Σ_j dP_j P_j = dO · Σ_j dropout(P)_j V_j = dO · O): one warp per row.
/// Any multiple of 32 threads per block, any grid.
extern "C" __global__ void
loom_flash_backward_delta(const float *o, const float *dout, float *delta,
                          long long rows, long long headDim) {
  const long long warpsPerBlock = blockDim.x >> 5;
  const int lane = threadIdx.x & 31;
  for (long long row = blockIdx.x * warpsPerBlock + (threadIdx.x >> 5);
       row < rows; row += gridDim.x * warpsPerBlock) {
    float s = 0.0f;
    for (long long d = lane; d < headDim; d += 32)
      s += o[row * headDim + d] * dout[row * headDim + d];
    s = loom_flash_warp_sum(s);
    if (lane == 0)
      delta[row] = s;
  }
}
LOOM_KERNEL_ENTRY(loom_flash_backward_delta)

/// The pairs (i, j) of a Br × 32 tile of (queries, keys) that thread `tid`
/// owns (i = p / 32, j = p % 32 for p = tid, tid + 128, ...): recomputes
/// P = exp(S - L) and writes dS = scale · P ∘ (dP - Delta), with dP the
/// dropout of dO Vᵀ, into dss, and the dropped P into pds when it is given.
template <int D, int Br>
LOOM_LIB void loom_flash_grad_pairs(
    const float (*qs)[D], const float (*dos)[D], const float (*ks)[D + 1],
    const float (*vs)[D + 1], const float *ls, const float *deltas,
    float (*pds)[loom_flash_key_tile], float (*dss)[loom_flash_key_tile],
    int tid, long long b, long long q0, long long k0, long long queries,
    long long keys, long long length, float scale, int causal, double rate,
    float threshold, float keepScale, unsigned long long key,
    long long offset) {
  constexpr int Bc = loom_flash_key_tile;
  const float negInf = loom_flash_neg_inf();
  for (int p = tid; p < Br * Bc; p += loom_flash_threads) {
    const int i = p / Bc, j = p % Bc;
    const long long qq = q0 + i, kk = k0 + j;
    const bool visible =
        qq < queries && ls[i] != negInf &&
        loom_flash_visible(qq, kk, queries, keys, length, causal);
    float prob = 0.0f, ds = 0.0f;
    if (visible) {
      prob = expf(scale * loom_flash_dot<D>(qs[i], ks[j]) - ls[i]);
      float dp = loom_flash_dot<D>(dos[i], vs[j]);
      if (rate > 0.0) {
        float z = loom_flash_keep_factor(
            key, (b * queries + qq) * keys + kk + offset, threshold, keepScale);
        dp *= z;
        if (pds)
          pds[i][j] = prob * z;
      } else if (pds) {
        pds[i][j] = prob;
      }
      ds = scale * prob * (dp - deltas[i]);
    } else if (pds) {
      pds[i][j] = 0.0f;
    }
    dss[i][j] = ds;
  }
}

/// Loads rows [q0, q0 + Br) of Q and dO (zeros past the end), their L
/// (-inf past the end: nothing visible) and Delta.
template <int D, int Br>
LOOM_LIB void
loom_flash_load_query_tile(const float *q, const float *dout, const float *lse,
                           const float *delta, float (*qs)[D], float (*dos)[D],
                           float *ls, float *deltas, int tid, long long b,
                           long long q0, long long queries, long long headDim) {
  for (int e = tid; e < Br * D; e += loom_flash_threads) {
    int r = e / D, d = e % D;
    long long qq = q0 + r;
    bool in = qq < queries && d < headDim;
    qs[r][d] = in ? q[(b * queries + qq) * headDim + d] : 0.0f;
    dos[r][d] = in ? dout[(b * queries + qq) * headDim + d] : 0.0f;
  }
  for (int r = tid; r < Br; r += loom_flash_threads) {
    long long qq = q0 + r;
    ls[r] = qq < queries ? lse[b * queries + qq] : loom_flash_neg_inf();
    deltas[r] = qq < queries ? delta[b * queries + qq] : 0.0f;
  }
}

/// Loads keys [k0, k0 + 32) of K and V (zeros past the end).
template <int D>
LOOM_LIB void loom_flash_load_key_tile(const float *k, const float *v,
                                       float (*ks)[D + 1], float (*vs)[D + 1],
                                       int tid, long long b, long long k0,
                                       long long keys, long long headDim) {
  for (int e = tid; e < loom_flash_key_tile * D; e += loom_flash_threads) {
    int j = e / D, d = e % D;
    long long kk = k0 + j;
    bool in = kk < keys && d < headDim;
    ks[j][d] = in ? k[(b * keys + kk) * headDim + d] : 0.0f;
    vs[j][d] = in ? v[(b * keys + kk) * headDim + d] : 0.0f;
  }
}

/// dK and dV: a block owns a tile of 32 keys of one batch·head and loops
/// over the query tiles that can see it, so each dK/dV element is one
/// thread's fixed-order sum (warp w owns keys w, w + 4, ...; lane l the
/// dimensions l, l + 32, ...). Both are written, not accumulated.
template <int D, int Br>
LOOM_LIB void
loom_flash_dkdv_tiles(const float *q, const float *k, const float *v,
                      const float *dout, const float *lse, const float *delta,
                      float *dk, float *dv, long long bh, long long queries,
                      long long keys, long long headDim, long long heads,
                      const long long *lengths, float scale, int causal,
                      double rate, unsigned long long key, long long offset) {
  constexpr int Bc = loom_flash_key_tile, KPW = Bc / loom_flash_warps,
                DL = D / 32;
  static_assert(Br % loom_flash_warps == 0 && D % 32 == 0, "tile shapes");
  __shared__ float qs[Br][D];
  __shared__ float dos[Br][D];
  __shared__ float ks[Bc][D + 1];
  __shared__ float vs[Bc][D + 1];
  __shared__ float pds[Br][Bc];
  __shared__ float dss[Br][Bc];
  __shared__ float ls[Br];
  __shared__ float deltas[Br];
  if (blockDim.x != loom_flash_threads)
    return;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const float threshold = (float)rate;
  const float keepScale = (float)(1.0 / (1.0 - rate));
  const long long kTiles = (keys + Bc - 1) / Bc;
  for (long long tile = blockIdx.x; tile < bh * kTiles; tile += gridDim.x) {
    const long long b = tile / kTiles, k0 = tile % kTiles * Bc;
    const long long length = loom_flash_length(lengths, b, heads, keys);
    float accK[KPW][DL], accV[KPW][DL];
    LOOM_FLASH_UNROLL
    for (int r = 0; r < KPW; ++r) {
      LOOM_FLASH_UNROLL
      for (int c = 0; c < DL; ++c)
        accK[r][c] = accV[r][c] = 0.0f;
    }
    __syncthreads(); // the previous tile's readers of ks/vs are done
    loom_flash_load_key_tile<D>(k, v, ks, vs, tid, b, k0, keys, headDim);
    // The first query that sees key k0 causally is k0 - (keys - queries);
    // a tile past the padding length is seen by none.
    long long qBegin = causal ? k0 - (keys - queries) : 0;
    qBegin = qBegin > 0 ? qBegin / Br * Br : 0;
    const long long qEnd = k0 < length ? queries : 0;
    for (long long q0 = qBegin; q0 < qEnd; q0 += Br) {
      __syncthreads(); // ks/vs are written; the last tile's qs/dos are read
      loom_flash_load_query_tile<D, Br>(q, dout, lse, delta, qs, dos, ls,
                                        deltas, tid, b, q0, queries, headDim);
      __syncthreads();
      loom_flash_grad_pairs<D, Br>(
          qs, dos, ks, vs, ls, deltas, pds, dss, tid, b, q0, k0, queries, keys,
          length, scale, causal, rate, threshold, keepScale, key, offset);
      __syncthreads();
      LOOM_FLASH_UNROLL
      for (int r = 0; r < KPW; ++r) {
        const int j = warp + loom_flash_warps * r;
        LOOM_FLASH_UNROLL
        for (int c = 0; c < DL; ++c) {
          const int d = lane + 32 * c;
          float av = accV[r][c], ak = accK[r][c];
          // Unrolled by the compiler's default, this loop spills at D = 128.
          LOOM_FLASH_PRAGMA(unroll 2)
          for (int i = 0; i < Br; ++i) {
            av += pds[i][j] * dos[i][d];
            ak += dss[i][j] * qs[i][d];
          }
          accV[r][c] = av;
          accK[r][c] = ak;
        }
      }
    }
    LOOM_FLASH_UNROLL
    for (int r = 0; r < KPW; ++r) {
      const long long kk = k0 + warp + loom_flash_warps * r;
      LOOM_FLASH_UNROLL
      for (int c = 0; c < DL; ++c) {
        const int d = lane + 32 * c;
        if (kk < keys && d < headDim) {
          dk[(b * keys + kk) * headDim + d] = accK[r][c];
          dv[(b * keys + kk) * headDim + d] = accV[r][c];
        }
      }
    }
  }
}

/// dQ: a second pass where a block owns a tile of Br queries and loops over
/// the key tiles it can see (warp w owns rows [w · Br/4, (w + 1) · Br/4),
/// lane l dimensions l, l + 32, ...). Written, not accumulated.
template <int D, int Br>
LOOM_LIB void
loom_flash_dq_tiles(const float *q, const float *k, const float *v,
                    const float *dout, const float *lse, const float *delta,
                    float *dq, long long bh, long long queries, long long keys,
                    long long headDim, long long heads,
                    const long long *lengths, float scale, int causal,
                    double rate, unsigned long long key, long long offset) {
  constexpr int Bc = loom_flash_key_tile, RPW = Br / loom_flash_warps,
                DL = D / 32;
  static_assert(Br % loom_flash_warps == 0 && D % 32 == 0, "tile shapes");
  __shared__ float qs[Br][D];
  __shared__ float dos[Br][D];
  __shared__ float ks[Bc][D + 1];
  __shared__ float vs[Bc][D + 1];
  __shared__ float dss[Br][Bc];
  __shared__ float ls[Br];
  __shared__ float deltas[Br];
  if (blockDim.x != loom_flash_threads)
    return;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const float threshold = (float)rate;
  const float keepScale = (float)(1.0 / (1.0 - rate));
  const long long qTiles = (queries + Br - 1) / Br;
  for (long long tile = blockIdx.x; tile < bh * qTiles; tile += gridDim.x) {
    const long long b = tile / qTiles, q0 = tile % qTiles * Br;
    const long long length = loom_flash_length(lengths, b, heads, keys);
    const long long kEnd =
        loom_flash_key_end(q0, Br, queries, keys, length, causal);
    float acc[RPW][DL];
    LOOM_FLASH_UNROLL
    for (int i = 0; i < RPW; ++i) {
      LOOM_FLASH_UNROLL
      for (int c = 0; c < DL; ++c)
        acc[i][c] = 0.0f;
    }
    __syncthreads(); // the previous tile's readers of qs/dos are done
    loom_flash_load_query_tile<D, Br>(q, dout, lse, delta, qs, dos, ls, deltas,
                                      tid, b, q0, queries, headDim);
    for (long long k0 = 0; k0 < kEnd; k0 += Bc) {
      __syncthreads(); // qs/dos are written; the last tile's ks/dss are read
      loom_flash_load_key_tile<D>(k, v, ks, vs, tid, b, k0, keys, headDim);
      __syncthreads();
      loom_flash_grad_pairs<D, Br>(
          qs, dos, ks, vs, ls, deltas, nullptr, dss, tid, b, q0, k0, queries,
          keys, length, scale, causal, rate, threshold, keepScale, key, offset);
      __syncthreads();
      LOOM_FLASH_UNROLL
      for (int i = 0; i < RPW; ++i) {
        const int r = warp * RPW + i;
        LOOM_FLASH_UNROLL
        for (int c = 0; c < DL; ++c) {
          const int d = lane + 32 * c;
          float x = acc[i][c];
          for (int j = 0; j < Bc; ++j)
            x += dss[r][j] * ks[j][d];
          acc[i][c] = x;
        }
      }
    }
    LOOM_FLASH_UNROLL
    for (int i = 0; i < RPW; ++i) {
      const long long qq = q0 + warp * RPW + i;
      LOOM_FLASH_UNROLL
      for (int c = 0; c < DL; ++c) {
        const int d = lane + 32 * c;
        if (qq < queries && d < headDim)
          dq[(b * queries + qq) * headDim + d] = acc[i][c];
      }
    }
  }
}

//===--- Entries, by the largest head dimension they hold -----------------===//

// Query tiles: as large as 48 KiB of static shared memory allows (the
// backward holds Q, dO, K and V tiles at once).
#define LOOM_FLASH_ENTRIES(D, FORWARD_ROWS, BACKWARD_ROWS)                     \
  extern "C" __global__ void __launch_bounds__(128) loom_flash_forward_d##D(   \
      const float *q, const float *k, const float *v, float *o, float *lse,    \
      long long bh, long long queries, long long keys, long long headDim,      \
      long long heads, const long long *lengths, float scale, int causal,      \
      double rate, unsigned long long key, long long offset) {                 \
    loom_flash_forward_tiles<D, FORWARD_ROWS>(                                 \
        q, k, v, o, lse, bh, queries, keys, headDim, heads, lengths, scale,    \
        causal, rate, key, offset);                                            \
  }                                                                            \
  LOOM_KERNEL_ENTRY(loom_flash_forward_d##D)                                   \
  extern "C" __global__ void __launch_bounds__(128)                            \
      loom_flash_backward_dkdv_d##D(                                           \
          const float *q, const float *k, const float *v, const float *dout,   \
          const float *lse, const float *delta, float *dk, float *dv,          \
          long long bh, long long queries, long long keys, long long headDim,  \
          long long heads, const long long *lengths, float scale, int causal,  \
          double rate, unsigned long long key, long long offset) {             \
    loom_flash_dkdv_tiles<D, BACKWARD_ROWS>(                                   \
        q, k, v, dout, lse, delta, dk, dv, bh, queries, keys, headDim, heads,  \
        lengths, scale, causal, rate, key, offset);                            \
  }                                                                            \
  LOOM_KERNEL_ENTRY(loom_flash_backward_dkdv_d##D)                             \
  extern "C" __global__ void __launch_bounds__(128)                            \
      loom_flash_backward_dq_d##D(                                             \
          const float *q, const float *k, const float *v, const float *dout,   \
          const float *lse, const float *delta, float *dq, long long bh,       \
          long long queries, long long keys, long long headDim,                \
          long long heads, const long long *lengths, float scale, int causal,  \
          double rate, unsigned long long key, long long offset) {             \
    loom_flash_dq_tiles<D, BACKWARD_ROWS>(                                     \
        q, k, v, dout, lse, delta, dq, bh, queries, keys, headDim, heads,      \
        lengths, scale, causal, rate, key, offset);                            \
  }                                                                            \
  LOOM_KERNEL_ENTRY(loom_flash_backward_dq_d##D)

LOOM_FLASH_ENTRIES(32, 32, 32)
LOOM_FLASH_ENTRIES(64, 32, 16)
LOOM_FLASH_ENTRIES(128, 16, 8)
