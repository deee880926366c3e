// A layer called three times: its cost counts three times.
func.func private @layer(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %w = loom.parameter "layer.weight" init(#loom.normal<std = 0.02>) : tensor<16x16xf32>
  %y = loom.matmul %x, %w : tensor<8x16xf32>, tensor<16x16xf32> -> tensor<8x16xf32>
  %z = loom.gelu %y : tensor<8x16xf32>
  return %z : tensor<8x16xf32>
}

func.func @model(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %0 = func.call @layer(%x) : (tensor<8x16xf32>) -> tensor<8x16xf32>
  %1 = func.call @layer(%0) : (tensor<8x16xf32>) -> tensor<8x16xf32>
  %2 = func.call @layer(%1) : (tensor<8x16xf32>) -> tensor<8x16xf32>
  return %2 : tensor<8x16xf32>
}
