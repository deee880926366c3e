//===- Cast.cu - the CUDA kernel library: Cast ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
