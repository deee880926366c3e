// RUN: loom-opt %s --pass-pipeline='builtin.module(func.func(loom-fuse))' -split-input-file | FileCheck %s

// An elementwise chain is one region: the bias add (a [C] operand of
// [B, T, C]) and the GeLU; the sum inside is never a result.
// CHECK-LABEL: func.func @bias_gelu
// CHECK: %[[R:.*]] = loom.fused "elementwise"(%arg0, %arg1) : (tensor<4x6x8xf32>, tensor<8xf32>) -> tensor<4x6x8xf32>
// CHECK: loom.add
// CHECK: loom.gelu
// CHECK: loom.yield %{{.*}} : tensor<4x6x8xf32>
// CHECK: return %[[R]]
func.func @bias_gelu(%x: tensor<4x6x8xf32>, %b: tensor<8xf32>) -> tensor<4x6x8xf32> {
  %0 = loom.add %x, %b : tensor<4x6x8xf32>, tensor<8xf32> -> tensor<4x6x8xf32>
  %1 = loom.gelu %0 approximate tanh : tensor<4x6x8xf32>
  return %1 : tensor<4x6x8xf32>
}

// -----

// Bias, dropout and the residual add: one region. A value read outside
// the region (the bias sum) is one of its results.
// CHECK-LABEL: func.func @bias_dropout_residual
// CHECK: %[[R:.*]]:2 = loom.fused "elementwise"
// CHECK: loom.dropout
// CHECK: loom.yield %{{.*}}, %{{.*}} : tensor<4x6x8xf32>, tensor<4x6x8xf32>
// CHECK: return %[[R]]#0, %[[R]]#1
func.func @bias_dropout_residual(%x: tensor<4x6x8xf32>, %b: tensor<8xf32>, %r: tensor<4x6x8xf32>) -> (tensor<4x6x8xf32>, tensor<4x6x8xf32>) {
  %0 = loom.add %x, %b : tensor<4x6x8xf32>, tensor<8xf32> -> tensor<4x6x8xf32>
  %1 = loom.dropout %0 rate 0.1 site "d" : tensor<4x6x8xf32>
  %2 = loom.add %r, %1 : tensor<4x6x8xf32>, tensor<4x6x8xf32> -> tensor<4x6x8xf32>
  return %0, %2 : tensor<4x6x8xf32>, tensor<4x6x8xf32>
}

// -----

// A region ends where one of its values is read before the next op: the
// GeLU cannot join the add, whose sum the matmul reads first.
// CHECK-LABEL: func.func @read_before
// CHECK: loom.fused "elementwise"
// CHECK-NEXT: ^bb0
// CHECK-NEXT: loom.add
// CHECK-NEXT: loom.yield
// CHECK: loom.matmul
// CHECK: loom.fused "elementwise"
// CHECK-NEXT: ^bb0
// CHECK-NEXT: loom.gelu
func.func @read_before(%x: tensor<6x8xf32>, %b: tensor<8xf32>, %w: tensor<8x8xf32>) -> (tensor<6x8xf32>, tensor<6x8xf32>) {
  %0 = loom.add %x, %b : tensor<6x8xf32>, tensor<8xf32> -> tensor<6x8xf32>
  %1 = loom.matmul %0, %w : tensor<6x8xf32>, tensor<8x8xf32> -> tensor<6x8xf32>
  %2 = loom.gelu %0 approximate tanh : tensor<6x8xf32>
  return %1, %2 : tensor<6x8xf32>, tensor<6x8xf32>
}

// -----

