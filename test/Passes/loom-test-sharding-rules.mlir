// The factor sharding rule of every loom op that has one
// (ShardingRuleOpInterface), in Shardy's notation: a factor per dimension of
// each operand, then of each result ("_" for a dimension that stays whole),
// each factor's size, the reduction factors (only operands carry them) and the
// factors that must stay whole. --loom-shard reads these rules.
// RUN: loom-opt %s --loom-test-sharding-rules -split-input-file -mlir-print-op-on-diagnostic=false -o /dev/null 2>&1 | FileCheck %s

// Elementwise ops broadcast as numpy does: an operand aligns with the result
// at the trailing dimensions and shares their factors.
// CHECK: remark: loom.add: ([i, j], [j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @add(%a: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %0 = loom.add %a, %b : tensor<4x8xf32>, tensor<8xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// A broadcast (size-1) dimension carries no factor.
// CHECK: remark: loom.sub: ([i, _], [i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @sub(%a: tensor<4x1xf32>, %b: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.sub %a, %b : tensor<4x1xf32>, tensor<4x8xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.mul: ([i, j, k], [i, j, k]) -> ([i, j, k]) {i=2, j=4, k=8}{{$}}
func.func @mul(%a: tensor<2x4x8xf32>, %b: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
  %0 = loom.mul %a, %b : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  return %0 : tensor<2x4x8xf32>
}

// -----

// A scalar operand has no dimensions.
// CHECK: remark: loom.div: ([i, j], []) -> ([i, j]) {i=4, j=8}{{$}}
func.func @div(%a: tensor<4x8xf32>, %b: tensor<f32>) -> tensor<4x8xf32> {
  %0 = loom.div %a, %b : tensor<4x8xf32>, tensor<f32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// Unary ops pass every dimension through.
// CHECK: remark: loom.neg: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @neg(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.neg %x : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.relu: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @relu(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.relu %x : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.silu: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @silu(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.silu %x : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.gelu: ([i, j, k]) -> ([i, j, k]) {i=2, j=4, k=8}{{$}}
func.func @gelu(%x: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
  %0 = loom.gelu %x approximate tanh : tensor<2x4x8xf32>
  return %0 : tensor<2x4x8xf32>
}

// -----

// CHECK: remark: loom.scale: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @scale(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.scale %x by 1.250000e-01 : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.cast: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @cast(%x: tensor<4x8xf32>) -> tensor<4x8xbf16> {
  %0 = loom.cast %x : tensor<4x8xf32> to tensor<4x8xbf16>
  return %0 : tensor<4x8xbf16>
}

// -----

// Dropout draws its mask by global element index: any dimension may split.
// CHECK: remark: loom.dropout: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @dropout(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.dropout %x rate 1.000000e-01 site "drop" : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.stop_gradient: ([i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @stop_gradient(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = loom.stop_gradient %x : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// The normalised (last) dimension stays whole; the padding mask follows the
// input where it is not broadcast. A causal mask depends on the query's
// position, so the queries are a whole factor: related, never split.
// CHECK: remark: loom.softmax: ([i, j, k, _], [i, _, _, _]) -> ([i, j, k, _]) {i=2, j=4, k=8}{{$}}
// CHECK: remark: loom.softmax: ([i, j, k, _]) -> ([i, j, k, _]) {i=2, j=4, k=8} whole={k}{{$}}
func.func @softmax(%x: tensor<2x4x8x8xf32>, %m: tensor<2x1x1x8xi1>) -> (tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32>) {
  %0 = loom.softmax %x mask(%m : tensor<2x1x1x8xi1>) : tensor<2x4x8x8xf32>
  %1 = loom.softmax %x causal : tensor<2x4x8x8xf32>
  return %0, %1 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32>
}

// -----

