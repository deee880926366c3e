//===- Optimizer.cu - the CUDA kernel library: Optimizer ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
