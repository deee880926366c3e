func.func @f(%x: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %0 = loom.matmull %x, %x : tensor<8x8xf32>, tensor<8x8xf32> -> tensor<8x8xf32>
  return %0 : tensor<8x8xf32>
}
