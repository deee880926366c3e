// One case per message of the loom dialect's attribute verifier
// (IR/LoomDiscardableAttrs.cpp): a discardable attribute of the wrong type,
// out of range or in the wrong place.
// RUN: loom-opt %s -split-input-file -verify-diagnostics

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{loom.layer must be an integer, got "0"}}
  %0 = loom.fill 0.0 {loom.layer = "0"} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{loom.layer must be an i64 integer, got 1 : i32}}
  %0 = loom.fill 0.0 {loom.layer = 1 : i32} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{loom.layer = -1 is out of range; layers are numbered 0, 1, ... in the order they run}}
  %0 = loom.fill 0.0 {loom.layer = -1 : i64} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// expected-error @+1 {{loom.micro_batch_size belongs on the module; it is on 'func.func'}}
func.func @f() attributes {loom.micro_batch_size = 2 : i64} {
  return
}

// -----

// expected-error @+1 {{loom.global_batch_size must be an integer, got 8.000000e+00 : f64}}
module attributes {loom.global_batch_size = 8.0} {
}

// -----

// expected-error @+1 {{loom.configs: config 'shape' must be an i64 integer, a float, a bool or a string, got [1, 2]}}
module attributes {loom.configs = {shape = [1, 2]}} {
}

// -----

// expected-error @+1 {{loom.configs is a dictionary of the model's configs, got 3 : i64}}
module attributes {loom.configs = 3 : i64} {
}

// -----

// expected-error @+1 {{loom.configs belongs on the module; it is on 'func.func'}}
func.func @g() attributes {loom.configs = {a = 1 : i64}} {
  return
}

// -----

// expected-error @+1 {{loom.pipeline_stages = 0 is out of range; a pipeline has at least one stage}}
module attributes {loom.pipeline_stages = 0 : i64} {
}

// -----

// expected-error @+1 {{loom.pipeline_chunks_per_stage = 0 is out of range; a stage runs at least one chunk}}
module attributes {loom.pipeline_chunks_per_stage = 0 : i64} {
}

// -----

// expected-error @+1 {{loom.layers belongs on a function; it is on 'builtin.module'}}
module attributes {loom.layers = 2 : i64} {
}

// -----

// expected-error @+1 {{loom.layers = -1 is out of range; it counts the model's layers}}
func.func @f() attributes {loom.layers = -1 : i64} {
  return
}

// -----

// expected-error @+1 {{loom.pipeline_chunk = -1 is out of range; chunks are numbered 0, 1, ... in pipeline order}}
func.func @f() attributes {loom.pipeline_chunk = -1 : i64} {
  return
}

// -----

// expected-error @+1 {{loom.forward_ops = -2 is out of range; it counts the function's forward ops}}
func.func @f() attributes {loom.forward_ops = -2 : i64} {
  return
}

// -----

// expected-error @+1 {{loom.labels_input = 1 names no argument of @f, which has 1}}
func.func @f(%labels: tensor<4xi32>) attributes {loom.labels_input = 1 : i64} {
  return
}

// -----

// expected-error @+1 {{loom.ignore_index must be an integer, got "none"}}
func.func @f() attributes {loom.ignore_index = "none"} {
  return
}

// -----

// expected-error @+1 {{loom.loss_normalizer must be "tokens" or "microbatches", got "mean"}}
func.func @f() attributes {loom.loss_normalizer = "mean"} {
  return
}

// -----

func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{loom.loss_seed marks the loom.fill that seeds the loss's gradient; it is on 'loom.neg'}}
  %0 = loom.neg %x {loom.loss_seed} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @f() -> tensor<f32> {
  // expected-error @+1 {{loom.loss_seed is a unit attribute (present or absent), got true}}
  %0 = loom.fill 1.0 {loom.loss_seed = true} : tensor<f32>
  return %0 : tensor<f32>
}

// -----

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{'loom.layr' is not an attribute of the loom dialect (docs/dialect.md lists them)}}
  %0 = loom.fill 0.0 {loom.layr = 0 : i64} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// expected-error @+1 {{loom.input is an attribute of a function's arguments, not of an op}}
func.func @f() attributes {loom.input = "tokens"} {
  return
}

// -----

// expected-error @+1 {{loom.input names the model input an argument holds, a non-empty string; got ""}}
func.func @f(%tokens: tensor<4xi32> {loom.input = ""}) {
  return
}

// -----

// expected-error @+1 {{loom.boundary_input is a unit attribute (present or absent), got 1 : i64}}
func.func @f(%x: tensor<4xf32> {loom.boundary_input = 1 : i64}) {
  return
}

// -----

// expected-error @+1 {{loom.grad is an attribute of a function's results, not of a function's arguments}}
func.func @f(%x: tensor<4xf32> {loom.grad = "w"}) {
  return
}

// -----

// expected-error @+1 {{loom.layer is not an attribute of a function's arguments (docs/dialect.md lists the loom dialect's attributes)}}
func.func @f(%x: tensor<4xf32> {loom.layer = 0 : i64}) {
  return
}

// -----

// expected-error @+1 {{loom.grad names the parameter a result is the gradient of, a dotted path; got "mlp fc1"}}
func.func @f(%x: tensor<4xf32>) -> (tensor<4xf32> {loom.grad = "mlp fc1"}) {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{loom.input_grad is a unit attribute (present or absent), got "yes"}}
func.func @f(%x: tensor<4xf32>) -> (tensor<4xf32> {loom.input_grad = "yes"}) {
  return %x : tensor<4xf32>
}

// -----

// expected-error @+1 {{loom.input is an attribute of a function's arguments, not of a function's results}}
func.func @f(%x: tensor<4xf32>) -> (tensor<4xf32> {loom.input = "tokens"}) {
  return %x : tensor<4xf32>
}
