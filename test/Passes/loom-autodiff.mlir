// RUN: loom-opt %s --loom-autodiff -split-input-file -verify-diagnostics | FileCheck %s

// The function also returns each parameter's gradient, named; a tied
// parameter's two declarations give one gradient, their sum.
// CHECK-LABEL: func.func @lm
// CHECK-SAME: -> (tensor<f32>, tensor<7x4xf32> {loom.grad = "table"})
func.func @lm(%ids: tensor<2x3xi32>, %labels: tensor<2x3xi32>) -> tensor<f32> {
  %table = loom.parameter "table" init(#loom.normal<std = 2.000000e-02>) : tensor<7x4xf32>
  %x = loom.embedding %table[%ids] : tensor<7x4xf32>, tensor<2x3xi32> -> tensor<2x3x4xf32>
  %head = loom.parameter "table" init(#loom.normal<std = 2.000000e-02>) : tensor<7x4xf32>
  %logits = loom.matmul %x, %head transposed : tensor<2x3x4xf32>, tensor<7x4xf32> -> tensor<2x3x7xf32>
  %l = loom.cross_entropy %logits, %labels : tensor<2x3x7xf32>, tensor<2x3xi32> -> tensor<f32>
  // The seed dloss/dloss = 1 is marked: the plan makes it the loss scale.
  // CHECK: %[[ONE:.*]] = loom.fill 1.000000e+00 {loom.loss_seed} : tensor<f32>
  // CHECK: %[[DLOGITS:.*]] = loom.cross_entropy_grad %{{.*}}, %{{.*}}, %[[ONE]]
  // dX = dlogits · head; dHead = dlogitsᵀ · x with the batch folded into
  // the rows: one [7, 6] · [6, 4] matmul.
  // CHECK: loom.matmul %[[DLOGITS]], %{{.*}} : tensor<2x3x7xf32>, tensor<7x4xf32> -> tensor<2x3x4xf32>
  // CHECK: %[[X2:.*]] = loom.reshape %{{.*}} : tensor<2x3x4xf32> -> tensor<6x4xf32>
  // CHECK: %[[D2:.*]] = loom.reshape %[[DLOGITS]] : tensor<2x3x7xf32> -> tensor<6x7xf32>
  // CHECK: %[[DH:.*]] = loom.matmul %[[D2]] transposed, %[[X2]] : tensor<6x7xf32>, tensor<6x4xf32> -> tensor<7x4xf32>
  // CHECK: %[[DE:.*]] = loom.embedding_grad %{{.*}}[%{{.*}}] : tensor<2x3x4xf32>, tensor<2x3xi32> -> tensor<7x4xf32>
  // CHECK: %[[SUM:.*]] = loom.add %[[DE]], %[[DH]]
  // CHECK: return %{{.*}}, %[[SUM]] : tensor<f32>, tensor<7x4xf32>
  return %l : tensor<f32>
}

// -----

// A parameter the loss does not reach gets a zero gradient.
// CHECK-LABEL: func.func @unused
// CHECK: %[[ZERO:.*]] = loom.fill 0.000000e+00 : tensor<3xf32>
// CHECK: return %{{.*}}, %{{.*}}, %[[ZERO]] : tensor<f32>, tensor<3xf32>, tensor<3xf32>
func.func @unused() -> tensor<f32> {
  %a = loom.parameter "a" init(#loom.ones) : tensor<3xf32>
  %b = loom.parameter "b" init(#loom.ones) : tensor<3xf32>
  %l = loom.reduce sum %a dims [0] : tensor<3xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{cannot differentiate @f: its first result must be the scalar loss (tensor<f32>)}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

func.func private @g(%x: tensor<4xf32>) -> tensor<f32>
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  // expected-error @+1 {{inline calls before differentiating (--inline)}}
  %l = func.call @g(%x) : (tensor<4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @f() -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.ones) : tensor<4xf32>
  // expected-error @+1 {{reduce max is not differentiable here; use it outside the loss's graph}}
  %m = loom.reduce max %x dims [0] : tensor<4xf32> -> tensor<f32>
  return %m : tensor<f32>
}
