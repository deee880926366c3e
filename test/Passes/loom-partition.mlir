// --loom-partition rewrites the sharded program to one rank's shapes with
// explicit collectives: an all-reduce where a partial sum is read whole, a
// fan_out where a whole value feeds split work, the vocabulary-parallel
// cross-entropy exchanging per-token [2, 8] values only.
// RUN: loom-opt %s --loom-shard="mesh=tp=2" --loom-partition | FileCheck %s
// RUN: loom-opt %s --loom-shard="mesh=tp=2 sequence-parallel=true" --loom-partition | FileCheck %s --check-prefix=SP
// RUN: not loom-opt %s --loom-partition 2>&1 | FileCheck %s --check-prefix=NOSHARD

// NOSHARD: error: --loom-partition needs a mesh: run --loom-shard first

// CHECK-LABEL: func.func @mlp
// CHECK: %[[WTE:.*]] = loom.parameter "wte" {{.*}}{dist.sharding = #dist.sharding<[{"tp"}, {}]>} : tensor<32x16xf32>
// CHECK: %[[EMB:.*]] = loom.embedding %[[WTE]][%{{.*}}] {dist.sharding = #dist.sharding<[{"tp"}, {}]>} : tensor<32x16xf32>, tensor<2x8xi32> -> tensor<2x8x16xf32>
// CHECK: %[[W1:.*]] = loom.parameter "fc1.weight" {{.*}} : tensor<16x16xf32>
// CHECK: %[[X:.*]] = dist.all_reduce sum %[[EMB]] axis "tp" : tensor<2x8x16xf32>
// CHECK: %[[XF:.*]] = dist.fan_out %[[X]] axis "tp" : tensor<2x8x16xf32>
// CHECK: loom.matmul %[[XF]], %[[W1]] : tensor<2x8x16xf32>, tensor<16x16xf32> -> tensor<2x8x16xf32>
// CHECK: %[[Y:.*]] = loom.matmul %{{.*}}, %{{.*}} : tensor<2x8x16xf32>, tensor<16x16xf32> -> tensor<2x8x16xf32>
// CHECK: %[[B:.*]] = loom.parameter "fc2.bias" init(#loom.zeros) : tensor<16xf32>
// CHECK: %[[YR:.*]] = dist.all_reduce sum %[[Y]] axis "tp" : tensor<2x8x16xf32>
// CHECK: loom.add %[[YR]], %[[B]]
// CHECK: %[[LOGITS:.*]] = loom.matmul %{{.*}}, %[[WTE]] transposed : tensor<2x8x16xf32>, tensor<32x16xf32> -> tensor<2x8x32xf32>
// CHECK: %[[LMAX:.*]] = loom.cross_entropy_max %[[LOGITS]] {dist.sharding = #dist.sharding<[{}, {}, {"tp"}]>} : tensor<2x8x32xf32> -> tensor<2x8xf32>
// CHECK: %[[GMAX:.*]] = dist.all_reduce max %[[LMAX]] axis "tp" : tensor<2x8xf32>
// CHECK: %[[M:.*]] = loom.stop_gradient %[[GMAX]]
// CHECK: %[[SE:.*]], %[[T:.*]] = loom.cross_entropy_partials %[[LOGITS]], %[[M]], %{{.*}} {dist.sharding = #dist.sharding<[{}, {}, {"tp"}]>}
// CHECK: %[[SEG:.*]] = dist.all_reduce sum %[[SE]] axis "tp" : tensor<2x8xf32>
// CHECK: %[[TG:.*]] = dist.all_reduce sum %[[T]] axis "tp" : tensor<2x8xf32>
// CHECK: %[[TOK:.*]] = loom.cross_entropy_combine %[[SEG]], %[[TG]]
// CHECK: %[[LOSS:.*]] = loom.reduce sum %[[TOK]] dims [0, 1] : tensor<2x8xf32> -> tensor<f32>
// CHECK: return %[[LOSS]]
// CHECK-NOT: dist.in_shardings

