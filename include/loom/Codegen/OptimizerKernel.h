//===- OptimizerKernel.h - AdamW and the gradient's zeroing, one pass -*- C++
//-*-===//
//
// The optimizer's fusion region: for one parameter span, AdamW's update of
// the parameter and its moments from the gradient (scaled by the step's
// gradient scale times the clipping coefficient), and the gradient zeroed
// for the next step, in one pass over the four arrays instead of two (the
// reference adamw, then zero). The global norm stays its own pass: clipping
// needs all of it first. One kernel serves every parameter of its kind (the
// element count is a runtime scalar); on a step whose gradients are not
// finite it only zeroes the gradient, as the reference does.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_CODEGEN_OPTIMIZERKERNEL_H
#define LOOM_CODEGEN_OPTIMIZERKERNEL_H

#include "loom/Codegen/Kernel.h"

namespace loom {
namespace codegen {

/// Arguments: param, grad, m, v (inputs), then param, m, v, grad (outputs,
/// the same buffers). `decay`: with the step's weight decay.
KernelDesc adamwKernel(const std::string &name, bool decay);

} // namespace codegen
} // namespace loom

#endif // LOOM_CODEGEN_OPTIMIZERKERNEL_H
