//===- LoomDialect.td - the loom dialect ------------------*- tablegen -*-===//
//
// The model graph: primitive tensor ops on global (unpartitioned) shapes.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_DIALECT_TD
#define LOOM_DIALECT_TD

include "mlir/IR/OpBase.td"

def Loom_Dialect : Dialect {
  let name = "loom";
  let cppNamespace = "::loom";
  let summary = "Loom's model graph: tensor ops on global shapes";
  let description = [{
    The `loom` dialect is the first level of Loom's compiler. A model is one
    program at its global size: parameters are explicit values with a stable
    hierarchical name and an initializer; every op works on statically shaped
    ranked tensors of f32, bf16, f16, i32, i64 or i1. Later levels (`dist`,
    then the per-rank exec program) partition it across a device mesh.

    Every op implements the cost interface (FLOPs, bytes read and written);
    the ops a gradient flows through implement the differentiation interface
    (their VJP rules, read by `--loom-autodiff`), and the ops `--loom-shard`
    can split implement the sharding-rule interface (their factor rules).
  }];
  let dependentDialects = ["::mlir::func::FuncDialect"];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
}

#endif // LOOM_DIALECT_TD
