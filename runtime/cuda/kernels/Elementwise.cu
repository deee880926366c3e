//===- Elementwise.cu - the CUDA kernel library: Elementwise ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
