// Temporary (removed when the family binders land): records without a CUDA binder yet.
#include "Bind.h"
namespace loom { namespace runtime { namespace cuda {
#define PENDING(T) Result<Work> bind(const T &, const Instruction &, Binder &) { return Status::error("no CUDA binder for " #T " yet"); }
PENDING(BinaryInstr) PENDING(ScaleInstr) PENDING(ActivationInstr) PENDING(ActivationGradInstr)
PENDING(BroadcastInstr) PENDING(FillInstr) PENDING(DropoutInstr) PENDING(SoftmaxInstr) PENDING(SoftmaxGradInstr)
PENDING(NormInstr) PENDING(NormGradInstr) PENDING(EmbeddingInstr) PENDING(CrossEntropyInstr)
PENDING(CrossEntropyPartialsInstr) PENDING(CrossEntropyCombineInstr) PENDING(ReduceInstr) PENDING(TransposeInstr)
PENDING(SplitConcatInstr) PENDING(GradNormInstr) PENDING(AdamWInstr)
}}}
