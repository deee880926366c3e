// --dist-fuse-reduce-scatter: an all_slice of a sum all_reduce over the same
// axis, the all_reduce read by nothing else, is one reduce_scatter along the
// all_slice's dim; anything else is left as it is, and so is every other op
// (unlike --canonicalize).
// RUN: loom-opt %s --split-input-file --dist-fuse-reduce-scatter | FileCheck %s

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
}

// -----

// The all_slice's dim (the sequence, in sequence parallelism) and its
// loom.layer carry over.
module attributes {dist.mesh = #dist.mesh<tp = 2>} {
  // CHECK-LABEL: func.func @sequence_dim
  // CHECK-SAME: (%[[X:.*]]: tensor<2x8x16xbf16>)
  // CHECK-NEXT: %[[R:.*]] = dist.reduce_scatter %[[X]] axis "tp" dim 1 {loom.layer = 3 : i64} : tensor<2x8x16xbf16> -> tensor<2x4x16xbf16>
  // CHECK-NEXT: return %[[R]]
  func.func @sequence_dim(%x: tensor<2x8x16xbf16>) -> tensor<2x4x16xbf16> {
    %a = dist.all_reduce sum %x axis "tp" {loom.layer = 3 : i64} : tensor<2x8x16xbf16>
    %s = dist.all_slice %a axis "tp" dim 1 {loom.layer = 3 : i64} : tensor<2x8x16xbf16> -> tensor<2x4x16xbf16>
    return %s : tensor<2x4x16xbf16>
  }
}

// -----

// An all_reduce read elsewhere too is needed whole: both stay.
module attributes {dist.mesh = #dist.mesh<tp = 2>} {
  // CHECK-LABEL: func.func @shared_all_reduce
  // CHECK-NEXT: %[[A:.*]] = dist.all_reduce sum
  // CHECK-NEXT: %[[S:.*]] = dist.all_slice %[[A]] axis "tp" dim 0
  // CHECK-NEXT: return %[[S]], %[[A]]
  func.func @shared_all_reduce(%x: tensor<4x8xf32>) -> (tensor<2x8xf32>, tensor<4x8xf32>) {
    %a = dist.all_reduce sum %x axis "tp" : tensor<4x8xf32>
    %s = dist.all_slice %a axis "tp" dim 0 : tensor<4x8xf32> -> tensor<2x8xf32>
    return %s, %a : tensor<2x8xf32>, tensor<4x8xf32>
  }
}

// -----

// Over different axes the slice keeps a block of a sum over another group:
// no reduce_scatter does that. Neither does one of a max.
module attributes {dist.mesh = #dist.mesh<dp = 2, pp = 1, tp = 2>} {
  // CHECK-LABEL: func.func @other_axis
  // CHECK-NEXT: %[[A:.*]] = dist.all_reduce sum %{{.*}} axis "dp"
  // CHECK-NEXT: %[[S:.*]] = dist.all_slice %[[A]] axis "tp" dim 0
  // CHECK-NEXT: return %[[S]]
  func.func @other_axis(%x: tensor<4x8xf32>) -> tensor<2x8xf32> {
    %a = dist.all_reduce sum %x axis "dp" : tensor<4x8xf32>
    %s = dist.all_slice %a axis "tp" dim 0 : tensor<4x8xf32> -> tensor<2x8xf32>
    return %s : tensor<2x8xf32>
  }

  // CHECK-LABEL: func.func @max
  // CHECK-NEXT: %[[A:.*]] = dist.all_reduce max %{{.*}} axis "tp"
  // CHECK-NEXT: %[[S:.*]] = dist.all_slice %[[A]] axis "tp" dim 1
  // CHECK-NEXT: return %[[S]]
  func.func @max(%x: tensor<4x8xf32>) -> tensor<4x4xf32> {
    %a = dist.all_reduce max %x axis "tp" : tensor<4x8xf32>
    %s = dist.all_slice %a axis "tp" dim 1 : tensor<4x8xf32> -> tensor<4x4xf32>
    return %s : tensor<4x4xf32>
  }
}

// -----

// An all_slice of anything but an all_reduce stays; the pass rewrites the
// all_slices only, so a scale by 1 and an unused op, which --canonicalize
// would fold and erase, stay too.
module attributes {dist.mesh = #dist.mesh<tp = 2>} {
  // CHECK-LABEL: func.func @only_slices
  // CHECK-SAME: (%[[X:.*]]: tensor<4x8xf32>)
  // CHECK-NEXT: %[[S:.*]] = dist.all_slice %[[X]] axis "tp" dim 0
  // CHECK-NEXT: %[[ONE:.*]] = loom.scale %[[S]] by 1.000000e+00
  // CHECK-NEXT: dist.all_reduce sum %[[X]] axis "tp"
  // CHECK-NEXT: %[[R:.*]] = dist.reduce_scatter %[[ONE]] axis "tp" dim 1 : tensor<2x8xf32> -> tensor<2x4xf32>
  // CHECK-NEXT: return %[[R]]
  func.func @only_slices(%x: tensor<4x8xf32>) -> tensor<2x4xf32> {
    %s = dist.all_slice %x axis "tp" dim 0 : tensor<4x8xf32> -> tensor<2x8xf32>
    %one = loom.scale %s by 1.0 : tensor<2x8xf32>
    %unused = dist.all_reduce sum %x axis "tp" : tensor<4x8xf32>
    %b = dist.all_reduce sum %one axis "tp" : tensor<2x8xf32>
    %t = dist.all_slice %b axis "tp" dim 1 : tensor<2x8xf32> -> tensor<2x4xf32>
    return %t : tensor<2x4xf32>
  }
}
