//===- DataMovement.cu - the CUDA kernel library: DataMovement ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
