// RUN: loom-opt %s -canonicalize -split-input-file | FileCheck %s

// CHECK-LABEL: func.func @identities
// CHECK-SAME: (%[[X:.*]]: tensor<8x768xf32>)
func.func @identities(%x: tensor<8x768xf32>) -> (tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>) {
  %0 = loom.scale %x by 1.0 : tensor<8x768xf32>
  %1 = loom.dropout %x rate 0.0 site "d" : tensor<8x768xf32>
  %2 = loom.cast %x : tensor<8x768xf32> to tensor<8x768xf32>
  %3 = loom.reshape %x : tensor<8x768xf32> -> tensor<8x768xf32>
  %4 = loom.transpose %x [0, 1] : tensor<8x768xf32> -> tensor<8x768xf32>
  %n = loom.neg %x : tensor<8x768xf32>
  %5 = loom.neg %n : tensor<8x768xf32>
  // CHECK-NOT: loom.
  // CHECK: return %[[X]], %[[X]], %[[X]], %[[X]], %[[X]], %[[X]]
  return %0, %1, %2, %3, %4, %5 : tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xf32>
}

// -----

// Ops that change values stay.
// CHECK-LABEL: func.func @not_identities
func.func @not_identities(%x: tensor<8x768xf32>) -> (tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xbf16>) {
  // CHECK: loom.scale %{{.*}} by 5.000000e-01
  %0 = loom.scale %x by 0.5 : tensor<8x768xf32>
  // CHECK: loom.dropout %{{.*}} rate 1.000000e-01
  %1 = loom.dropout %x rate 0.1 site "d" : tensor<8x768xf32>
  // CHECK: loom.cast %{{.*}} : tensor<8x768xf32> to tensor<8x768xbf16>
  %2 = loom.cast %x : tensor<8x768xf32> to tensor<8x768xbf16>
  return %0, %1, %2 : tensor<8x768xf32>, tensor<8x768xf32>, tensor<8x768xbf16>
}

// -----

// CHECK-LABEL: func.func @reshape_chain
// CHECK-SAME: (%[[X:.*]]: tensor<64x768xf32>)
func.func @reshape_chain(%x: tensor<64x768xf32>) -> tensor<64x12x64xf32> {
  // CHECK-NEXT: %[[R:.*]] = loom.reshape %[[X]] : tensor<64x768xf32> -> tensor<64x12x64xf32>
  // CHECK-NEXT: return %[[R]]
  %0 = loom.reshape %x : tensor<64x768xf32> -> tensor<49152xf32>
  %1 = loom.reshape %0 : tensor<49152xf32> -> tensor<64x12x64xf32>
  return %1 : tensor<64x12x64xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_round_trip
// CHECK-SAME: (%[[X:.*]]: tensor<64x768xf32>)
func.func @reshape_round_trip(%x: tensor<64x768xf32>) -> tensor<64x768xf32> {
  // CHECK-NEXT: return %[[X]]
  %0 = loom.reshape %x : tensor<64x768xf32> -> tensor<64x12x64xf32>
  %1 = loom.reshape %0 : tensor<64x12x64xf32> -> tensor<64x768xf32>
  return %1 : tensor<64x768xf32>
}

// -----

// transpose(transpose(x, [1, 2, 0]), [1, 0, 2]): result dim i is x dim inner[outer[i]].
// CHECK-LABEL: func.func @transpose_chain
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x4xf32>)
func.func @transpose_chain(%x: tensor<2x3x4xf32>) -> tensor<4x3x2xf32> {
  // CHECK-NEXT: %[[T:.*]] = loom.transpose %[[X]] [2, 1, 0] : tensor<2x3x4xf32> -> tensor<4x3x2xf32>
  // CHECK-NEXT: return %[[T]]
  %0 = loom.transpose %x [1, 2, 0] : tensor<2x3x4xf32> -> tensor<3x4x2xf32>
  %1 = loom.transpose %0 [1, 0, 2] : tensor<3x4x2xf32> -> tensor<4x3x2xf32>
  return %1 : tensor<4x3x2xf32>
}

// -----

// CHECK-LABEL: func.func @transpose_inverse
// CHECK-SAME: (%[[X:.*]]: tensor<64x12x64xf32>)
func.func @transpose_inverse(%x: tensor<64x12x64xf32>) -> tensor<64x12x64xf32> {
  // CHECK-NEXT: return %[[X]]
  %0 = loom.transpose %x [1, 0, 2] : tensor<64x12x64xf32> -> tensor<12x64x64xf32>
  %1 = loom.transpose %0 [1, 0, 2] : tensor<12x64x64xf32> -> tensor<64x12x64xf32>
  return %1 : tensor<64x12x64xf32>
}
