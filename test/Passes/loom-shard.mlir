// --loom-shard decides each value's split by Megatron's rules and the ops'
// factor rules: the embedding table by vocabulary rows (its output a partial
// sum), fc1 by columns (its input whole), fc2 by rows (its input split along
// the contraction; its output partial), the row-parallel bias whole, the
// tied LM head by the table's rows, so the logits are split by class.
// RUN: loom-opt %s --loom-shard="mesh=tp=2" | FileCheck %s
// RUN: loom-opt %s --loom-shard="mesh=dp=2,tp=4" | FileCheck %s --check-prefix=MESH
// RUN: not loom-opt %s --loom-shard="mesh=tp=3" 2>&1 | FileCheck %s --check-prefix=ODD
// RUN: not loom-opt %s --loom-shard="mesh=sp=2" 2>&1 | FileCheck %s --check-prefix=BADMESH

// MESH: module attributes {dist.mesh = #dist.mesh<dp = 2, pp = 1, tp = 4>}
// ODD: error: the vocabulary-parallel embedding splits the 64 rows of 'wte' over tp=3, which does not divide them
// BADMESH: error: --loom-shard: unknown mesh axis 'sp' in 'sp=2'

// CHECK: module attributes {dist.mesh = #dist.mesh<dp = 1, pp = 1, tp = 2>}
// CHECK: loom.parameter "wte" {{.*}}dist.out_shardings = [#dist.sharding<[{"tp"}, {}]>]
// CHECK: loom.embedding {{.*}}dist.out_shardings = [#dist.sharding<[{}, {}, {}], partial = ["tp"]>]
// CHECK: loom.parameter "fc1.weight" {{.*}}dist.out_shardings = [#dist.sharding<[{}, {"tp"}]>]
// CHECK: loom.matmul {{.*}}dist.in_shardings = [#dist.sharding<[{}, {}, {}]>, #dist.sharding<[{}, {"tp"}]>], dist.out_shardings = [#dist.sharding<[{}, {}, {"tp"}]>]
// CHECK: loom.gelu {{.*}}dist.out_shardings = [#dist.sharding<[{}, {}, {"tp"}]>]
// CHECK: loom.parameter "fc2.weight" {{.*}}dist.out_shardings = [#dist.sharding<[{"tp"}, {}]>]
// CHECK: loom.matmul {{.*}}dist.out_shardings = [#dist.sharding<[{}, {}, {}], partial = ["tp"]>]
// CHECK: loom.parameter "fc2.bias" {{.*}}dist.out_shardings = [#dist.sharding<[{}]>]
// CHECK: loom.add {{.*}}dist.in_shardings = [#dist.sharding<[{}, {}, {}]>, #dist.sharding<[{}]>], dist.out_shardings = [#dist.sharding<[{}, {}, {}]>]
// CHECK: loom.matmul {{.*}}transposed {{.*}}dist.out_shardings = [#dist.sharding<[{}, {}, {"tp"}]>]
// CHECK: loom.cross_entropy {{.*}}dist.in_shardings = [#dist.sharding<[{}, {}, {"tp"}]>, #dist.sharding<[{}, {}]>], dist.out_shardings = [#dist.sharding<[]>]
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
