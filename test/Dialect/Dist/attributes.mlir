// The dist dialect's discardable attributes, each where it belongs, as
// --loom-shard writes them: they verify and round trip (custom form, and
// through the generic form).
// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | loom-opt | FileCheck %s

// CHECK: module attributes {dist.mesh = #dist.mesh<dp = 1, pp = 1, tp = 2>, dist.sequence_parallel}
module attributes {dist.mesh = #dist.mesh<dp = 1, pp = 1, tp = 2>, dist.sequence_parallel} {
  // CHECK-LABEL: func.func @f
  func.func @f(%x: tensor<4x8xf32>) -> tensor<4x16xf32> {
    // CHECK: loom.parameter "w" {{.*}} {dist.in_shardings = [], dist.out_shardings = [#dist.sharding<[{}, {"tp"}]>], dist.sharding = #dist.sharding<[{}, {"tp"}]>} : tensor<8x16xf32>
    %w = loom.parameter "w" init(#loom.zeros) {dist.sharding = #dist.sharding<[{}, {"tp"}]>, dist.in_shardings = [], dist.out_shardings = [#dist.sharding<[{}, {"tp"}]>]} : tensor<8x16xf32>
    // CHECK: loom.matmul {{.*}} {dist.in_shardings = [#dist.sharding<[{}, {}]>, #dist.sharding<[{}, {"tp"}]>], dist.out_shardings = [#dist.sharding<[{}, {"tp"}]>]}
    %y = loom.matmul %x, %w {dist.in_shardings = [#dist.sharding<[{}, {}]>, #dist.sharding<[{}, {"tp"}]>], dist.out_shardings = [#dist.sharding<[{}, {"tp"}]>]} : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
    // CHECK: return {dist.in_shardings = [#dist.sharding<[{}, {}]>], dist.out_shardings = []}
    return {dist.in_shardings = [#dist.sharding<[{}, {}]>], dist.out_shardings = []} %y : tensor<4x16xf32>
  }
}
