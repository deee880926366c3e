//===- LoomOps.td - loom dialect operations ---------------*- tablegen -*-===//
//
// Primitive ops of a GPT, a BERT and (later) an MoE, on global shapes.
// Every op implements Loom_CostOpInterface; its FLOP rule is in LoomCost.cpp.
// Ops marked Loom_HasShardingRule have a factor sharding rule (LoomSharding.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_OPS_TD
#define LOOM_OPS_TD

include "LoomDialect.td"
include "LoomAttrs.td"
include "LoomInterfaces.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Types.
//===----------------------------------------------------------------------===//

def Loom_FloatTensor : StaticShapeTensorOf<[F32, BF16, F16]>;
def Loom_IndexTensor : StaticShapeTensorOf<[I32, I64]>;
def Loom_NumericTensor : StaticShapeTensorOf<[F32, BF16, F16, I32, I64]>;
def Loom_MaskTensor : StaticShapeTensorOf<[I1]>;
def Loom_Tensor : StaticShapeTensorOf<[F32, BF16, F16, I32, I64, I1]>;

//===----------------------------------------------------------------------===//
// Base class: every op has a cost.
//===----------------------------------------------------------------------===//

class Loom_Op<string mnemonic, list<Trait> traits = []>
    : Op<Loom_Dialect, mnemonic,
         !listconcat(traits, [DeclareOpInterfaceMethods<Loom_CostOpInterface>])>;

// The ops --loom-shard can split: each has a factor rule (LoomSharding.cpp).
// An op without one (the backward ops, the vocabulary-parallel pieces) runs
// on whole values.
defvar Loom_HasShardingRule =
    DeclareOpInterfaceMethods<Loom_ShardingRuleOpInterface>;

//===----------------------------------------------------------------------===//
// Parameters.
//===----------------------------------------------------------------------===//

def Loom_ParameterOp : Loom_Op<"parameter", [Pure, Loom_HasShardingRule,
    DeclareOpInterfaceMethods<Loom_CostOpInterface,
                              ["getBytesRead", "getBytesWritten"]>]> {
  let summary = "a trainable parameter with a stable name and an initializer";
  let description = [{
    Declares a trainable tensor. `name` is a dotted path
    (`layers.3.attention.qkv.weight`) that checkpoints, the sharding map and
    the counter-based initializer key on; it is stable across mesh shapes.

    ```mlir
    %w = loom.parameter "layers.0.mlp.fc1.weight"
           init(#loom.normal<std = 2.000000e-02>) : tensor<768x3072xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, Loom_InitializerAttrInterface:$init);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$name `init` `(` $init `)` attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Contractions.
//===----------------------------------------------------------------------===//

def Loom_MatmulOp : Loom_Op<"matmul", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "batched matrix multiplication with optional transposes";
  let description = [{
    `lhs` is `[B..., m, k]` (`[B..., k, m]` when marked `transposed`), `rhs`
    is `[B..., k, n]` (`[B..., n, k]` when marked `transposed`); the result
    is `[B..., m, n]`. The batch dimensions are equal, or one side has none
    and is broadcast (a weight applied to every sequence). Costs 2·m·n·k per
    batch element.

    ```mlir
    %y = loom.matmul %x, %w : tensor<8x768xf32>, tensor<768x2304xf32> -> tensor<8x2304xf32>
    %s = loom.matmul %q, %k transposed
           : tensor<12x64x64xf32>, tensor<12x64x64xf32> -> tensor<12x64x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$lhs, Loom_FloatTensor:$rhs,
                       UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs (`transposed` $transpose_lhs^)? `,` $rhs (`transposed` $transpose_rhs^)?
    attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The result type of `lhs @ rhs`, or failure with a message through
    /// `emitError` (which may be null) when the shapes do not contract.
    static ::mlir::FailureOr<::mlir::RankedTensorType> inferResultType(
        ::mlir::RankedTensorType lhs, ::mlir::RankedTensorType rhs,
        bool transposeLhs, bool transposeRhs,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError);
  }];
}

