//===- BindGemm.cpp - the CUDA backend's GEMMs ----------------------------===//
//
// loom.matmul's GEMMs on the device's GEMM (cuBLASLt on a GPU: CudaDevice.cpp)
// in the operands' own element types: a 16-bit GEMM reads and writes 16-bit
// storage and accumulates in f32, with no shadows. β = 1 adds into c
// (gradient accumulation).
//
//===----------------------------------------------------------------------===//

#include "Bind.h"

namespace loom {
namespace runtime {
namespace cuda {

Result<Work> bind(const MatmulInstr &r, const Instruction &inst, Binder &b) {
  GemmCall call;
  call.shape = r.shape;
  call.beta = r.beta;
  plan::DType a = b.dtype(r.a), bt = b.dtype(r.b), c = b.dtype(r.c);
  if (gemmTypesSupported(a, bt, c)) {
    call.a = b.storage(r.a);
    call.b = b.storage(r.b);
    call.c = b.storage(r.c);
    call.aType = a;
    call.bType = bt;
    call.cType = c;
  } else {
    // Mixed operand types (bf16 · f32, an f32 product rounded to bf16):
    // the f32 views, as the CPU backend computes every GEMM.
    call.a = b.f32(r.a);
    call.b = b.f32(r.b);
    call.c = b.f32(r.c);
  }
  Device *d = &b.device();
  return Work([call, d, &inst](const StepParams &) -> Status {
    Status s = d->gemm(call);
    return s.ok() ? s : runError(inst, s.message());
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
