// RUN: loom-opt %s -canonicalize | FileCheck %s

// The backward of a fan_out after an all_gather (sequence parallelism) is an
// all_reduce then an all_slice: one reduce_scatter.
module attributes {dist.mesh = #dist.mesh<tp = 2>} {
  // CHECK-LABEL: func.func @slice_of_all_reduce
  // CHECK-SAME: (%[[X:.*]]: tensor<4x8xf32>)
  // CHECK-NEXT: %[[R:.*]] = dist.reduce_scatter %[[X]] axis "tp" dim 0 : tensor<4x8xf32> -> tensor<2x8xf32>
  // CHECK-NEXT: return %[[R]]
  func.func @slice_of_all_reduce(%x: tensor<4x8xf32>) -> tensor<2x8xf32> {
    %a = dist.all_reduce sum %x axis "tp" : tensor<4x8xf32>
    %s = dist.all_slice %a axis "tp" dim 0 : tensor<4x8xf32> -> tensor<2x8xf32>
    return %s : tensor<2x8xf32>
  }

  // An all_reduce used elsewhere too stays.
  // CHECK-LABEL: func.func @shared_all_reduce
  // CHECK: dist.all_reduce
  // CHECK: dist.all_slice
  func.func @shared_all_reduce(%x: tensor<4x8xf32>) -> (tensor<2x8xf32>, tensor<4x8xf32>) {
    %a = dist.all_reduce sum %x axis "tp" : tensor<4x8xf32>
    %s = dist.all_slice %a axis "tp" dim 0 : tensor<4x8xf32> -> tensor<2x8xf32>
    return %s, %a : tensor<2x8xf32>, tensor<4x8xf32>
  }
}
