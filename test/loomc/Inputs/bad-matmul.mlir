// A matmul whose inner dimensions disagree.
func.func @f(%x: tensor<8x768xf32>, %w: tensor<512x2304xf32>) -> tensor<8x2304xf32> {
  %0 = loom.matmul %x, %w : tensor<8x768xf32>, tensor<512x2304xf32> -> tensor<8x2304xf32>
  return %0 : tensor<8x2304xf32>
}