//===----------------------------------------------------------------------===//
// Elementwise binary ops, with numpy-style broadcasting.
//===----------------------------------------------------------------------===//

class Loom_BinaryOp<string mnemonic, string math> : Loom_Op<mnemonic, [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "elementwise " # math # " with broadcasting";
  let description = [{
    Broadcasts as numpy does: shapes align at their trailing dimensions, and
    each pair of dimensions is equal or one of them is 1. Both operands have
    the same element type (insert a `loom.cast` to mix precisions).

    ```mlir
    %y = loom.}] # mnemonic # [{ %x, %b : tensor<8x768xf32>, tensor<768xf32> -> tensor<8x768xf32>
    ```
  }];
  let arguments = (ins Loom_NumericTensor:$lhs, Loom_NumericTensor:$rhs);
  let results = (outs Loom_NumericTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The broadcast result type, or failure with a message through
    /// `emitError` (which may be null).
    static ::mlir::FailureOr<::mlir::RankedTensorType> inferResultType(
        ::mlir::RankedTensorType lhs, ::mlir::RankedTensorType rhs,
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError) {
      return ::loom::inferBroadcastType(lhs, rhs, emitError);
    }
  }];
}

def Loom_AddOp : Loom_BinaryOp<"add", "addition">;
def Loom_SubOp : Loom_BinaryOp<"sub", "subtraction">;
def Loom_MulOp : Loom_BinaryOp<"mul", "multiplication">;
def Loom_DivOp : Loom_BinaryOp<"div", "division">;

//===----------------------------------------------------------------------===//
// Elementwise unary ops.
//===----------------------------------------------------------------------===//

