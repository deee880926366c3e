//===- Passes.td - Loom's compiler passes -----------------*- tablegen -*-===//
//
// One pass per file in this folder, named after its flag; each has a lit test
// in test/Passes/ named after the flag.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_PASSES_TD
#define LOOM_PASSES_TD

include "mlir/Pass/PassBase.td"

def LoomTestCost : Pass<"loom-test-cost", "::mlir::func::FuncOp"> {
  let summary = "Report each op's cost (FLOPs, bytes) as remarks";
  let description = [{
    A test pass for the cost interface: every op that implements
    `CostOpInterface` gets a remark with its FLOPs and bytes, and the function
    gets a remark with the totals (matmul FLOPs counted apart, since the
    paper's FLOP formulas count only those).

    Before:
    ```mlir
    func.func @f(%x: tensor<8x768xf32>, %w: tensor<768x3072xf32>) -> tensor<8x3072xf32> {
      %y = loom.matmul %x, %w : tensor<8x768xf32>, tensor<768x3072xf32> -> tensor<8x3072xf32>
      return %y : tensor<8x3072xf32>
    }
    ```
    After (the IR is unchanged; `-verify-diagnostics` or stderr shows):
    ```
    remark: flops = 37748736, bytes read = 9461760, bytes written = 98304
    remark: total of 1 ops: flops = 37748736 (matmul 37748736), bytes read = 9461760, bytes written = 98304
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
  let options = [
    Option<"perOp", "per-op", "bool", /*default=*/"true",
           "Emit a remark for each op, not only the function's total">,
  ];
}

def LoomTestShardingRules : Pass<"loom-test-sharding-rules", "::mlir::func::FuncOp"> {
  let summary = "Report each op's factor sharding rule as a remark";
  let description = [{
    A test pass for `ShardingRuleOpInterface`: every op gets a remark with its
    rule in Shardy's notation (one list of factors per operand, then per
    result, then each factor's size; `_` is a dimension that stays whole;
    `reduction` lists the factors only operands have, `whole` those that
    relate dimensions but may not be split), or says it has none. The IR is
    unchanged.

    Before:
    ```mlir
    %y = loom.matmul %x, %w : tensor<8x32xf32>, tensor<32x16xf32> -> tensor<8x16xf32>
    ```
    After (stderr, or `expected-remark` with `-verify-diagnostics`):
    ```
    remark: loom.matmul: ([i, k], [k, j]) -> ([i, j]) {i=8, j=16, k=32} reduction={k}
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomVerifyModel : Pass<"loom-verify-model", "::mlir::ModuleOp"> {
  let summary = "Check what no single op can: tied parameters agree, dropout sites are unique";
  let description = [{
    An op verifier sees one op; a model has rules across ops. This pass fails,
    with a diagnostic at the offending op and a note at the first one, when:

    - one parameter name is declared twice with different types or
      initializers (declaring a name twice is how a parameter is shared, as
      with tied embeddings, so both declarations must agree);
    - two dropout ops use the same `site` (the mask is keyed by the site, so
      they would draw the same mask);
    - a tensor has more than 2^48 elements (every size after this pass is an
      int64 count or byte size, so the bound keeps their products exact).

    `loomc` runs it on every model it reads.

    ```mlir
    %0 = loom.dropout %x rate 1.000000e-01 site "attention.dropout" : tensor<8xf32>
    %1 = loom.dropout %y rate 1.000000e-01 site "attention.dropout" : tensor<8xf32>
    // error: dropout site 'attention.dropout' is used twice; ...
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomAutodiff : Pass<"loom-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode differentiation: return every parameter's gradient of the loss";
  let description = [{
    For each function whose first result is a scalar float (the loss), walks
    the ops backwards from the loss and asks each for its vector-Jacobian
    product (`DifferentiableOpInterface`), accumulating the gradient of every
    value. The function then also returns, after its own results, the
    gradient of the loss with respect to each parameter, one per parameter
    name in order of first declaration (the declarations of a tied parameter
    are summed), each marked `loom.grad = "name"`. Calls must be inlined
    first (`--inline`).

    Before:
    ```mlir
    func.func @f(%x: tensor<4x8xf32>, %t: tensor<4xi32>) -> tensor<f32> {
      %w = loom.parameter "w" init(#loom.normal<std = 2.000000e-02>) : tensor<8x16xf32>
      %y = loom.matmul %x, %w : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
      %l = loom.cross_entropy %y, %t : tensor<4x16xf32>, tensor<4xi32> -> tensor<f32>
      return %l : tensor<f32>
    }
    ```
    After:
    ```mlir
    func.func @f(%x: tensor<4x8xf32>, %t: tensor<4xi32>)
        -> (tensor<f32>, tensor<8x16xf32> {loom.grad = "w"}) {
      ...forward...
      %one = loom.fill 1.000000e+00 {loom.loss_seed} : tensor<f32>
      %dy = loom.cross_entropy_grad %y, %t, %one : ...
      %dw = loom.matmul %x transposed, %dy : ...
      return %l, %dw : tensor<f32>, tensor<8x16xf32>
    }
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomGlobalBatchLoss : Pass<"loom-global-batch-loss", "::mlir::ModuleOp"> {
  let summary = "Make a mean cross-entropy loss a sum, normalised over the global batch";
  let description = [{
    A training step runs several microbatches and accumulates their
    gradients; the loss Megatron reports and differentiates is the mean over
    every token of the global batch. A mean per microbatch averaged over
    microbatches is that only when every microbatch counts the same number of
    tokens (labels equal to `ignore_index` are not counted). So for each
    public function whose loss (first result) is a `loom.cross_entropy` with
    reduction `mean`, this pass makes the reduction `sum` and records on the
    function how the step normalises it:

    - `loom.loss_normalizer = "tokens"`, `loom.labels_input` (the argument
      the labels come from, through reshapes) and `loom.ignore_index`: the
      runtime divides the summed loss and the accumulated gradients by the
      tokens counted in the whole global batch;
    - `loom.loss_normalizer = "microbatches"` for any other loss, which is
      then taken as a mean per microbatch and averaged over them.

    Before:
    ```mlir
    %l = loom.cross_entropy %logits, %labels : tensor<2x3x7xf32>, tensor<2x3xi32> -> tensor<f32>
    ```
    After:
    ```mlir
    func.func @f(...) attributes {loom.ignore_index = -100 : i64, loom.labels_input = 1 : i64, loom.loss_normalizer = "tokens"}
    %l = loom.cross_entropy %logits, %labels reduction sum : tensor<2x3x7xf32>, tensor<2x3xi32> -> tensor<f32>
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
}

def LoomMixedPrecision : Pass<"loom-mixed-precision", "::mlir::ModuleOp"> {
  let summary = "Compute in bf16 or f16 with f32 master weights and f32 gradients";
  let description = [{
    The precision policy of mixed-precision training (Micikevicius et al.;
    Megatron's --bf16/--fp16): parameters stay f32 (the master weights the
    optimizer updates) and are cast to the compute type where they are read;
    every other floating-point value becomes the compute type, except the
    loss, which stays f32 (cross-entropy reads 16-bit logits and reduces in
    f32). Run it before `--loom-autodiff`: the cast's gradient rule casts each
    parameter's gradient back to f32, so gradients accumulate in f32. With
    f16 the runtime scales the loss (see the plan's precision policy).

    Before:
    ```mlir
    %w = loom.parameter "w" init(#loom.normal<std = 2.000000e-02>) : tensor<8x16xf32>
    %y = loom.matmul %x, %w : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
    ```
    After (`--loom-mixed-precision=compute=bf16`):
    ```mlir
    %w = loom.parameter "w" init(#loom.normal<std = 2.000000e-02>) : tensor<8x16xf32>
    %0 = loom.cast %w : tensor<8x16xf32> to tensor<8x16xbf16>
    %y = loom.matmul %x, %0 : tensor<4x8xbf16>, tensor<8x16xbf16> -> tensor<4x16xbf16>
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
  let options = [
    Option<"compute", "compute", "std::string", /*default=*/"\"bf16\"",
           "The compute type: bf16 or f16">,
  ];
}

def LoomShard : Pass<"loom-shard", "::mlir::ModuleOp"> {
  let summary = "Decide how every value is split over a device mesh (Megatron's rules, propagated by factors)";
  let description = [{
    Puts the mesh on the module (`dist.mesh`) and records on every op of each
    public function the sharding it needs of its operands
    (`dist.in_shardings`) and gives its results (`dist.out_shardings`).
    Nothing is rewritten yet: `--loom-partition` does that.

    Walking the program in order, each op's factor rule
    (`ShardingRuleOpInterface`, dialects/Loom/IR/LoomSharding.cpp)
    propagates the splits of its operands to its results; an op without
    one runs on whole values. Parameters are decided at their first use, by
    Megatron's rules: a matmul whose input is whole splits its weight's
    output features over `tp` (column-parallel: QKV, the MLP's first layer,
    the tied LM head); one whose input is split along the contraction splits
    the weight's rows (row-parallel: the attention output, the MLP's second
    layer) and leaves partial sums; an embedding table is split by rows
    (vocabulary-parallel). A parameter pinned by the model language
    (`shard(...)`, a `dist.sharding` attribute on `loom.parameter`) keeps its
    pin: user annotations win.

    Partial sums are resolved where they are used: by an all-reduce, or with
    `sequence-parallel` by a reduce-scatter along the sequence, so the
    layernorm and dropout regions between the tensor-parallel blocks run on
    blocks of the sequence.

    A split that cannot carry through an op because the mesh axis does not
    divide a dimension (attention heads, the ffn size, the vocabulary) is an
    error naming the op and the dimension; an op that needs whole operands
    gets them all-gathered, with a warning.
  }];
  let dependentDialects = ["::loom::LoomDialect", "::loom::dist::DistDialect"];
  let options = [
    Option<"meshSpec", "mesh", "std::string", /*default=*/"\"tp=1\"",
           "The mesh: dp=D,tp=T (axes dp, pp, tp; unnamed axes have size 1)">,
    Option<"sequenceParallel", "sequence-parallel", "bool", /*default=*/"false",
           "Split the layernorm and dropout regions along the sequence">,
  ];
}

def LoomPartition : Pass<"loom-partition", "::mlir::ModuleOp"> {
  let summary = "Rewrite a sharded program to one rank's local shapes, with explicit collectives";
  let description = [{
    Reads the shardings `--loom-shard` recorded and rewrites each public
    function into the program every rank runs (SPMD): every value takes its
    local shape, and where an op needs an operand split otherwise than it is,
    the conversion is inserted: `dist.all_reduce` (partial to whole),
    `dist.reduce_scatter` (partial to split), `dist.all_gather` (split to
    whole), `dist.all_slice` (whole to split, no communication). A whole
    value feeding an op whose work is split gets a `dist.fan_out` (its
    gradient is all-reduced). A cross_entropy with the vocabulary split
    becomes Megatron's vocabulary-parallel cross-entropy: a per-token max,
    sum of exponentials and label logit, each all-reduced. Ops whose work
    depends on the rank's block (embedding, dropout, the cross-entropy's
    partials) and split parameters carry `dist.sharding`.
  }];
  let dependentDialects = ["::loom::LoomDialect", "::loom::dist::DistDialect"];
}

def LoomPipeline : Pass<"loom-pipeline", "::mlir::ModuleOp"> {
  let summary = "Cut the layer stack into pipeline chunks, one function each";
  let description = [{
    Cuts the model function into `stages` × `chunks` functions (Megatron's
    pipeline stages and virtual chunks; chunk c runs on stage c mod
    `stages`), by contiguous ranges of layers (`loom.layer`): balanced by
    the cost interface with the embedding counted in the first chunk and
    the head and loss in the last, or as `layout` says (layers per chunk,
    e.g. `3,3,2,2`). Each chunk function takes the activation of the chunk
    before (`loom.boundary_input`) and the model inputs it reads, declares
    the parameters it reads (a parameter tied across chunks, the token
    embedding and the LM head, is declared in both), and returns the
    activation for the next chunk, or the loss. `--loom-autodiff` then gives
    each chunk its backward: the next chunk's activation gradient comes in
    as an argument (`loom.output_grad`), the input's gradient goes out
    (`loom.input_grad`).

    One activation must cross each boundary, and the loss must come from the
    last chunk; anything else is an error at the op that breaks it. The
    module records `loom.pipeline_stages` and `loom.pipeline_chunks_per_stage`,
    each chunk `loom.pipeline_chunk`; only the last keeps the loss's
    attributes (`loom.labels_input` renumbered for its arguments).

    Before (`--loom-pipeline=stages=2`):
    ```mlir
    func.func @f(%x: tensor<64xf32>) -> tensor<f32> {
      %a = loom.neg %x {loom.layer = 0 : i64} : tensor<64xf32>
      %b = loom.neg %a {loom.layer = 1 : i64} : tensor<64xf32>
      %l = loom.reduce sum %b dims [0] : tensor<64xf32> -> tensor<f32>
      return %l : tensor<f32>
    }
    ```
    After:
    ```mlir
    module attributes {loom.pipeline_chunks_per_stage = 1 : i64, loom.pipeline_stages = 2 : i64} {
      func.func @f_chunk0(%x: tensor<64xf32>) -> tensor<64xf32>
          attributes {loom.pipeline_chunk = 0 : i64} {
        %a = loom.neg %x {loom.layer = 0 : i64} : tensor<64xf32>
        return %a : tensor<64xf32>
      }
      func.func @f_chunk1(%a: tensor<64xf32> {loom.boundary_input}) -> tensor<f32>
          attributes {loom.pipeline_chunk = 1 : i64} {
        %b = loom.neg %a {loom.layer = 1 : i64} : tensor<64xf32>
        %l = loom.reduce sum %b dims [0] : tensor<64xf32> -> tensor<f32>
        return %l : tensor<f32>
      }
    }
    ```
  }];
  let dependentDialects = ["::loom::LoomDialect"];
  let options = [
    Option<"stages", "stages", "int64_t", /*default=*/"1",
           "Pipeline stages (the mesh's pp)">,
    Option<"chunksPerStage", "chunks", "int64_t", /*default=*/"1",
           "Virtual chunks per stage (the interleaved schedule's v)">,
    Option<"layout", "layout", "std::string", /*default=*/"\"\"",
           "Layers per chunk, comma-separated (default: balanced by cost)">,
  ];
}

def DistFuseReduceScatter : Pass<"dist-fuse-reduce-scatter", "::mlir::ModuleOp"> {
  let summary = "Make each all_slice of a sum all_reduce over its axis one reduce_scatter";
  let description = [{
    Differentiation leaves, where sequence parallelism all-gathers an
    activation before a fan_out, the fan_out's gradient (an all_reduce) read
    only by the all_gather's gradient (an all_slice along the sequence): the
    whole sum is built on every rank and each keeps its block. A
    reduce_scatter computes the block alone and moves a tp-th of the bytes.

    The rewrite applies when the all_slice's input is a `sum` all_reduce over
    the same mesh axis that nothing else reads; the reduce_scatter scatters
    along the all_slice's `dim` and keeps its `loom.layer`. It is the Dist
    dialect's canonicalization of `dist.all_slice`, applied to the
    all_slices alone: unlike `--canonicalize`, the rest of the program keeps
    its form (no folding of loom ops, no dead-code elimination).
    The training step (`loom::buildTrainingStep`,
    `--loom-training-step-pipeline`) runs it after `--loom-autodiff` when
    there is a mesh.

    Before:
    ```mlir
    %a = dist.all_reduce sum %x axis "tp" : tensor<2x8x16xf32>
    %s = dist.all_slice %a axis "tp" dim 1 : tensor<2x8x16xf32> -> tensor<2x4x16xf32>
    ```
    After:
    ```mlir
    %s = dist.reduce_scatter %x axis "tp" dim 1 : tensor<2x8x16xf32> -> tensor<2x4x16xf32>
    ```
  }];
  let dependentDialects = ["::loom::dist::DistDialect"];
}

def LoomRecompute : Pass<"loom-recompute", "::mlir::ModuleOp"> {
  let summary = "Activation recomputation: the backward recomputes forward values instead of reading stored ones";
  let description = [{
    Runs on the differentiated training step (after `--loom-autodiff`). For
    each differentiated function (`loom.forward_ops` forward ops, then the
    backward), chooses per layer (`loom.layer`) which forward values the
    backward recomputes, and rewrites the backward to read copies of them
    made just before their first backward use (each copy marked
    `loom.recomputed`). A forward value no backward op reads any more then
    dies in the forward, and the memory planner reuses its bytes (or, in a
    pipeline chunk, does not keep it for the backward step). The choices
    (Korthikanti et al. 2022):

    - `none`: nothing is recomputed;
    - `selective`: the attention core: the scores matmul (q·kᵀ), the softmax
      and the attention dropout (their 5as²b bytes per layer);
    - `full`: everything of the layer but its output (the next layer's
      input), so a layer keeps only its input.

    In every mode a cast of a parameter (the 16-bit copy of a master weight)
    is made again where the backward reads it, and under sequence
    parallelism an all_gather of a layer's input is issued again, as
    Megatron does, rather than stored. Dropout copies draw the same Philox
    masks (the mask is keyed by site, step and element), so every choice
    trains the same model.

    `mode` is the default for every layer; `per-layer` overrides it
    (`per-layer=0:full,3:selective`). Each function records its layers'
    choices in `loom.layer_recompute`.

    Before (`mode=selective`), in the backward:
    ```mlir
    %p = loom.softmax %s causal scale 2.500000e-01 {loom.layer = 0 : i64} : tensor<2x4x8x8xf32>
    ...
    %dp = loom.softmax_grad %p, %g scale 2.500000e-01 {loom.layer = 0 : i64} : tensor<2x4x8x8xf32>
    ```
    After:
    ```mlir
    %s2 = loom.matmul %q, %k transposed {loom.layer = 0 : i64, loom.recomputed} : ...
    %p2 = loom.softmax %s2 causal scale 2.500000e-01 {loom.layer = 0 : i64, loom.recomputed} : ...
    %dp = loom.softmax_grad %p2, %g scale 2.500000e-01 {loom.layer = 0 : i64} : tensor<2x4x8x8xf32>
    ```
  }];
  let options = [
    Option<"mode", "mode", "std::string", /*default=*/"\"none\"",
           "What every layer recomputes: none, selective or full">,
    Option<"perLayer", "per-layer", "std::string", /*default=*/"\"\"",
           "Per-layer choices overriding mode: LAYER:MODE,...">,
  ];
  let dependentDialects = ["::loom::dist::DistDialect"];
}

def LoomFuse : Pass<"loom-fuse", "::mlir::func::FuncOp"> {
  let summary = "Group the training step's ops into fusion regions (loom.fused), one generated kernel each";
  let description = [{
    Runs on the finished training step (after differentiation) and wraps
    groups of ops in `loom.fused` regions; `lib/Codegen` turns each region
    into one kernel (docs/codegen.md). Values made and read only inside a
    region are never stored. The regions, by kind:

    - `elementwise`: chains of add, sub, mul, div, neg, scale, relu, silu,
      gelu, their gradients, dropout and dropout_grad, over one iteration
      shape; an operand may be a broadcast whose kept dimensions are one
      contiguous run of the result's (a bias [C] over [B, T, C], a per-row
      [B, T, 1]). This covers bias+GeLU, bias+dropout+residual-add and the
      activations' backward.
    - `layernorm`, `rmsnorm`: the norm with the elementwise chain that makes
      its input (residual-add + layernorm) and the chain that reads its
      output; `layernorm_grad`, `rmsnorm_grad`: the backward with its weight
      and bias gradient sums, and the chain that reads dx (the residual
      stream's gradient add).
    - `softmax`: scale + causal mask + softmax (no padding mask operand) with
      the chain after it (its dropout); `softmax_grad` with the chain that
      makes its output gradient (dropout_grad).
    - `cross_entropy`: a `sum` cross_entropy and its cross_entropy_grad on the
      same logits and labels, one pass that writes the logits' gradient in
      place of the logits (the probabilities are never stored).
    - `column_sum`: a sum `reduce` over leading dimensions (a bias gradient)
      with the chain that makes its input.

    Where a region ends (each rule is tested in loom-fuse.mlir):
    - Only f32 values are fused; bf16/f16 regions run the reference kernels.
    - A dropout (or its gradient) whose tensor is split over a mesh axis is
      not fused (its mask is keyed by the global index of a block).
    - An op joins a region only if each operand is the region's own value
      or a value made before; the region is placed at its last op, so a
      value it makes that another op reads before that point ends the
      region instead.
    - A region never spans the forward/backward boundary a pipeline chunk
      records (`loom.forward_ops`, updated here).
    - A region is one iteration space: an elementwise op whose result has
      another shape starts its own region.
    - Matmuls, collectives, embeddings, reshapes and the vocabulary-parallel
      pieces stay instructions of their own.

    Before:
    ```mlir
    %0 = loom.add %x, %b : tensor<4x64x3072xf32>, tensor<3072xf32> -> tensor<4x64x3072xf32>
    %1 = loom.gelu %0 {approximate = "tanh"} : tensor<4x64x3072xf32>
    ```
    After:
    ```mlir
    %1 = loom.fused "elementwise" (%x, %b) : (tensor<4x64x3072xf32>, tensor<3072xf32>) -> tensor<4x64x3072xf32> {
    ^bb0(%a: tensor<4x64x3072xf32>, %c: tensor<3072xf32>):
      %0 = loom.add %a, %c : ...
      %1 = loom.gelu %0 {approximate = "tanh"} : tensor<4x64x3072xf32>
      loom.yield %1 : tensor<4x64x3072xf32>
    }
    ```
  }];
}

#endif // LOOM_PASSES_TD
