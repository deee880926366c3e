// One case per message of the dist dialect's attribute verifier
// (IR/DistDiscardableAttrs.cpp): a discardable attribute of the wrong type,
// shape or place.
// RUN: loom-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{dist.mesh belongs on the module; it is on 'func.func'}}
func.func @f() attributes {dist.mesh = #dist.mesh<tp = 2>} {
  return
}

// -----

// expected-error @+1 {{dist.mesh must be a #dist.mesh, got "tp=2"}}
module attributes {dist.mesh = "tp=2"} {
}

// -----

func.func @f() -> tensor<4x8xf32> {
  // expected-error @+1 {{dist.sharding must be a #dist.sharding, got ["tp", ""]}}
  %0 = loom.parameter "w" init(#loom.zeros) {dist.sharding = ["tp", ""]} : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dist.in_shardings must be an array of #dist.sharding, one per operand; got #dist.sharding<[{}, {}]>}}
  %0 = loom.neg %x {dist.in_shardings = #dist.sharding<[{}, {}]>} : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dist.in_shardings has 1 entry for the 2 operands of 'loom.add'; it needs one per operand}}
  %0 = loom.add %x, %x {dist.in_shardings = [#dist.sharding<[{}, {}]>]} : tensor<4x8xf32>, tensor<4x8xf32> -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dist.out_shardings entry 0 is for result 0, a tensor: it must be a #dist.sharding, got unit}}
  %0 = loom.neg %x {dist.out_shardings = [unit]} : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{dist.out_shardings entry 0 #dist.sharding<[{"tp"}]> has 1 dimensions; result 0 'tensor<4x8xf32>' has 2}}
  %0 = loom.neg %x {dist.out_shardings = [#dist.sharding<[{"tp"}]>]} : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// expected-error @+1 {{dist.sequence_parallel is a unit attribute (present or absent), got true}}
module attributes {dist.sequence_parallel = true} {
}

// -----

// expected-error @+1 {{dist.sequence_parallel belongs on the module; it is on 'func.func'}}
func.func @f() attributes {dist.sequence_parallel} {
  return
}

// -----

func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'dist.shardings' is not an attribute of the dist dialect (docs/parallelism.md lists them)}}
  %0 = loom.neg %x {dist.shardings = [#dist.sharding<[{}, {}]>]} : tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
