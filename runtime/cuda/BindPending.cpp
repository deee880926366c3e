// Temporary (removed when the family binders land): records without a CUDA binder yet.
#include "Bind.h"
namespace loom { namespace runtime { namespace cuda {
#define PENDING(T) Result<Work> bind(const T &, const Instruction &, Binder &) { return Status::error("no CUDA binder for " #T " yet"); }

PENDING(SoftmaxInstr) PENDING(SoftmaxGradInstr)
PENDING(NormInstr) PENDING(NormGradInstr) PENDING(EmbeddingInstr) PENDING(CrossEntropyInstr)
PENDING(CrossEntropyPartialsInstr) PENDING(CrossEntropyCombineInstr) 

}}}
