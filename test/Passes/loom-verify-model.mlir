// RUN: loom-opt %s --loom-verify-model -split-input-file -verify-diagnostics

// A parameter declared twice with the same type and init is one tied parameter.
func.func @tied(%ids: tensor<2x4xi32>) -> (tensor<2x4x8xf32>, tensor<100x8xf32>) {
  %wte = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<100x8xf32>
  %x = loom.embedding %wte[%ids] : tensor<100x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
  %head = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<100x8xf32>
  return %x, %head : tensor<2x4x8xf32>, tensor<100x8xf32>
}

// -----

func.func @conflicting_type() -> (tensor<100x8xf32>, tensor<50x8xf32>) {
  // expected-note @+1 {{first declared here with type 'tensor<100x8xf32>' and init #loom.normal<std = 2.000000e-02>}}
  %0 = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<100x8xf32>
  // expected-error @+1 {{parameter 'wte' is declared again with type 'tensor<50x8xf32>' and init #loom.normal<std = 2.000000e-02>; a shared parameter must repeat its first declaration exactly}}
  %1 = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<50x8xf32>
  return %0, %1 : tensor<100x8xf32>, tensor<50x8xf32>
}

// -----

// The same name in two functions is still one parameter.
func.func @a() -> tensor<8xf32> {
  // expected-note @+1 {{first declared here}}
  %0 = loom.parameter "ln.weight" init(#loom.ones) : tensor<8xf32>
  return %0 : tensor<8xf32>
}
func.func @b() -> tensor<8xf32> {
  // expected-error @+1 {{parameter 'ln.weight' is declared again with type 'tensor<8xf32>' and init #loom.zeros}}
  %0 = loom.parameter "ln.weight" init(#loom.zeros) : tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

func.func @dropout_sites(%x: tensor<8xf32>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %0 = loom.dropout %x rate 0.1 site "layers.0.attention.dropout" : tensor<8xf32>
  // expected-note @+1 {{first used here}}
  %1 = loom.dropout %x rate 0.1 site "layers.0.mlp.dropout" : tensor<8xf32>
  // expected-error @+1 {{dropout site 'layers.0.mlp.dropout' is used twice; the mask is keyed by the site, so both would draw the same mask: give each dropout its own site}}
  %2 = loom.dropout %x rate 0.1 site "layers.0.mlp.dropout" : tensor<8xf32>
  return %0, %1, %2 : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
}
