// Logits that are a view of a parameter (a reshape of it): the cross-entropy
// kernel must not write the logits' gradient in place (it would overwrite the
// parameter). Used by test/loomc/cross-entropy-in-place.test.
module attributes {loom.global_batch_size = 2 : i64, loom.micro_batch_size = 2 : i64} {
  func.func @m(%tok: tensor<2x8xi32> {loom.input = "tokens"}, %lab: tensor<2x8xi32> {loom.input = "labels"}) -> tensor<f32> {
    %p = loom.parameter "p" init(#loom.normal<std = 1.000000e+00>) : tensor<16x256xf32>
    %r = loom.reshape %p : tensor<16x256xf32> -> tensor<2x8x256xf32>
    %ce = loom.cross_entropy %r, %lab reduction sum : tensor<2x8x256xf32>, tensor<2x8xi32> -> tensor<f32>
    return %ce : tensor<f32>
  }
}
