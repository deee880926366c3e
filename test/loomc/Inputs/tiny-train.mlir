module attributes {loom.global_batch_size = 4 : i64, loom.micro_batch_size = 2 : i64} {
  func.func @tiny(%arg0: tensor<2x4xi32> {loom.input = "tokens"}, %arg1: tensor<2x4xi32> {loom.input = "labels"}) -> tensor<f32> attributes {loom.layers = 2 : i64} {
    %0 = loom.parameter "wte" init(#loom.normal<std = 2.000000e-02>) : tensor<16x8xf32>
    %1 = loom.embedding %0[%arg0] : tensor<16x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
    %2 = loom.parameter "layers.0.w" init(#loom.normal<std = 2.000000e-02>) {loom.layer = 0 : i64} : tensor<8x8xf32>
    %3 = loom.matmul %1, %2 {loom.layer = 0 : i64} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
    %4 = loom.add %1, %3 {loom.layer = 0 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
    %5 = loom.parameter "layers.1.w" init(#loom.normal<std = 2.000000e-02>) {loom.layer = 1 : i64} : tensor<8x8xf32>
    %6 = loom.matmul %4, %5 {loom.layer = 1 : i64} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
    %7 = loom.add %4, %6 {loom.layer = 1 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
    %8 = loom.matmul %7, %0 transposed : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
    %9 = loom.cross_entropy %8, %arg1 : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
    return %9 : tensor<f32>
  }
}