// Another iteration shape starts another region; a broadcast whose kept
// dimensions are not one run ([4, 1, 8] of [4, 6, 8]) is not fused; nor is
// a bf16 value.
// CHECK-LABEL: func.func @region_ends
// CHECK: loom.fused "elementwise"
// CHECK-NEXT: ^bb0(%{{.*}}: tensor<8xf32>)
// CHECK-NEXT: loom.neg
// CHECK: loom.mul %arg0, %arg2 : tensor<4x6x8xf32>, tensor<4x1x8xf32>
// CHECK-NOT: loom.fused
// CHECK: loom.relu %arg3 : tensor<4x8xbf16>
// CHECK-NOT: loom.fused
// CHECK: return
func.func @region_ends(%x: tensor<4x6x8xf32>, %b: tensor<8xf32>, %c: tensor<4x1x8xf32>, %h: tensor<4x8xbf16>) -> (tensor<8xf32>, tensor<4x6x8xf32>, tensor<4x8xbf16>) {
  %0 = loom.neg %b : tensor<8xf32>
  %1 = loom.mul %x, %c : tensor<4x6x8xf32>, tensor<4x1x8xf32> -> tensor<4x6x8xf32>
  %2 = loom.relu %h : tensor<4x8xbf16>
  return %0, %1, %2 : tensor<8xf32>, tensor<4x6x8xf32>, tensor<4x8xbf16>
}

// -----

