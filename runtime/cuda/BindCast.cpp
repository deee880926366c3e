//===- BindCast.cpp - the CUDA backend's casts ----------------------------===//
//
// A cast between float types copies between the f32 views (the executor
// widens and rounds the 16-bit sides, as the CPU backend does); i32 to
// float converts.
//
//===----------------------------------------------------------------------===//

#include "Bind.h"

namespace loom {
namespace runtime {
namespace cuda {

Result<Work> bind(const CastInstr &r, const Instruction &inst, Binder &b) {
  int64_t n = r.n;
  float *y = b.f32(r.y);
  Launch l;
  if (r.from == plan::DType::I32)
    l = launchOf("loom_cast_from_i32", gridFor(n), kBlockThreads,
                 {b.storage(r.x), y, KernelArg::i64v(n)});
  else
    l = launchOf("loom_cast_copy", gridFor(n), kBlockThreads,
                 {b.f32(r.x), y, KernelArg::i64v(n),
                  KernelArg::i32v(r.accumulate ? 1 : 0)});
  Device *d = &b.device();
  return launchWork(*d, inst, std::move(l));
}

} // namespace cuda
} // namespace runtime
} // namespace loom
