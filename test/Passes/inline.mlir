// Blocks of the model language are functions; --inline must be able to
// inline loom ops into their callers.
// RUN: loom-opt %s --inline | FileCheck %s

func.func private @mlp(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %w = loom.parameter "mlp.fc.weight" init(#loom.normal<std = 0.02>) : tensor<16x16xf32>
  %y = loom.matmul %x, %w : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
  %z = loom.gelu %y : tensor<8x16xf32>
  return %z : tensor<8x16xf32>
}

// CHECK-LABEL: func.func @model
// CHECK-NOT: call
// CHECK: loom.parameter "mlp.fc.weight"
// CHECK: loom.matmul
// CHECK: loom.gelu
// CHECK: return
func.func @model(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %0 = func.call @mlp(%x) : (tensor<8x16xf32>) -> tensor<8x16xf32>
  return %0 : tensor<8x16xf32>
}
