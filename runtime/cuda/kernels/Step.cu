//===- Step.cu - the CUDA kernel library: the step values on the device -*- CUDA -*-===//
//
// The step's loss sum, gradient norm and non-finite flag stay on the device
// (runtime/cuda/Bind.h, DeviceStepValues) until the step ends: these kernels
// add a microbatch's loss and set the norm the runtime computed for a
// pipeline. `values` points at the DeviceStepValues block as doubles:
// [0] loss sum, [1] squares of a chunk, [2] norm; the int after them is the
// non-finite flag. Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//

/// values.lossSum += loss[0] (an f32 scalar), one thread.
extern "C" __global__ void loom_step_add_loss(const float *loss, double *values) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    values[0] += (double)loss[0];
}
LOOM_KERNEL_ENTRY(loom_step_add_loss)

/// values.lossSum += float(loss[0]) for a 16-bit loss scalar.
extern "C" __global__ void loom_step_add_loss16(const unsigned short *loss,
                                                double *values, int bf16) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    values[0] += (double)(bf16 ? loom_cast_bf16_to_float(loss[0])
                               : loom_cast_f16_to_float(loss[0]));
}
LOOM_KERNEL_ENTRY(loom_step_add_loss16)
