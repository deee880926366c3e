//===- BindRows.h - launch geometry of block-per-row kernels ----*- C++ -*-===//
//
// Internal to the CUDA backend's binders (BindSoftmax.cpp, BindNorm.cpp,
// BindEmbedding.cpp): the kernels that give each row a block (softmax,
// norms, cross-entropy) reduce over the row with Common.cuh's block
// reductions, which need a whole number of warps.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CUDA_BINDROWS_H
#define LOOM_RUNTIME_CUDA_BINDROWS_H

#include "Bind.h"

namespace loom {
namespace runtime {
namespace cuda {

/// Threads per block for rows of `cols`: the row rounded up to whole warps,
/// at most kBlockThreads (longer rows loop), so short rows idle no warps.
inline unsigned rowThreads(int64_t cols) {
  int64_t warps = (cols + 31) / 32;
  if (warps < 1)
    warps = 1;
  int64_t threads = warps * 32;
  return threads < int64_t(kBlockThreads) ? unsigned(threads) : kBlockThreads;
}
/// One block per row; the kernels grid-stride over rows past the cap.
inline Dim3 rowGrid(int64_t rows) { return gridFor(rows, 1); }

} // namespace cuda
} // namespace runtime
} // namespace loom

#endif // LOOM_RUNTIME_CUDA_BINDROWS_H
