// One parameter name declared with two shapes.
func.func @f() -> (tensor<50x8xf32>, tensor<100x8xf32>) {
  %0 = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<50x8xf32>
  %1 = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<100x8xf32>
  return %0, %1 : tensor<50x8xf32>, tensor<100x8xf32>
}
