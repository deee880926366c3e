//===- FlashAttention.cu - the CUDA kernel library: FlashAttention ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
