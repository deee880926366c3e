//===- Softmax.cu - the CUDA kernel library: Softmax ---------------------===//
//
// (To be written.) Part of the kernel library: see Common.cuh.
//
//===----------------------------------------------------------------------===//
