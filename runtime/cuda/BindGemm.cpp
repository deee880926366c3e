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
  call.a = b.storage(r.a);
  call.b = b.storage(r.b);
  call.c = b.storage(r.c);
  call.aType = b.dtype(r.a);
  call.bType = b.dtype(r.b);
  call.cType = b.dtype(r.c);
  call.beta = r.beta;
  Device *d = &b.device();
  return Work([call, d, &inst](const StepParams &) -> Status {
    Status s = d->gemm(call);
    return s.ok() ? s : runError(inst, s.message());
  });
}

} // namespace cuda
} // namespace runtime
} // namespace loom
