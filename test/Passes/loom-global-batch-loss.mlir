// RUN: loom-opt %s --loom-global-batch-loss -split-input-file | FileCheck %s

// A mean cross-entropy becomes a sum; the function records that the step
// divides by the tokens counted in the global batch, which argument holds the
// labels (through the reshape) and the ignore_index.
// CHECK-LABEL: func.func @lm
// CHECK-SAME: loom.ignore_index = 7 : i64, loom.labels_input = 1 : i64, loom.loss_normalizer = "tokens"
// CHECK: loom.cross_entropy %{{.*}}, %{{.*}} reduction sum ignore_index 7
func.func @lm(%x: tensor<2x3x5xf32>, %labels: tensor<6xi32>) -> tensor<f32> {
  %l2 = loom.reshape %labels : tensor<6xi32> -> tensor<2x3xi32>
  %l = loom.cross_entropy %x, %l2 ignore_index 7 : tensor<2x3x5xf32>, tensor<2x3xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Any other loss is a mean per microbatch, averaged over microbatches; the
// op is left as it is.
// CHECK-LABEL: func.func @other
// CHECK-SAME: loom.loss_normalizer = "microbatches"
// CHECK: loom.reduce mean
func.func @other(%x: tensor<4xf32>) -> tensor<f32> {
  %m = loom.reduce mean %x dims [0] : tensor<4xf32> -> tensor<f32>
  return %m : tensor<f32>
}

// -----

// A summed cross-entropy is the user's choice: kept, and not renormalised
// over tokens.
// CHECK-LABEL: func.func @summed
// CHECK-SAME: loom.loss_normalizer = "microbatches"
// CHECK: reduction sum
func.func @summed(%x: tensor<3x5xf32>, %labels: tensor<3xi32>) -> tensor<f32> {
  %l = loom.cross_entropy %x, %labels reduction sum : tensor<3x5xf32>, tensor<3xi32> -> tensor<f32>
  return %l : tensor<f32>
}
