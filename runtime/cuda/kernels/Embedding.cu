//===- Embedding.cu - the CUDA kernel library: Embedding ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