// Sequence parallelism: fc2's partial sum is reduce-scattered along the
// sequence, so the bias add runs on a block of the sequence (the whole bias
// gets a fan_out: its gradient is summed over tp), and the block is
// all-gathered before the column-parallel LM head. (The embedding's partial
// sum feeds the column-parallel fc1 directly, so it stays an all-reduce.)
// SP: %[[EMB:.*]] = loom.embedding
// SP: dist.all_reduce sum %[[EMB]] axis "tp" : tensor<2x8x16xf32>
// SP: dist.reduce_scatter %{{.*}} axis "tp" dim 1 : tensor<2x8x16xf32> -> tensor<2x4x16xf32>
// SP: %[[BF:.*]] = dist.fan_out %{{.*}} axis "tp" : tensor<16xf32>
// SP: loom.add %{{.*}}, %[[BF]] : tensor<2x4x16xf32>, tensor<16xf32> -> tensor<2x4x16xf32>
// SP: dist.all_gather %{{.*}} axis "tp" dim 1 : tensor<2x4x16xf32> -> tensor<2x8x16xf32>
// SP-NOT: dist.all_reduce sum {{.*}} : tensor<2x8x16xf32>
// SP: return
func.func @mlp(%tokens: tensor<2x8xi32>, %labels: tensor<2x8xi32>) -> tensor<f32> {
  %wte = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<64x16xf32>
  %x = loom.embedding %wte[%tokens] : tensor<64x16xf32>, tensor<2x8xi32> -> tensor<2x8x16xf32>
  %w1 = loom.parameter "fc1.weight" init(#loom.normal<std = 0.02>) : tensor<16x32xf32>
  %h = loom.matmul %x, %w1 : tensor<2x8x16xf32>, tensor<16x32xf32> -> tensor<2x8x32xf32>
  %a = loom.gelu %h : tensor<2x8x32xf32>
  %w2 = loom.parameter "fc2.weight" init(#loom.normal<std = 0.02>) : tensor<32x16xf32>
  %y = loom.matmul %a, %w2 : tensor<2x8x32xf32>, tensor<32x16xf32> -> tensor<2x8x16xf32>
  %b2 = loom.parameter "fc2.bias" init(#loom.zeros) : tensor<16xf32>
  %z = loom.add %y, %b2 : tensor<2x8x16xf32>, tensor<16xf32> -> tensor<2x8x16xf32>
  %logits = loom.matmul %z, %wte transposed : tensor<2x8x16xf32>, tensor<64x16xf32> -> tensor<2x8x64xf32>
  %loss = loom.cross_entropy %logits, %labels reduction sum : tensor<2x8x64xf32>, tensor<2x8xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// A padded vocabulary (62 of the 64 classes real): the max, the partials and
// their gradient leave the padded classes out, each rank its part of them.
// CHECK-LABEL: func.func @padded
// CHECK: %[[PMAX:.*]] = loom.cross_entropy_max %{{.*}} classes 62 {dist.sharding = #dist.sharding<[{}, {}, {"tp"}]>} : tensor<2x8x32xf32> -> tensor<2x8xf32>
// CHECK: dist.all_reduce max %[[PMAX]] axis "tp" : tensor<2x8xf32>
// CHECK: loom.cross_entropy_partials %{{.*}}, %{{.*}}, %{{.*}} classes 62 {dist.sharding = #dist.sharding<[{}, {}, {"tp"}]>}
func.func @padded(%tokens: tensor<2x8xi32>, %labels: tensor<2x8xi32>) -> tensor<f32> {
  %wte = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<64x16xf32>
  %x = loom.embedding %wte[%tokens] : tensor<64x16xf32>, tensor<2x8xi32> -> tensor<2x8x16xf32>
  %logits = loom.matmul %x, %wte transposed : tensor<2x8x16xf32>, tensor<64x16xf32> -> tensor<2x8x64xf32>
  %loss = loom.cross_entropy %logits, %labels reduction sum classes 62 : tensor<2x8x64xf32>, tensor<2x8xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