// The normalised dimension stays whole, and so do the weight and bias.
// CHECK: remark: loom.layernorm: ([i, j, _], [_], [_]) -> ([i, j, _]) {i=2, j=4}{{$}}
func.func @layernorm(%x: tensor<2x4x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<2x4x8xf32> {
  %0 = loom.layernorm %x, %g, %b : tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
  return %0 : tensor<2x4x8xf32>
}

// -----

// CHECK: remark: loom.rmsnorm: ([i, j, _], [_]) -> ([i, j, _]) {i=2, j=4}{{$}}
func.func @rmsnorm(%x: tensor<2x4x8xf32>, %g: tensor<8xf32>) -> tensor<2x4x8xf32> {
  %0 = loom.rmsnorm %x, %g : tensor<2x4x8xf32>, tensor<8xf32>
  return %0 : tensor<2x4x8xf32>
}

// -----

// The contraction is a reduction factor (splitting it leaves partial sums).
// Batch dimensions are shared; a side without them (a weight) is broadcast.
// `transposed` swaps which dimension of a side is the contraction.
// CHECK: remark: loom.matmul: ([i, j, l], [l, k]) -> ([i, j, k]) {i=2, j=4, k=16, l=8} reduction={l}{{$}}
// CHECK: remark: loom.matmul: ([i, j, l], [i, k, l]) -> ([i, j, k]) {i=3, j=5, k=7, l=6} reduction={l}{{$}}
// CHECK: remark: loom.matmul: ([k, i], [k, j]) -> ([i, j]) {i=4, j=16, k=8} reduction={k}{{$}}
func.func @matmul(%x: tensor<2x4x8xf32>, %w: tensor<8x16xf32>, %q: tensor<3x5x6xf32>, %k: tensor<3x7x6xf32>, %a: tensor<8x4xf32>) -> (tensor<2x4x16xf32>, tensor<3x5x7xf32>, tensor<4x16xf32>) {
  %0 = loom.matmul %x, %w : tensor<2x4x8xf32>, tensor<8x16xf32> -> tensor<2x4x16xf32>
  %1 = loom.matmul %q, %k transposed : tensor<3x5x6xf32>, tensor<3x7x6xf32> -> tensor<3x5x7xf32>
  %2 = loom.matmul %a transposed, %w : tensor<8x4xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  return %0, %1, %2 : tensor<2x4x16xf32>, tensor<3x5x7xf32>, tensor<4x16xf32>
}

// -----

// The table's rows are a reduction factor (the vocabulary-parallel
// embedding); its features follow into the result.
// CHECK: remark: loom.embedding: ([i, j], [k, l]) -> ([k, l, j]) {i=64, j=8, k=2, l=4} reduction={i}{{$}}
func.func @embedding(%table: tensor<64x8xf32>, %ids: tensor<2x4xi32>) -> tensor<2x4x8xf32> {
  %0 = loom.embedding %table[%ids] : tensor<64x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
  return %0 : tensor<2x4x8xf32>
}

// -----

// Dimensions group where their products agree; the major dimensions of a
// group share a factor (the heads of [b, s, 3h] -> [b, s, heads, 3d]), the
// minor ones stay whole, and size-1 dimensions take no part.
// CHECK: remark: loom.reshape: ([i, j, k]) -> ([i, j, k, _]) {i=2, j=4, k=4}{{$}}
// CHECK: remark: loom.reshape: ([i, _, _]) -> ([i]) {i=8}{{$}}
func.func @reshape(%x: tensor<2x4x24xf32>, %y: tensor<8x1x6xf32>) -> (tensor<2x4x4x6xf32>, tensor<48xf32>) {
  %0 = loom.reshape %x : tensor<2x4x24xf32> -> tensor<2x4x4x6xf32>
  %1 = loom.reshape %y : tensor<8x1x6xf32> -> tensor<48xf32>
  return %0, %1 : tensor<2x4x4x6xf32>, tensor<48xf32>
}

// -----

// The factors follow the permutation.
// CHECK: remark: loom.transpose: ([i, j, k]) -> ([j, i, k]) {i=2, j=4, k=8}{{$}}
func.func @transpose(%x: tensor<2x4x8xf32>) -> tensor<4x2x8xf32> {
  %0 = loom.transpose %x [1, 0, 2] : tensor<2x4x8xf32> -> tensor<4x2x8xf32>
  return %0 : tensor<4x2x8xf32>
}

// -----

// The split axis stays whole; every piece shares the other factors.
// CHECK: remark: loom.split: ([i, _]) -> ([i, _], [i, _]) {i=4}{{$}}
func.func @split(%x: tensor<4x24xf32>) -> (tensor<4x8xf32>, tensor<4x16xf32>) {
  %0, %1 = loom.split %x axis 1 : tensor<4x24xf32> -> tensor<4x8xf32>, tensor<4x16xf32>
  return %0, %1 : tensor<4x8xf32>, tensor<4x16xf32>
}

// -----

// The concatenated axis stays whole.
// CHECK: remark: loom.concat: ([_, i], [_, i]) -> ([_, i]) {i=8}{{$}}
func.func @concat(%a: tensor<2x8xf32>, %b: tensor<3x8xf32>) -> tensor<5x8xf32> {
  %0 = loom.concat %a, %b axis 0 : tensor<2x8xf32>, tensor<3x8xf32> -> tensor<5x8xf32>
  return %0 : tensor<5x8xf32>
}

// -----

// A sum over a dimension makes it a reduction factor; a mean or a max needs
// it whole; keep_dims leaves a whole size-1 dimension.
// CHECK: remark: loom.reduce: ([i, j, k]) -> ([i, k]) {i=2, j=4, k=8} reduction={j}{{$}}
// CHECK: remark: loom.reduce: ([i, _, j]) -> ([i, _, j]) {i=2, j=8}{{$}}
// CHECK: remark: loom.reduce: ([_, i, j]) -> ([i, j]) {i=4, j=8}{{$}}
func.func @reduce(%x: tensor<2x4x8xf32>) -> (tensor<2x8xf32>, tensor<2x1x8xf32>, tensor<4x8xf32>) {
  %0 = loom.reduce sum %x dims [1] : tensor<2x4x8xf32> -> tensor<2x8xf32>
  %1 = loom.reduce mean %x dims [1] keep_dims : tensor<2x4x8xf32> -> tensor<2x1x8xf32>
  %2 = loom.reduce max %x dims [0] : tensor<2x4x8xf32> -> tensor<4x8xf32>
  return %0, %1, %2 : tensor<2x8xf32>, tensor<2x1x8xf32>, tensor<4x8xf32>
}

// -----

// The input aligns with the result at the trailing dimensions.
// CHECK: remark: loom.broadcast: ([j, _]) -> ([i, j, k]) {i=2, j=4, k=8}{{$}}
func.func @broadcast(%x: tensor<4x1xf32>) -> tensor<2x4x8xf32> {
  %0 = loom.broadcast %x : tensor<4x1xf32> -> tensor<2x4x8xf32>
  return %0 : tensor<2x4x8xf32>
}

// -----

// Per-token losses share the tokens' factors; the classes may split (the
// vocabulary-parallel cross-entropy) except for a mean, which keeps the
// whole tensor whole.
// CHECK: remark: loom.cross_entropy: ([i, j, k], [i, j]) -> ([i, j]) {i=2, j=4, k=64} reduction={k}{{$}}
// CHECK: remark: loom.cross_entropy: ([_, _, i], [_, _]) -> ([]) {i=64} reduction={i}{{$}}
// CHECK: remark: loom.cross_entropy: ([_, _, _], [_, _]) -> ([]) {}{{$}}
func.func @cross_entropy(%logits: tensor<2x4x64xf32>, %labels: tensor<2x4xi32>) -> (tensor<2x4xf32>, tensor<f32>, tensor<f32>) {
  %0 = loom.cross_entropy %logits, %labels reduction none : tensor<2x4x64xf32>, tensor<2x4xi32> -> tensor<2x4xf32>
  %1 = loom.cross_entropy %logits, %labels reduction sum : tensor<2x4x64xf32>, tensor<2x4xi32> -> tensor<f32>
  %2 = loom.cross_entropy %logits, %labels : tensor<2x4x64xf32>, tensor<2x4xi32> -> tensor<f32>
  return %0, %1, %2 : tensor<2x4xf32>, tensor<f32>, tensor<f32>
}

// -----

// Ops without operands: the result's dimensions are free factors.
// CHECK: remark: loom.fill: () -> ([i, j]) {i=4, j=8}{{$}}
func.func @fill() -> tensor<4x8xf32> {
  %0 = loom.fill 1.000000e+00 : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// CHECK: remark: loom.parameter: () -> ([i, j]) {i=64, j=8}{{$}}
func.func @parameter() -> tensor<64x8xf32> {
  %0 = loom.parameter "wte" init(#loom.normal<std = 2.000000e-02>) : tensor<64x8xf32>
  return %0 : tensor<64x8xf32>
}

// -----

// Backward ops, the vocabulary-parallel pieces and collectives have no rule:
// --loom-shard runs them on whole values.
// CHECK: remark: loom.relu_grad: no sharding rule (runs on whole values){{$}}
// CHECK: remark: loom.embedding_grad: no sharding rule (runs on whole values){{$}}
// CHECK: remark: loom.cross_entropy_partials: no sharding rule (runs on whole values){{$}}
// CHECK: remark: dist.all_reduce: no sharding rule (runs on whole values){{$}}
module attributes {dist.mesh = #dist.mesh<tp = 2>} {
  func.func @no_rule(%x: tensor<4x8xf32>, %dy: tensor<4x8xf32>, %ids: tensor<4xi32>, %m: tensor<4xf32>) -> (tensor<4x8xf32>, tensor<64x8xf32>, tensor<4x8xf32>) {
    %0 = loom.relu_grad %x, %dy : tensor<4x8xf32>
    %1 = loom.embedding_grad %dy[%ids] : tensor<4x8xf32>, tensor<4xi32> -> tensor<64x8xf32>
    %se, %t = loom.cross_entropy_partials %x, %m, %ids : tensor<4x8xf32>, tensor<4xf32>, tensor<4xi32> -> tensor<4xf32>, tensor<4xf32>
    %2 = dist.all_reduce sum %x axis "tp" : tensor<4x8xf32>
    return %0, %1, %2 : tensor<4x8xf32>, tensor<64x8xf32>, tensor<4x8xf32>
  }
}
