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

  // What the front end and the passes record on ops, functions and the
  // module, read by later passes and the plan builder. Each gets a helper
  // class (`LoomDialect::LayerAttrHelper` for `loom.layer`) with typed
  // getAttr/setAttr/isAttrPresent/removeAttr; verifyOperationAttribute
  // (IR/LoomDiscardableAttrs.cpp) checks where each sits and its value.
  let discardableAttrs = (ins
    // Any op: the layer of the `repeat` block it belongs to (0, 1, ...).
    "::mlir::IntegerAttr":$layer,
    // The loom.fill that seeds the loss's gradient (the f16 loss scale).
    "::mlir::UnitAttr":$loss_seed,
    // The module: sequences per microbatch and per step.
    "::mlir::IntegerAttr":$micro_batch_size,
    "::mlir::IntegerAttr":$global_batch_size,
    // The module: the model's configs as the front end resolved them
    // (name -> integer, float, bool or string), copied into the plan for the
    // tools that must know the model (loom-convert checks a Hugging Face
    // config against them).
    "::mlir::DictionaryAttr":$configs,
    // The module: --loom-pipeline's stages and chunks per stage.
    "::mlir::IntegerAttr":$pipeline_stages,
    "::mlir::IntegerAttr":$pipeline_chunks_per_stage,
    // A function: its layers, its pipeline chunk, how many of its ops are
    // the forward (--loom-autodiff).
    "::mlir::IntegerAttr":$layers,
    "::mlir::IntegerAttr":$pipeline_chunk,
    "::mlir::IntegerAttr":$forward_ops,
    // A function: how the step normalises its loss (--loom-global-batch-loss).
    "::mlir::StringAttr":$loss_normalizer,
    "::mlir::IntegerAttr":$labels_input,
    "::mlir::IntegerAttr":$ignore_index,
    // Any op: a copy of a forward op that the backward recomputes instead
    // of reading what the forward stored (--loom-recompute). The plan counts
    // its FLOPs as hardware FLOPs, not model FLOPs.
    "::mlir::UnitAttr":$recomputed,
    // A function: per layer it holds (in layer order), what its backward
    // recomputes: "none", "selective" or "full" (--loom-recompute).
    "::mlir::ArrayAttr":$layer_recompute
  );
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;

  let extraClassDeclaration = [{
    void registerAttributes();

    // Attributes of a function's arguments and results. `discardableAttrs`
    // makes helpers for an op's own attributes only; these have the same
    // shape, indexed by argument or result.

    /// `loom.input = "tokens"`: the model input an argument holds.
    static constexpr ::loom::ArgAttrHelper<::mlir::StringAttr>
        kInputArgAttr{"loom.input"};
    /// A pipeline chunk's argument that is the previous chunk's activation.
    static constexpr ::loom::ArgAttrHelper<::mlir::UnitAttr>
        kBoundaryInputArgAttr{"loom.boundary_input"};
    /// A pipeline chunk's argument that is the next chunk's gradient of the
    /// activation it returns.
    static constexpr ::loom::ArgAttrHelper<::mlir::UnitAttr>
        kOutputGradArgAttr{"loom.output_grad"};
    /// `loom.grad = "name"`: a result that is that parameter's gradient.
    static constexpr ::loom::ResultAttrHelper<::mlir::StringAttr>
        kGradResultAttr{"loom.grad"};
    /// A pipeline chunk's result that is the gradient of its input
    /// activation, for the chunk before.
    static constexpr ::loom::ResultAttrHelper<::mlir::UnitAttr>
        kInputGradResultAttr{"loom.input_grad"};
  }];
}

#endif // LOOM_DIALECT_TD
