// One case per verifier message of the dist dialect.
// RUN: loom-opt %s -split-input-file -verify-diagnostics

// expected-error @+2 {{needs a mesh: the enclosing module has no 'dist.mesh' attribute}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = dist.all_reduce sum %x axis "tp" : tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

module attributes {dist.mesh = #dist.mesh<dp = 2, tp = 2>} {
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{names mesh axis 'pp', which the mesh #dist.mesh<dp = 2, tp = 2> lacks}}
  %y = dist.all_reduce sum %x axis "pp" : tensor<4xf32>
  return %y : tensor<4xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 2>} {
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{kind must be sum or max}}
  %y = dist.all_reduce mean %x axis "tp" : tensor<4xf32>
  return %y : tensor<4xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 4>} {
func.func @f(%x: tensor<4x2xf32>) -> tensor<4x6xf32> {
  // expected-error @+1 {{dimension 1 of the result must be 8 (axis 'tp' has 4 ranks), not 6}}
  %y = dist.all_gather %x axis "tp" dim 1 : tensor<4x2xf32> -> tensor<4x6xf32>
  return %y : tensor<4x6xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 4>} {
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dim 2 is out of range for rank 2}}
  %y = dist.all_gather %x axis "tp" dim 2 : tensor<4x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 4>} {
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xbf16> {
  // expected-error @+1 {{changes the element type}}
  %y = dist.all_slice %x axis "tp" dim 1 : tensor<4x8xf32> -> tensor<4x8xbf16>
  return %y : tensor<4x8xbf16>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 2>} {
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dimension 0 of the result must be 2 (axis 'tp' has 2 ranks), not 4}}
  %y = dist.reduce_scatter %x axis "tp" dim 0 : tensor<4x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 4>} {
func.func @f(%x: tensor<6x8xf32>) -> tensor<6x8xf32> {
  // expected-error @+1 {{dimension 0 of the input (6) does not divide over axis 'tp' of 4 ranks}}
  %y = dist.all_slice %x axis "tp" dim 0 : tensor<6x8xf32> -> tensor<1x8xf32>
  return %x : tensor<6x8xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 2>} {
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{changes the rank}}
  %y = dist.all_slice %x axis "tp" dim 0 : tensor<4x8xf32> -> tensor<32xf32>
  return %x : tensor<4x8xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 2>} {
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{split_dim and concat_dim must be distinct dimensions of the input}}
  %y = dist.all_to_all %x axis "tp" split_dim 1 concat_dim 1 : tensor<4x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 2>} {
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dimension 0 of the result must be 2 (axis 'tp' has 2 ranks)}}
  %y = dist.all_to_all %x axis "tp" split_dim 0 concat_dim 1 : tensor<4x8xf32> -> tensor<4x8xf32>
  return %y : tensor<4x8xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<dp = 2>} {
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{root 2 is not a rank of axis 'dp' (0..1)}}
  %y = dist.broadcast %x axis "dp" root 2 : tensor<4xf32>
  return %y : tensor<4xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<pp = 4>} {
func.func @f(%x: tensor<4xf32>) {
  // expected-error @+1 {{peer 4 is not a rank of axis 'pp' (0..3)}}
  dist.send %x axis "pp" peer 4 tag 0 : tensor<4xf32>
  return
}
}

// -----

module attributes {dist.mesh = #dist.mesh<pp = 4>} {
func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{peer -1 is not a rank of axis 'pp' (0..3)}}
  %x = dist.recv axis "pp" peer -1 tag 0 : tensor<4xf32>
  return %x : tensor<4xf32>
}
}

// -----

module attributes {dist.mesh = #dist.mesh<tp = 2>} {
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{names mesh axis 'dp'}}
  %y = dist.fan_out %x axis "dp" : tensor<4xf32>
  return %y : tensor<4xf32>
}
}

// -----

// expected-error @+1 {{mesh axis 'tp' has size 0; sizes are >= 1}}
module attributes {dist.mesh = #dist.mesh<tp = 0>} {}

// -----

// expected-error @+1 {{mesh axis 'tp' appears twice}}
module attributes {dist.mesh = #dist.mesh<tp = 2, tp = 2>} {}
