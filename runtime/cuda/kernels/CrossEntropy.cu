//===- CrossEntropy.cu - the CUDA kernel library: CrossEntropy ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
