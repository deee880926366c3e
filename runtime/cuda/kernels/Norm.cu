//===- Norm.cu - the CUDA kernel library: Norm ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