// Residual add + layernorm: the norm takes in the chain that makes its
// input; the residual stream (the sum) is a result too.
// CHECK-LABEL: func.func @residual_layernorm
// CHECK: %[[R:.*]]:2 = loom.fused "layernorm"
// CHECK: loom.add
// CHECK: loom.layernorm
// CHECK: loom.yield
func.func @residual_layernorm(%x: tensor<4x6x8xf32>, %r: tensor<4x6x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> (tensor<4x6x8xf32>, tensor<4x6x8xf32>) {
  %0 = loom.add %x, %r : tensor<4x6x8xf32>, tensor<4x6x8xf32> -> tensor<4x6x8xf32>
  %1 = loom.layernorm %0, %g, %b : tensor<4x6x8xf32>, tensor<8xf32>, tensor<8xf32>
  return %0, %1 : tensor<4x6x8xf32>, tensor<4x6x8xf32>
}

// -----

// Scale + causal mask + softmax with the dropout after it; a softmax with
// a padding mask operand stays an instruction of its own.
// CHECK-LABEL: func.func @softmax_dropout
// CHECK: loom.fused "softmax"
// CHECK: loom.softmax
// CHECK: loom.dropout
// CHECK: loom.yield
// CHECK: loom.softmax %arg0 mask
// CHECK-NOT: loom.fused
func.func @softmax_dropout(%x: tensor<2x6x6xf32>, %m: tensor<2x6x6xi1>) -> (tensor<2x6x6xf32>, tensor<2x6x6xf32>) {
  %0 = loom.softmax %x causal scale 0.5 : tensor<2x6x6xf32>
  %1 = loom.dropout %0 rate 0.1 site "attn" : tensor<2x6x6xf32>
  %2 = loom.softmax %x mask(%m : tensor<2x6x6xi1>) : tensor<2x6x6xf32>
  return %1, %2 : tensor<2x6x6xf32>, tensor<2x6x6xf32>
}

// -----

// The cross-entropy's forward and backward on the same logits are one
// kernel; a mean one is left alone.
// CHECK-LABEL: func.func @cross_entropy
// CHECK: %[[R:.*]]:2 = loom.fused "cross_entropy"(%arg0, %arg1, %arg2)
// CHECK: loom.cross_entropy
// CHECK: loom.cross_entropy_grad
// CHECK: return %[[R]]#0, %[[R]]#1
func.func @cross_entropy(%x: tensor<4x6x8xf32>, %l: tensor<4x6xi32>, %s: tensor<f32>) -> (tensor<f32>, tensor<4x6x8xf32>) {
  %0 = loom.cross_entropy %x, %l reduction sum : tensor<4x6x8xf32>, tensor<4x6xi32> -> tensor<f32>
  %1 = loom.cross_entropy_grad %x, %l, %s reduction sum : tensor<4x6x8xf32>, tensor<4x6xi32>, tensor<f32>
  return %0, %1 : tensor<f32>, tensor<4x6x8xf32>
}

// CHECK-LABEL: func.func @cross_entropy_mean
// CHECK-NOT: loom.fused
func.func @cross_entropy_mean(%x: tensor<4x6x8xf32>, %l: tensor<4x6xi32>, %s: tensor<f32>) -> (tensor<f32>, tensor<4x6x8xf32>) {
  %0 = loom.cross_entropy %x, %l reduction mean : tensor<4x6x8xf32>, tensor<4x6xi32> -> tensor<f32>
  %1 = loom.cross_entropy_grad %x, %l, %s reduction mean : tensor<4x6x8xf32>, tensor<4x6xi32>, tensor<f32>
  return %0, %1 : tensor<f32>, tensor<4x6x8xf32>
}

// -----

// A bias gradient: the GeLU backward and the sum over its leading
// dimensions, one pass.
// CHECK-LABEL: func.func @bias_grad
// CHECK: %[[R:.*]]:2 = loom.fused "column_sum"
// CHECK: loom.gelu_grad
// CHECK: loom.reduce sum
func.func @bias_grad(%x: tensor<4x6x8xf32>, %dy: tensor<4x6x8xf32>) -> (tensor<4x6x8xf32>, tensor<8xf32>) {
  %0 = loom.gelu_grad %x, %dy approximate tanh : tensor<4x6x8xf32>
  %1 = loom.reduce sum %0 dims [0, 1] : tensor<4x6x8xf32> -> tensor<8xf32>
  return %0, %1 : tensor<4x6x8xf32>, tensor<8xf32>
}

// -----

// The layernorm backward with the residual stream's gradient add after it.
// CHECK-LABEL: func.func @layernorm_grad
// CHECK: loom.fused "layernorm_grad"
// CHECK: loom.layernorm_grad
// CHECK: loom.add
func.func @layernorm_grad(%x: tensor<4x6x8xf32>, %g: tensor<8xf32>, %dy: tensor<4x6x8xf32>, %r: tensor<4x6x8xf32>) -> (tensor<4x6x8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %dx, %dg, %db = loom.layernorm_grad %x, %g, %dy : tensor<4x6x8xf32>, tensor<8xf32>
  %0 = loom.add %dx, %r : tensor<4x6x8xf32>, tensor<4x6x8xf32> -> tensor<4x6x8xf32>
  return %0, %dg, %db : tensor<4x6x8xf32>, tensor<8xf32>, tensor<8xf32>
}

// -----

// A sum of gradients the function returns stays an add: the plan builder
// accumulates each term where it is made.
// CHECK-LABEL: func.func @grad_sum
// CHECK-NOT: loom.fused
// CHECK: loom.add
func.func @grad_sum(%a: tensor<8xf32>, %b: tensor<8xf32>) -> (tensor<f32>, tensor<8xf32> {loom.grad = "w"}) {
  %l = loom.reduce sum %a dims [0] : tensor<8xf32> -> tensor<f32>
  %0 = loom.add %a, %b : tensor<8xf32>, tensor<8xf32> -> tensor<8xf32>
  return %l, %0 : tensor<f32>, tensor<8xf32>
}

// -----

// A pipeline chunk runs its forward alone: no region spans the boundary
// (loom.forward_ops, which counts the fused op once).
// CHECK-LABEL: func.func @chunk
// CHECK-SAME: loom.forward_ops = 1
// CHECK: loom.fused "elementwise"
// CHECK-NEXT: ^bb0
// CHECK-NEXT: loom.neg
// CHECK-NEXT: loom.yield
// CHECK: loom.fused "elementwise"
// CHECK-NEXT: ^bb0
// CHECK-NEXT: loom.relu
func.func @chunk(%x: tensor<8xf32>) -> tensor<8xf32> attributes {loom.pipeline_chunk = 0 : i64, loom.forward_ops = 1 : i64} {
  %0 = loom.neg %x : tensor<8xf32>
  %1 = loom.relu %0 : tensor<8xf32>
  return %1 : tensor<8xf32>
}
