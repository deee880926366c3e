// Round trip of the dist dialect: custom form -> custom form, and
// custom -> generic -> custom.
// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | loom-opt | FileCheck %s

// CHECK: module attributes {dist.mesh = #dist.mesh<dp = 2, pp = 1, tp = 4>}
module attributes {dist.mesh = #dist.mesh<dp = 2, pp = 1, tp = 4>} {
  // CHECK-LABEL: func.func @collectives
  func.func @collectives(%x: tensor<4x8xf32>, %i: tensor<4x8xi32>) -> tensor<4x8xf32> {
    // CHECK: dist.all_reduce sum %{{.*}} axis "tp" : tensor<4x8xf32>
    %a = dist.all_reduce sum %x axis "tp" : tensor<4x8xf32>
    // CHECK: dist.all_reduce max %{{.*}} axis "dp" : tensor<4x8xi32>
    %m = dist.all_reduce max %i axis "dp" : tensor<4x8xi32>
    // CHECK: dist.all_slice %{{.*}} axis "tp" dim 1 : tensor<4x8xf32> -> tensor<4x2xf32>
    %s = dist.all_slice %a axis "tp" dim 1 : tensor<4x8xf32> -> tensor<4x2xf32>
    // CHECK: dist.all_gather %{{.*}} axis "tp" dim 1 : tensor<4x2xf32> -> tensor<4x8xf32>
    %g = dist.all_gather %s axis "tp" dim 1 : tensor<4x2xf32> -> tensor<4x8xf32>
    // CHECK: dist.reduce_scatter %{{.*}} axis "tp" dim 0 : tensor<4x8xf32> -> tensor<1x8xf32>
    %r = dist.reduce_scatter %g axis "tp" dim 0 : tensor<4x8xf32> -> tensor<1x8xf32>
    // CHECK: dist.fan_out %{{.*}} axis "tp" : tensor<4x8xf32>
    %f = dist.fan_out %g axis "tp" : tensor<4x8xf32>
    // CHECK: dist.all_to_all %{{.*}} axis "tp" split_dim 0 concat_dim 1 : tensor<4x8xf32> -> tensor<1x32xf32>
    %t = dist.all_to_all %f axis "tp" split_dim 0 concat_dim 1 : tensor<4x8xf32> -> tensor<1x32xf32>
    // CHECK: dist.broadcast %{{.*}} axis "dp" root 1 : tensor<1x32xf32>
    %b = dist.broadcast %t axis "dp" root 1 : tensor<1x32xf32>
    // CHECK: dist.send %{{.*}} axis "pp" peer 0 tag 7 : tensor<1x32xf32>
    dist.send %b axis "pp" peer 0 tag 7 : tensor<1x32xf32>
    // CHECK: dist.recv axis "pp" peer 0 tag 7 : tensor<4x8xf32>
    %v = dist.recv axis "pp" peer 0 tag 7 : tensor<4x8xf32>
    return %v : tensor<4x8xf32>
  }

  // CHECK-LABEL: func.func @shardings
  // CHECK: #dist.sharding<[{}, {"tp"}]>
  // CHECK: #dist.sharding<[{}, {}], partial = ["tp"]>
  func.func @shardings(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    %y = loom.relu %x {dist.sharding = #dist.sharding<[{}, {"tp"}]>} : tensor<4x8xf32>
    %z = loom.relu %y {dist.sharding = #dist.sharding<[{}, {}], partial = ["tp"]>} : tensor<4x8xf32>
    return %z : tensor<4x8xf32>
  }
}