class Loom_UnaryOp<string mnemonic, list<Trait> traits = []>
    : Loom_Op<mnemonic, !listconcat(traits, [Pure, SameOperandsAndResultType,
        DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>,
        Loom_HasShardingRule])> {
  let arguments = (ins Loom_FloatTensor:$input);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Loom_NegOp : Loom_UnaryOp<"neg"> {
  let summary = "elementwise negation";
  let hasFolder = 1;
}

def Loom_ReluOp : Loom_UnaryOp<"relu"> {
  let summary = "elementwise max(x, 0)";
}

def Loom_SiluOp : Loom_UnaryOp<"silu"> {
  let summary = "elementwise x * sigmoid(x) (swish)";
}

def Loom_GeluOp : Loom_UnaryOp<"gelu"> {
  let summary = "Gaussian error linear unit, exact or tanh-approximated";
  let description = [{
    `none` is x·Φ(x) through erf; `tanh` is GPT-2's
    0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))).

    ```mlir
    %y = loom.gelu %x approximate tanh : tensor<8x3072xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input,
      DefaultValuedAttr<Loom_GeluApproximation,
                        "::loom::GeluApproximation::None">:$approximate);
  let assemblyFormat =
      "$input (`approximate` $approximate^)? attr-dict `:` type($result)";
}

def Loom_ScaleOp : Loom_UnaryOp<"scale"> {
  let summary = "multiplication by a compile-time constant";
  let description = [{
    ```mlir
    %y = loom.scale %x by 1.250000e-01 : tensor<8x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, F64Attr:$factor);
  let assemblyFormat = "$input `by` $factor attr-dict `:` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Loom_CastOp : Loom_Op<"cast", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "element type conversion (same shape)";
  let description = [{
    Float to float rounds to nearest even; float to integer truncates towards
    zero; integer to float rounds to nearest; to i1 is `x != 0`.

    ```mlir
    %y = loom.cast %x : tensor<8x768xf32> to tensor<8x768xbf16>
    ```
  }];
  let arguments = (ins Loom_Tensor:$input);
  let results = (outs Loom_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `to` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Softmax, normalisation, dropout.
//===----------------------------------------------------------------------===//

def Loom_SoftmaxOp : Loom_Op<"softmax", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "scaled, optionally masked softmax over the last dimension";
  let description = [{
    Computes softmax(scale · x) over the last dimension, with masked-out
    positions set to -inf before the exponent. One fused op because that is
    how it is executed (Megatron's scale-mask-softmax kernel).

    - `causal`: for an input `[..., q, k]`, query `i` sees key `j` only when
      `j <= i + (k - q)`.
    - `mask(%m : tensor<...xi1>)`: a padding mask broadcast to the input;
      `true` keeps a position, `false` masks it.

    ```mlir
    %p = loom.softmax %s causal scale 1.250000e-01 : tensor<12x64x64xf32>
    %p = loom.softmax %s mask(%m : tensor<4x1x1x64xi1>) : tensor<4x12x64x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Optional<Loom_MaskTensor>:$mask,
                       UnitAttr:$causal,
                       DefaultValuedAttr<F64Attr, "1.0">:$scale);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`mask` `(` $mask^ `:` type($mask) `)`)? (`causal` $causal^)?
    (`scale` $scale^)? attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_LayerNormOp : Loom_Op<"layernorm", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "layer normalisation over the last dimension";
  let description = [{
    y = (x - mean) / sqrt(var + epsilon) · weight + bias, with mean and the
    biased variance taken over the last dimension; `weight` and `bias` have
    the shape of that dimension.

    ```mlir
    %y = loom.layernorm %x, %g, %b eps 1.000000e-05
           : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                       Loom_FloatTensor:$bias,
                       DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias (`eps` $epsilon^)? attr-dict `:`
    type($input) `,` type($weight) `,` type($bias)
  }];
  let hasVerifier = 1;
}

def Loom_RmsNormOp : Loom_Op<"rmsnorm", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule,
    AllTypesMatch<["input", "result"]>]> {
  let summary = "RMS normalisation over the last dimension";
  let description = [{
    y = x / sqrt(mean(x²) + epsilon) · weight.

    ```mlir
    %y = loom.rmsnorm %x, %g eps 1.000000e-06 : tensor<8x768xf32>, tensor<768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                       DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`eps` $epsilon^)? attr-dict `:`
    type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def Loom_DropoutOp : Loom_Op<"dropout", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule, SameOperandsAndResultType]> {
  let summary = "inverted dropout keyed by a named RNG site";
  let description = [{
    Zeroes each element with probability `rate` and scales the rest by
    1 / (1 - rate). The mask comes from the counter-based generator keyed by
    (seed, `site`, step, global element index), so a partitioned plan draws
    the same mask as one rank. `site` is a dotted path, unique per program.

    ```mlir
    %y = loom.dropout %x rate 1.000000e-01 site "layers.0.attention.dropout" : tensor<8x768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, F64Attr:$rate, StrAttr:$site);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat =
      "$input `rate` $rate `site` $site attr-dict `:` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Gathers and shape manipulation.
//===----------------------------------------------------------------------===//

def Loom_EmbeddingOp : Loom_Op<"embedding", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule,
    DeclareOpInterfaceMethods<Loom_CostOpInterface, ["getBytesRead"]>]> {
  let summary = "row gather from an embedding table";
  let description = [{
    `table` is `[vocab, hidden]`; each index in `indices` selects a row, so
    the result is `indices.shape + [hidden]`. Indices outside `[0, vocab)`
    are a run-time error.

    ```mlir
    %x = loom.embedding %wte[%tokens] : tensor<50257x768xf32>, tensor<4x64xi32> -> tensor<4x64x768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$table, Loom_IndexTensor:$indices);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $table `[` $indices `]` attr-dict `:` type($table) `,` type($indices)
    `->` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_ReshapeOp : Loom_Op<"reshape", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule,
    DeclareOpInterfaceMethods<Loom_CostOpInterface,
                              ["getBytesRead", "getBytesWritten"]>]> {
  let summary = "reinterpret a tensor with another shape (a view)";
  let description = [{
    Same elements in the same row-major order; the element counts match.

    ```mlir
    %h = loom.reshape %x : tensor<64x768xf32> -> tensor<64x12x64xf32>
    ```
  }];
  let arguments = (ins Loom_Tensor:$input);
  let results = (outs Loom_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Loom_TransposeOp : Loom_Op<"transpose", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "permute dimensions";
  let description = [{
    Result dimension `i` is input dimension `permutation[i]`.

    ```mlir
    %t = loom.transpose %x [1, 0, 2] : tensor<64x12x64xf32> -> tensor<12x64x64xf32>
    ```
  }];
  let arguments = (ins Loom_Tensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs Loom_Tensor:$result);
  let assemblyFormat =
      "$input $permutation attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Loom_SplitOp : Loom_Op<"split", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "split a tensor into consecutive pieces along one axis";
  let description = [{
    The pieces' sizes along `axis` are read off the result types and add up
    to the input's; every other dimension is unchanged.

    ```mlir
    %q, %k, %v = loom.split %qkv axis 1
        : tensor<64x2304xf32> -> tensor<64x768xf32>, tensor<64x768xf32>, tensor<64x768xf32>
    ```
  }];
  let arguments = (ins Loom_Tensor:$input, I64Attr:$axis);
  let results = (outs Variadic<Loom_Tensor>:$results);
  let assemblyFormat =
      "$input `axis` $axis attr-dict `:` type($input) `->` type($results)";
  let hasVerifier = 1;
}

def Loom_ConcatOp : Loom_Op<"concat", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "join tensors along one axis";
  let description = [{
    ```mlir
    %y = loom.concat %a, %b axis 0 : tensor<2x8xf32>, tensor<3x8xf32> -> tensor<5x8xf32>
    ```
  }];
  let arguments = (ins Variadic<Loom_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs Loom_Tensor:$result);
  let assemblyFormat =
      "$inputs `axis` $axis attr-dict `:` type($inputs) `->` type($result)";
  let hasVerifier = 1;
}

def Loom_ReduceOp : Loom_Op<"reduce", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "sum, mean or max over a set of dimensions";
  let description = [{
    Reduces the listed dimensions (sorted, distinct). With `keep_dims` they
    stay as size-1 dimensions; otherwise they are dropped.

    ```mlir
    %m = loom.reduce mean %x dims [1] : tensor<8x768xf32> -> tensor<8xf32>
    %s = loom.reduce sum %x dims [0, 1] keep_dims : tensor<8x768xf32> -> tensor<1x1xf32>
    ```
  }];
  let arguments = (ins Loom_ReduceKind:$kind, Loom_NumericTensor:$input,
                       DenseI64ArrayAttr:$dims, UnitAttr:$keep_dims);
  let results = (outs Loom_NumericTensor:$result);
  let assemblyFormat = [{
    $kind $input `dims` $dims (`keep_dims` $keep_dims^)? attr-dict `:`
    type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Loss.
//===----------------------------------------------------------------------===//

def Loom_CrossEntropyOp : Loom_Op<"cross_entropy", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "softmax cross-entropy of logits against integer labels";
  let description = [{
    `logits` is `[..., vocab]` and `labels` is `[...]`. Per token the loss is
    logsumexp(logits) - logits[label]; tokens whose label equals
    `ignore_index` contribute nothing. `reduction` is `none` (per-token
    losses, the labels' shape), `mean` (over the tokens not ignored; a
    scalar) or `sum` (a scalar). `classes` (0: all of `vocab`) says how many
    of the columns are real classes: the rest (the rows that pad the
    vocabulary so the tensor-parallel size divides it) take no part in the
    softmax, their probability and gradient are 0. Labels outside
    `[0, classes)` other than `ignore_index` are a run-time error.

    ```mlir
    %l = loom.cross_entropy %logits, %labels
           : tensor<4x64x50257xf32>, tensor<4x64xi32> -> tensor<f32>
    %t = loom.cross_entropy %logits, %labels reduction none ignore_index 0
           : tensor<4x64x50257xf32>, tensor<4x64xi32> -> tensor<4x64xf32>
    %p = loom.cross_entropy %logits, %labels classes 50257
           : tensor<4x64x50304xf32>, tensor<4x64xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_IndexTensor:$labels,
      DefaultValuedAttr<Loom_LossReduction,
                        "::loom::LossReduction::Mean">:$reduction,
      DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
      DefaultValuedAttr<I64Attr, "0">:$classes);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels (`reduction` $reduction^)?
    (`ignore_index` $ignore_index^)? (`classes` $classes^)? attr-dict `:`
    type($logits) `,` type($labels) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Constants and broadcasting.
//===----------------------------------------------------------------------===//

def Loom_FillOp : Loom_Op<"fill", [Pure, Loom_HasShardingRule]> {
  let summary = "a tensor with every element equal to a constant";
  let description = [{
    Seeds gradients (the loss's gradient is 1) and stands for the zero
    gradient of an unused result.

    ```mlir
    %one = loom.fill 1.000000e+00 : tensor<f32>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
}

def Loom_BroadcastOp : Loom_Op<"broadcast", [Pure, DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule]> {
  let summary = "broadcast to a larger shape, as numpy does";
  let description = [{
    The input's shape aligns with the result's at the trailing dimensions;
    each input dimension is 1 or equal to the result's. The backward of a
    reduction.

    ```mlir
    %y = loom.broadcast %x : tensor<8x1xf32> -> tensor<4x8x768xf32>
    ```
  }];
  let arguments = (ins Loom_NumericTensor:$input);
  let results = (outs Loom_NumericTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Backward ops: what reverse-mode differentiation emits where a gradient is
// not just forward ops. Each takes what its forward op saw and the gradient
// of the forward result (`dy`), and returns the gradients of the inputs.
//===----------------------------------------------------------------------===//

class Loom_ActivationGradOp<string mnemonic, string fn>
    : Loom_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "dx = dy · " # fn # "'(x)";
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$grad);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$input `,` $grad attr-dict `:` type($result)";
}

def Loom_ReluGradOp : Loom_ActivationGradOp<"relu_grad", "relu">;
def Loom_SiluGradOp : Loom_ActivationGradOp<"silu_grad", "silu">;
def Loom_GeluGradOp : Loom_ActivationGradOp<"gelu_grad", "gelu"> {
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$grad,
      DefaultValuedAttr<Loom_GeluApproximation,
                        "::loom::GeluApproximation::None">:$approximate);
  let assemblyFormat = [{
    $input `,` $grad (`approximate` $approximate^)? attr-dict `:` type($result)
  }];
}

def Loom_SoftmaxGradOp : Loom_Op<"softmax_grad",
    [Pure, SameOperandsAndResultType]> {
  let summary = "dx = scale · y · (dy - sum(dy · y)) over the last dimension";
  let description = [{
    Takes the softmax's output `y` (masked positions are 0 there, so the mask
    needs no repeating).

    ```mlir
    %dx = loom.softmax_grad %y, %dy scale 1.250000e-01 : tensor<12x64x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$output, Loom_FloatTensor:$grad,
                       DefaultValuedAttr<F64Attr, "1.0">:$scale);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat =
      "$output `,` $grad (`scale` $scale^)? attr-dict `:` type($result)";
}

def Loom_LayerNormGradOp : Loom_Op<"layernorm_grad", [Pure,
    AllTypesMatch<["input", "grad", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad", "bias_grad"]>]> {
  let summary = "gradients of layernorm: input, weight and bias";
  let description = [{
    Recomputes the mean and 1/std from `input` rather than keeping them.

    ```mlir
    %dx, %dw, %db = loom.layernorm_grad %x, %w, %dy eps 1.000000e-05
        : tensor<8x768xf32>, tensor<768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                       Loom_FloatTensor:$grad,
                       DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$input_grad,
                      Loom_FloatTensor:$weight_grad,
                      Loom_FloatTensor:$bias_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $grad (`eps` $epsilon^)? attr-dict `:`
    type($input) `,` type($weight)
  }];
}

def Loom_RmsNormGradOp : Loom_Op<"rmsnorm_grad", [Pure,
    AllTypesMatch<["input", "grad", "input_grad"]>,
    AllTypesMatch<["weight", "weight_grad"]>]> {
  let summary = "gradients of rmsnorm: input and weight";
  let arguments = (ins Loom_FloatTensor:$input, Loom_FloatTensor:$weight,
                       Loom_FloatTensor:$grad,
                       DefaultValuedAttr<F64Attr, "1e-5">:$epsilon);
  let results = (outs Loom_FloatTensor:$input_grad,
                      Loom_FloatTensor:$weight_grad);
  let assemblyFormat = [{
    $input `,` $weight `,` $grad (`eps` $epsilon^)? attr-dict `:`
    type($input) `,` type($weight)
  }];
}

def Loom_DropoutGradOp : Loom_Op<"dropout_grad",
    [Pure, SameOperandsAndResultType]> {
  let summary = "the gradient through a dropout: its mask, replayed";
  let description = [{
    Applies the mask that `loom.dropout` with the same `site` and `rate` drew
    (same seed, step and element indices) to `grad`.

    ```mlir
    %dx = loom.dropout_grad %dy rate 1.000000e-01 site "layers.0.mlp_output_dropout" : tensor<8x768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$grad, F64Attr:$rate, StrAttr:$site);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat =
      "$grad `rate` $rate `site` $site attr-dict `:` type($result)";
}

def Loom_EmbeddingGradOp : Loom_Op<"embedding_grad", [Pure]> {
  let summary = "the table's gradient: rows of dy added at their indices";
  let description = [{
    ```mlir
    %dtable = loom.embedding_grad %dy[%tokens]
        : tensor<4x64x768xf32>, tensor<4x64xi32> -> tensor<50257x768xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$grad, Loom_IndexTensor:$indices);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $grad `[` $indices `]` attr-dict `:` type($grad) `,` type($indices) `->`
    type($result)
  }];
  let hasVerifier = 1;
}

def Loom_CrossEntropyGradOp : Loom_Op<"cross_entropy_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "dlogits = dloss · (softmax(logits) - onehot(label))";
  let description = [{
    `grad` is the loss's gradient: a scalar for `mean` (divided by the number
    of tokens not ignored) and `sum`, per token for `none`. Ignored tokens get
    zero gradient, and so do the classes from `classes` on (0: none).

    ```mlir
    %dl = loom.cross_entropy_grad %logits, %labels, %dloss
        : tensor<4x64x512xf32>, tensor<4x64xi32>, tensor<f32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_IndexTensor:$labels,
      Loom_FloatTensor:$grad,
      DefaultValuedAttr<Loom_LossReduction,
                        "::loom::LossReduction::Mean">:$reduction,
      DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
      DefaultValuedAttr<I64Attr, "0">:$classes);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels `,` $grad (`reduction` $reduction^)?
    (`ignore_index` $ignore_index^)? (`classes` $classes^)? attr-dict `:`
    type($logits) `,` type($labels) `,` type($grad)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// The vocabulary-parallel cross-entropy (Megatron): what the partition pass
// makes of a cross_entropy whose logits are split over the vocabulary. Each
// rank holds a block of the classes; per token, the ranks exchange only the
// max, the sum of exponentials and the label's logit.
//===----------------------------------------------------------------------===//

def Loom_StopGradientOp : Loom_Op<"stop_gradient", [Pure,
    DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>, Loom_HasShardingRule,
    SameOperandsAndResultType]> {
  let summary = "the identity, through which no gradient flows";
  let description = [{
    The cross-entropy's per-token max is a shift that cancels in the loss;
    its gradient is zero, and this op says so.

    ```mlir
    %m = loom.stop_gradient %max : tensor<4x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$input);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

def Loom_CrossEntropyMaxOp : Loom_Op<"cross_entropy_max", [Pure]> {
  let summary = "per token: the max logit over the block's real classes";
  let description = [{
    `logits` is this rank's block of the vocabulary, as for
    cross_entropy_partials (the `dist.sharding` attribute gives the block's
    offset). The max leaves out the padded classes (from `classes - offset`
    on; `classes` 0: none are padded): a padded logit far above the real ones
    would make every exp(logit - max) underflow. A block with no real class
    gives -inf, which the max's all-reduce over the blocks drops. It is only
    a shift (a stop_gradient follows it), so it has no gradient rule.

    ```mlir
    %m = loom.cross_entropy_max %logits classes 50257
        : tensor<4x64x25152xf32> -> tensor<4x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits,
      DefaultValuedAttr<I64Attr, "0">:$classes);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $logits (`classes` $classes^)? attr-dict `:` type($logits) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_CrossEntropyPartialsOp : Loom_Op<"cross_entropy_partials", [Pure,
    DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>]> {
  let summary = "per token: sum of exp(logit - max), and the label's logit - max";
  let description = [{
    `logits` is `[..., classes]`: this rank's block of the vocabulary, whose
    first class is the block's offset (the op's `dist.sharding` attribute
    says which dimension is split over which mesh axis; without it the block
    is the whole vocabulary). `max` is the per-token max over the whole
    vocabulary. `sumexp` is Σ exp(logit - max) over the block; `target` is
    logit[label] - max when the label falls in the block, else 0. Tokens whose
    label is `ignore_index` get target 0. Both results are f32. `classes`
    (0: all) is the number of real classes of the whole vocabulary: the
    block's classes from `classes - offset` on are padding and left out.

    ```mlir
    %se, %t = loom.cross_entropy_partials %logits, %max, %labels
        : tensor<4x64x256xf32>, tensor<4x64xf32>, tensor<4x64xi32>
          -> tensor<4x64xf32>, tensor<4x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_FloatTensor:$max,
      Loom_IndexTensor:$labels, DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
      DefaultValuedAttr<I64Attr, "0">:$classes);
  let results = (outs Loom_FloatTensor:$sumexp, Loom_FloatTensor:$target);
  let assemblyFormat = [{
    $logits `,` $max `,` $labels (`ignore_index` $ignore_index^)?
    (`classes` $classes^)? attr-dict `:`
    type($logits) `,` type($max) `,` type($labels) `->` type($sumexp) `,` type($target)
  }];
  let hasVerifier = 1;
}

def Loom_CrossEntropyPartialsGradOp : Loom_Op<"cross_entropy_partials_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "dlogit = dsumexp · exp(logit - max) + dtarget · [class == label]";
  let description = [{
    Padded classes (from `classes - offset` on, as in cross_entropy_partials)
    get gradient 0.

    ```mlir
    %dl = loom.cross_entropy_partials_grad %logits, %max, %labels, %dse, %dt
        : tensor<4x64x256xf32>, tensor<4x64xf32>, tensor<4x64xi32>, tensor<4x64xf32>, tensor<4x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$logits, Loom_FloatTensor:$max,
      Loom_IndexTensor:$labels, Loom_FloatTensor:$dsumexp,
      Loom_FloatTensor:$dtarget, DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
      DefaultValuedAttr<I64Attr, "0">:$classes);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $max `,` $labels `,` $dsumexp `,` $dtarget
    (`ignore_index` $ignore_index^)? (`classes` $classes^)? attr-dict `:` type($logits) `,`
    type($max) `,` type($labels) `,` type($dsumexp) `,` type($dtarget)
  }];
  let hasVerifier = 1;
}

def Loom_CrossEntropyCombineOp : Loom_Op<"cross_entropy_combine", [Pure,
    DeclareOpInterfaceMethods<Loom_DifferentiableOpInterface>]> {
  let summary = "per-token loss log(sumexp) - target; 0 where the label is ignored";
  let description = [{
    ```mlir
    %l = loom.cross_entropy_combine %se, %t, %labels
        : tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xi32> -> tensor<4x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$sumexp, Loom_FloatTensor:$target,
      Loom_IndexTensor:$labels, DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Loom_FloatTensor:$result);
  let assemblyFormat = [{
    $sumexp `,` $target `,` $labels (`ignore_index` $ignore_index^)? attr-dict
    `:` type($sumexp) `,` type($target) `,` type($labels) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Loom_CrossEntropyCombineGradOp : Loom_Op<"cross_entropy_combine_grad", [Pure]> {
  let summary = "dsumexp = dy / sumexp, dtarget = -dy; 0 where the label is ignored";
  let description = [{
    ```mlir
    %dse, %dt = loom.cross_entropy_combine_grad %se, %labels, %dy
        : tensor<4x64xf32>, tensor<4x64xi32>, tensor<4x64xf32> -> tensor<4x64xf32>, tensor<4x64xf32>
    ```
  }];
  let arguments = (ins Loom_FloatTensor:$sumexp, Loom_IndexTensor:$labels,
      Loom_FloatTensor:$grad, DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Loom_FloatTensor:$dsumexp, Loom_FloatTensor:$dtarget);
  let assemblyFormat = [{
    $sumexp `,` $labels `,` $grad (`ignore_index` $ignore_index^)? attr-dict
    `:` type($sumexp) `,` type($labels) `,` type($grad) `->` type($dsumexp) `,` type($dtarget)
  }];
}

//===----------------------------------------------------------------------===//
// Fusion regions (--loom-fuse): ops that run as one generated kernel.
//===----------------------------------------------------------------------===//

def Loom_FusedOp : Loom_Op<"fused", [IsolatedFromAbove,
    SingleBlockImplicitTerminator<"YieldOp">, RecursiveMemoryEffects]> {
  let summary = "ops that run as one generated kernel";
  let description = [{
    A fusion region, formed by `--loom-fuse` after the training step is
    built: its body holds loom ops on whole tensors, over block arguments
    bound to the operands, and yields the values the rest of the program
    reads. Values made and used only inside the region are never stored.
    `kind` names the kernel family (elementwise, layernorm, softmax,
    cross_entropy, ...); `lib/Codegen` turns the region into one kernel
    description (docs/codegen.md).

    ```mlir
    %r = loom.fused "bias_gelu" (%x, %b) : (tensor<4x64x3072xf32>, tensor<3072xf32>) -> tensor<4x64x3072xf32> {
    ^bb0(%a: tensor<4x64x3072xf32>, %c: tensor<3072xf32>):
      %0 = loom.add %a, %c : tensor<4x64x3072xf32>, tensor<3072xf32> -> tensor<4x64x3072xf32>
      %1 = loom.gelu %0 {approximate = "tanh"} : tensor<4x64x3072xf32>
      loom.yield %1 : tensor<4x64x3072xf32>
    }
    ```
  }];
  let arguments = (ins StrAttr:$kind, Variadic<Loom_Tensor>:$inputs);
  let results = (outs Variadic<Loom_Tensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $kind `(` $inputs `)` attr-dict `:` functional-type($inputs, $results) $body
  }];
  let hasVerifier = 1;
  let skipDefaultBuilders = 1;
  let builders = [
    OpBuilder<(ins "::llvm::StringRef":$kind, "::mlir::TypeRange":$results,
                   "::mlir::ValueRange":$inputs)>
  ];
}

def Loom_YieldOp : Loom_Op<"yield", [Pure, Terminator, HasParent<"FusedOp">]> {
  let summary = "the values a fusion region gives back";
  let arguments = (ins Variadic<Loom_Tensor>:$values);
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
  let builders = [OpBuilder<(ins), [{ /* nothing yielded */ }]>];
}

#endif // LOOM_OPS_TD
