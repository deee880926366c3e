// Four layers for test/Passes/loom-pipeline.mlir's option cases, with costs
// per element (a negation and a sum cost one FLOP each): 2 before the layers
// (as an embedding), 4 in layer 0, 1 in each of layers 1 to 3, and 5 after
// them (as a head and a loss). The cheapest cut into two chunks is 2 + 2
// layers (2 + 4 + 1 = 7 and 1 + 1 + 5 = 7); 1 + 3 costs 8 in its second
// chunk and 3 + 1 8 in its first. Leaving out the cost before the layers
// would pick 3 + 1, leaving out the cost after them 1 + 3.
func.func @f(%x: tensor<64xf32>) -> tensor<f32> {
  %p0 = loom.neg %x : tensor<64xf32>
  %p1 = loom.neg %p0 : tensor<64xf32>
  %a0 = loom.neg %p1 {loom.layer = 0 : i64} : tensor<64xf32>
  %a1 = loom.neg %a0 {loom.layer = 0 : i64} : tensor<64xf32>
  %a2 = loom.neg %a1 {loom.layer = 0 : i64} : tensor<64xf32>
  %a3 = loom.neg %a2 {loom.layer = 0 : i64} : tensor<64xf32>
  %b = loom.neg %a3 {loom.layer = 1 : i64} : tensor<64xf32>
  %c = loom.neg %b {loom.layer = 2 : i64} : tensor<64xf32>
  %d = loom.neg %c {loom.layer = 3 : i64} : tensor<64xf32>
  %t0 = loom.neg %d : tensor<64xf32>
  %t1 = loom.neg %t0 : tensor<64xf32>
  %t2 = loom.neg %t1 : tensor<64xf32>
  %t3 = loom.neg %t2 : tensor<64xf32>
  %l = loom.reduce sum %t3 dims [0] : tensor<64xf32> -> tensor<f32>
  return %l : tensor<f32>
}
