// One case per verifier message of the loom dialect.
// RUN: loom-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{std must be a positive finite number, got 0}}
func.func @f() -> tensor<4xf32> { %0 = loom.parameter "w" init(#loom.normal<std = 0.0>) : tensor<4xf32> return %0 : tensor<4xf32> }

// -----

// expected-error @+1 {{layers must be at least 1}}
func.func @f() -> tensor<4xf32> { %0 = loom.parameter "w" init(#loom.scaled_normal<std = 0.02, layers = 0>) : tensor<4xf32> return %0 : tensor<4xf32> }

// -----

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{name 'layers..qkv' is not a dotted path of identifiers and indices; write it like 'layers.3.attention.qkv.weight'}}
  %0 = loom.parameter "layers..qkv" init(#loom.zeros) : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @f() -> tensor<0x4xf32> {
  // expected-error @+1 {{parameter 'w' of type 'tensor<0x4xf32>' has no elements; every dimension must be at least 1}}
  %0 = loom.parameter "w" init(#loom.zeros) : tensor<0x4xf32>
  return %0 : tensor<0x4xf32>
}

// -----

func.func @f() -> tensor<4xi32> {
  // expected-error @+1 {{result #0 must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values}}
  %0 = loom.parameter "w" init(#loom.zeros) : tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

func.func @f(%x: tensor<?x4xf32>, %w: tensor<4x4xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped tensor}}
  %0 = loom.matmul %x, %w : tensor<?x4xf32>, tensor<4x4xf32> -> tensor<?x4xf32>
  return
}

// -----

func.func @f() {
  // expected-error @+1 {{Invalid attribute `init` in property conversion}}
  %0 = "loom.parameter"() <{name = "w", init = 5.0 : f32}> : () -> tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<4xf32>, %w: tensor<4x4xf32>) {
  // expected-error @+1 {{operands must have rank 2 or more ([..., m, k] and [..., k, n]), got 'tensor<4xf32>' and 'tensor<4x4xf32>'}}
  %0 = loom.matmul %x, %w : tensor<4xf32>, tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<4x4xf32>, %w: tensor<4x4xbf16>) {
  // expected-error @+1 {{operands have different element types ('f32' and 'bf16'); insert a loom.cast to match them}}
  %0 = loom.matmul %x, %w : tensor<4x4xf32>, tensor<4x4xbf16> -> tensor<4x4xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %w: tensor<512x2304xf32>) {
  // expected-error @+1 {{contraction dimensions differ: lhs 'tensor<8x768xf32>' has k = 768 but rhs 'tensor<512x2304xf32>' has k = 512}}
  %0 = loom.matmul %x, %w : tensor<8x768xf32>, tensor<512x2304xf32> -> tensor<8x2304xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %w: tensor<2304x768xf32>) {
  // A weight stored [out, in] needs `transposed`.
  // expected-error @+1 {{contraction dimensions differ: lhs 'tensor<8x768xf32>' has k = 768 but rhs 'tensor<2304x768xf32>' has k = 2304}}
  %0 = loom.matmul %x, %w : tensor<8x768xf32>, tensor<2304x768xf32> -> tensor<8x2304xf32>
  return
}

// -----

func.func @f(%q: tensor<12x64x64xf32>, %k: tensor<8x64x64xf32>) {
  // expected-error @+1 {{batch dimensions differ: lhs [12], rhs [8]; they must be equal, or one operand must have rank 2 and be broadcast}}
  %0 = loom.matmul %q, %k : tensor<12x64x64xf32>, tensor<8x64x64xf32> -> tensor<12x64x64xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %w: tensor<768x2304xf32>) {
  // expected-error @+1 {{result type 'tensor<8x768xf32>' does not match 'tensor<8x2304xf32>', the type its operands give}}
  %0 = loom.matmul %x, %w : tensor<8x768xf32>, tensor<768x2304xf32> -> tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %b: tensor<768xf16>) {
  // expected-error @+1 {{operands have different element types ('f32' and 'f16'); insert a loom.cast to match them}}
  %0 = loom.add %x, %b : tensor<8x768xf32>, tensor<768xf16> -> tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %b: tensor<8xf32>) {
  // expected-error @+1 {{operands 'tensor<8x768xf32>' and 'tensor<8xf32>' do not broadcast: lhs dimension 1 is 768 and rhs dimension 0 is 8; aligned from the right, each pair must be equal or 1}}
  %0 = loom.mul %x, %b : tensor<8x768xf32>, tensor<8xf32> -> tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %b: tensor<768xf32>) {
  // expected-error @+1 {{result type 'tensor<768xf32>' does not match 'tensor<8x768xf32>', the type its operands give}}
  %0 = loom.sub %x, %b : tensor<8x768xf32>, tensor<768xf32> -> tensor<768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %0 = "loom.gelu"(%x) : (tensor<8x768xf32>) -> tensor<8x768xbf16>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{factor must be finite, got INF}}
  %0 = loom.scale %x by 0x7FF0000000000000 : tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{changes the shape from 'tensor<8x768xf32>' to 'tensor<768x8xbf16>'; a cast changes only the element type (use loom.reshape for the shape)}}
  %0 = loom.cast %x : tensor<8x768xf32> to tensor<768x8xbf16>
  return
}

// -----

func.func @f(%x: tensor<8x64xf32>) {
  // expected-error @+1 {{scale must be a positive finite number, got -1}}
  %0 = loom.softmax %x scale -1.0 : tensor<8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<f32>) {
  // expected-error @+1 {{needs an input of rank 1 or more (softmax runs over the last dimension), got 'tensor<f32>'}}
  %0 = loom.softmax %x : tensor<f32>
  return
}

// -----

func.func @f(%x: tensor<64xf32>) {
  // expected-error @+1 {{causal softmax needs a [..., query, key] input of rank 2 or more, got 'tensor<64xf32>'}}
  %0 = loom.softmax %x causal : tensor<64xf32>
  return
}

// -----

func.func @f(%x: tensor<8x64xf32>, %m: tensor<2x8x64xi1>) {
  // expected-error @+1 {{mask 'tensor<2x8x64xi1>' has rank 3 but the input 'tensor<8x64xf32>' only 2}}
  %0 = loom.softmax %x mask(%m : tensor<2x8x64xi1>) : tensor<8x64xf32>
  return
}

// -----

func.func @f(%x: tensor<4x12x64x64xf32>, %m: tensor<2x1x1x64xi1>) {
  // expected-error @+1 {{mask 'tensor<2x1x1x64xi1>' does not broadcast to the input 'tensor<4x12x64x64xf32>': mask dimension 0 is 2 but input dimension 0 is 4; each must be 1 or equal}}
  %0 = loom.softmax %x mask(%m : tensor<2x1x1x64xi1>) : tensor<4x12x64x64xf32>
  return
}

// -----

func.func @f(%x: tensor<f32>, %g: tensor<1xf32>, %b: tensor<1xf32>) {
  // expected-error @+1 {{needs an input of rank 1 or more (it normalises over the last dimension), got 'tensor<f32>'}}
  %0 = loom.layernorm %x, %g, %b : tensor<f32>, tensor<1xf32>, tensor<1xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %g: tensor<768xf32>, %b: tensor<768xf32>) {
  // expected-error @+1 {{epsilon must be a positive finite number, got 0}}
  %0 = loom.layernorm %x, %g, %b eps 0.0 : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %g: tensor<8xf32>, %b: tensor<768xf32>) {
  // expected-error @+1 {{weight has type 'tensor<8xf32>'; expected 'tensor<768xf32>', the input's last dimension and element type}}
  %0 = loom.layernorm %x, %g, %b : tensor<8x768xf32>, tensor<8xf32>, tensor<768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xbf16>, %g: tensor<768xbf16>, %b: tensor<768xf32>) {
  // expected-error @+1 {{bias has type 'tensor<768xf32>'; expected 'tensor<768xbf16>', the input's last dimension and element type}}
  %0 = loom.layernorm %x, %g, %b : tensor<8x768xbf16>, tensor<768xbf16>, tensor<768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %g: tensor<1x768xf32>) {
  // expected-error @+1 {{weight has type 'tensor<1x768xf32>'; expected 'tensor<768xf32>'}}
  %0 = loom.rmsnorm %x, %g : tensor<8x768xf32>, tensor<1x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{rate must be in [0, 1), got 1}}
  %0 = loom.dropout %x rate 1.0 site "layers.0.dropout" : tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{site 'attention dropout' is not a dotted path of identifiers and indices; write it like 'layers.3.attention.dropout'}}
  %0 = loom.dropout %x rate 0.1 site "attention dropout" : tensor<8x768xf32>
  return
}

// -----

func.func @f(%t: tensor<50257xf32>, %i: tensor<4x64xi32>) {
  // expected-error @+1 {{table must be [vocab, hidden], got 'tensor<50257xf32>'}}
  %0 = loom.embedding %t[%i] : tensor<50257xf32>, tensor<4x64xi32> -> tensor<4x64xf32>
  return
}

// -----

func.func @f(%t: tensor<50257x768xf32>, %i: tensor<4x64xi32>) {
  // expected-error @+1 {{result type 'tensor<4x64x50257xf32>' does not match 'tensor<4x64x768xf32>', the type its operands give}}
  %0 = loom.embedding %t[%i] : tensor<50257x768xf32>, tensor<4x64xi32> -> tensor<4x64x50257xf32>
  return
}

// -----

func.func @f(%t: tensor<50257x768xf32>, %i: tensor<4x64xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = loom.embedding %t[%i] : tensor<50257x768xf32>, tensor<4x64xf32> -> tensor<4x64x768xf32>
  return
}

// -----

func.func @f(%x: tensor<64x768xf32>) {
  // expected-error @+1 {{changes the element type from 'f32' to 'f16'; use loom.cast to convert elements}}
  %0 = loom.reshape %x : tensor<64x768xf32> -> tensor<64x12x64xf16>
  return
}

// -----

func.func @f(%x: tensor<64x768xf32>) {
  // expected-error @+1 {{from 'tensor<64x768xf32>' (49152 elements) to 'tensor<64x12x32xf32>' (24576 elements) changes the element count}}
  %0 = loom.reshape %x : tensor<64x768xf32> -> tensor<64x12x32xf32>
  return
}

// -----

func.func @f(%x: tensor<64x12x64xf32>) {
  // expected-error @+1 {{permutation [1, 0] has 2 entries but the input 'tensor<64x12x64xf32>' has rank 3}}
  %0 = loom.transpose %x [1, 0] : tensor<64x12x64xf32> -> tensor<12x64x64xf32>
  return
}

// -----

func.func @f(%x: tensor<64x12x64xf32>) {
  // expected-error @+1 {{permutation [1, 1, 0] is not a permutation of 0..2; list each dimension exactly once}}
  %0 = loom.transpose %x [1, 1, 0] : tensor<64x12x64xf32> -> tensor<12x12x64xf32>
  return
}

// -----

func.func @f(%x: tensor<64x12x64xf32>) {
  // expected-error @+1 {{result type 'tensor<64x12x64xf32>' does not match 'tensor<12x64x64xf32>', the type its operands give}}
  %0 = loom.transpose %x [1, 0, 2] : tensor<64x12x64xf32> -> tensor<64x12x64xf32>
  return
}

// -----

func.func @f(%x: tensor<64x2304xf32>) {
  // expected-error @+1 {{axis 2 is out of range for rank 2; it must be in [0, 2)}}
  %0:2 = loom.split %x axis 2 : tensor<64x2304xf32> -> tensor<64x1152xf32>, tensor<64x1152xf32>
  return
}

// -----

func.func @f(%x: tensor<64x2304xf32>) {
  // expected-error @+1 {{needs at least one result}}
  "loom.split"(%x) <{axis = 1 : i64}> : (tensor<64x2304xf32>) -> ()
  return
}

// -----

func.func @f(%x: tensor<64x2304xf32>) {
  // expected-error @+1 {{result #1 has type 'tensor<32x1152xf32>'; only dimension 1 may differ from the input 'tensor<64x2304xf32>'}}
  %0:2 = loom.split %x axis 1 : tensor<64x2304xf32> -> tensor<64x1152xf32>, tensor<32x1152xf32>
  return
}

// -----

func.func @f(%x: tensor<64x2304xf32>) {
  // expected-error @+1 {{the pieces' sizes along axis 1 add up to 2000 but the input has 2304}}
  %0:2 = loom.split %x axis 1 : tensor<64x2304xf32> -> tensor<64x1000xf32>, tensor<64x1000xf32>
  return
}

// -----

func.func @f() {
  // expected-error @+1 {{needs at least one input}}
  %0 = "loom.concat"() <{axis = 0 : i64}> : () -> tensor<4xf32>
  return
}

// -----

func.func @f(%a: tensor<2x8xf32>) {
  // expected-error @+1 {{axis -1 is out of range for rank 2; it must be in [0, 2)}}
  %0 = loom.concat %a, %a axis -1 : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @f(%a: tensor<2x8xf32>, %b: tensor<3x4xf32>) {
  // expected-error @+1 {{input #1 has type 'tensor<3x4xf32>'; every input must match input #0 ('tensor<2x8xf32>') except along axis 0}}
  %0 = loom.concat %a, %b axis 0 : tensor<2x8xf32>, tensor<3x4xf32> -> tensor<5x8xf32>
  return
}

// -----

func.func @f(%a: tensor<2x8xf32>, %b: tensor<3x8xf32>) {
  // expected-error @+1 {{result type 'tensor<5x16xf32>' does not match 'tensor<5x8xf32>', the type its operands give}}
  %0 = loom.concat %a, %b axis 0 : tensor<2x8xf32>, tensor<3x8xf32> -> tensor<5x16xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{dims is empty; list at least one dimension}}
  %0 = loom.reduce sum %x dims [] : tensor<8x768xf32> -> tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{dimension 2 is out of range for the input 'tensor<8x768xf32>'; each must be in [0, 2)}}
  %0 = loom.reduce sum %x dims [2] : tensor<8x768xf32> -> tensor<8x768xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{dims [1, 0] must be strictly increasing}}
  %0 = loom.reduce max %x dims [1, 0] : tensor<8x768xf32> -> tensor<f32>
  return
}

// -----

func.func @f(%x: tensor<8x768xi32>) {
  // expected-error @+1 {{mean of an integer tensor ('tensor<8x768xi32>') is not defined; loom.cast it to a float type}}
  %0 = loom.reduce mean %x dims [1] : tensor<8x768xi32> -> tensor<8xi32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>) {
  // expected-error @+1 {{result type 'tensor<8xf32>' does not match 'tensor<8x1xf32>', the type its operands give}}
  %0 = loom.reduce mean %x dims [1] keep_dims : tensor<8x768xf32> -> tensor<8xf32>
  return
}

// -----

func.func @f(%l: tensor<f32>, %t: tensor<i32>) {
  // expected-error @+1 {{logits must be [..., vocab], got 'tensor<f32>'}}
  %0 = loom.cross_entropy %l, %t : tensor<f32>, tensor<i32> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<4x64x512xf32>, %t: tensor<4x512xi32>) {
  // expected-error @+1 {{labels have type 'tensor<4x512xi32>'; expected the logits' shape without its last (vocabulary) dimension, [4, 64]}}
  %0 = loom.cross_entropy %l, %t : tensor<4x64x512xf32>, tensor<4x512xi32> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<4x64x512xf32>, %t: tensor<4x64xi32>) {
  // expected-error @+1 {{with reduction mean the result has shape [], got 'tensor<4x64xf32>'}}
  %0 = loom.cross_entropy %l, %t : tensor<4x64x512xf32>, tensor<4x64xi32> -> tensor<4x64xf32>
  return
}

// -----

func.func @f(%l: tensor<4x64x512xf32>, %t: tensor<4x64xi32>) {
  // expected-error @+1 {{with reduction none the result has shape [4, 64], got 'tensor<f32>'}}
  %0 = loom.cross_entropy %l, %t reduction none : tensor<4x64x512xf32>, tensor<4x64xi32> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<4x64x512xf32>, %t: tensor<4x64xi32>) {
  // expected-error @+1 {{'loom.cross_entropy' op classes 513 must be between 0 (all of the logits' last dimension) and that dimension, 512}}
  %0 = loom.cross_entropy %l, %t classes 513 : tensor<4x64x512xf32>, tensor<4x64xi32> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<4x64x512xf32>, %t: tensor<4x64xi32>, %d: tensor<f32>) {
  // expected-error @+1 {{'loom.cross_entropy_grad' op classes -1 must be between 0 (all of the logits' last dimension) and that dimension, 512}}
  %0 = loom.cross_entropy_grad %l, %t, %d classes -1 : tensor<4x64x512xf32>, tensor<4x64xi32>, tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<4x256xf32>) {
  // expected-error @+1 {{'loom.cross_entropy_max' op classes -3 must be between 0 (all of the logits' last dimension) and the vocabulary's size}}
  %0 = loom.cross_entropy_max %l classes -3 : tensor<4x256xf32> -> tensor<4xf32>
  return
}

// -----

func.func @f(%l: tensor<4x256xf32>) {
  // expected-error @+1 {{result has type 'tensor<4xbf16>'; expected 'tensor<4xf32>', the logits' without the class dimension}}
  %0 = loom.cross_entropy_max %l : tensor<4x256xf32> -> tensor<4xbf16>
  return
}

// -----

func.func @f(%l: tensor<4x256xf32>, %m: tensor<4xf32>, %t: tensor<4xi32>) {
  // expected-error @+1 {{'loom.cross_entropy_partials' op classes -1 must be between 0}}
  %0:2 = loom.cross_entropy_partials %l, %m, %t classes -1 : tensor<4x256xf32>, tensor<4xf32>, tensor<4xi32> -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @f(%l: tensor<4x256xf32>, %m: tensor<4xf32>, %t: tensor<4xi32>) {
  // expected-error @+1 {{'loom.cross_entropy_partials_grad' op classes -2 must be between 0}}
  %0 = loom.cross_entropy_partials_grad %l, %m, %t, %m, %m classes -2 : tensor<4x256xf32>, tensor<4xf32>, tensor<4xi32>, tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<8x4xf32>) {
  // expected-error @+1 {{causal softmax on 'tensor<8x4xf32>' has 8 queries but only 4 keys, so the first 4 queries would see no key; it needs at least as many keys as queries}}
  %0 = loom.softmax %x causal : tensor<8x4xf32>
  return
}

// -----

func.func @f(%x: tensor<8x0xf32>) {
  // expected-error @+1 {{the last dimension of 'tensor<8x0xf32>' is empty; softmax over no elements is undefined}}
  %0 = loom.softmax %x : tensor<8x0xf32>
  return
}

// -----

func.func @f(%t: tensor<0x768xf32>, %i: tensor<4x64xi32>) {
  // expected-error @+1 {{table 'tensor<0x768xf32>' has no rows, so every index is out of range}}
  %0 = loom.embedding %t[%i] : tensor<0x768xf32>, tensor<4x64xi32> -> tensor<4x64x768xf32>
  return
}

// -----

func.func @f(%l: tensor<4x0xf32>, %t: tensor<4xi32>) {
  // expected-error @+1 {{logits 'tensor<4x0xf32>' have an empty vocabulary dimension}}
  %0 = loom.cross_entropy %l, %t : tensor<4x0xf32>, tensor<4xi32> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<4x64x512xbf16>, %t: tensor<4x64xi32>) {
  // expected-error @+1 {{result element type 'f16' must be the logits' ('bf16') or f32}}
  %0 = loom.cross_entropy %l, %t : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<f16>
  return
}

// -----

func.func @f(%x: tensor<8x1xf32>) {
  // expected-error @+1 {{changes the element type from 'f32' to 'bf16'; use loom.cast to convert elements}}
  %0 = loom.broadcast %x : tensor<8x1xf32> -> tensor<8x4xbf16>
  return
}

// -----

func.func @f(%x: tensor<2x8x4xf32>) {
  // expected-error @+1 {{cannot broadcast 'tensor<2x8x4xf32>' to the lower rank 'tensor<8x4xf32>'}}
  %0 = loom.broadcast %x : tensor<2x8x4xf32> -> tensor<8x4xf32>
  return
}

// -----

func.func @f(%x: tensor<8x3xf32>) {
  // expected-error @+1 {{cannot broadcast 'tensor<8x3xf32>' to 'tensor<8x4xf32>': dimension 1 is 3 but the result's is 4; each must be 1 or equal}}
  %0 = loom.broadcast %x : tensor<8x3xf32> -> tensor<8x4xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x4x768xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{result must be the table [vocab, hidden], got 'tensor<50257xf32>'}}
  %0 = loom.embedding_grad %dy[%ids] : tensor<2x4x768xf32>, tensor<2x4xi32> -> tensor<50257xf32>
  return
}

// -----

func.func @f(%dy: tensor<2x4x512xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{grad has type 'tensor<2x4x512xf32>'; expected 'tensor<2x4x768xf32>', the indices' shape and the table's hidden size}}
  %0 = loom.embedding_grad %dy[%ids] : tensor<2x4x512xf32>, tensor<2x4xi32> -> tensor<50257x768xf32>
  return
}

// -----

func.func @f(%l: tensor<f32>, %t: tensor<i32>, %g: tensor<f32>) {
  // expected-error @+1 {{logits must be [..., vocab], got 'tensor<f32>'}}
  %0 = loom.cross_entropy_grad %l, %t, %g : tensor<f32>, tensor<i32>, tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<2x4x512xf32>, %t: tensor<2x512xi32>, %g: tensor<f32>) {
  // expected-error @+1 {{labels have type 'tensor<2x512xi32>'; expected the logits' shape without its last (vocabulary) dimension, [2, 4]}}
  %0 = loom.cross_entropy_grad %l, %t, %g : tensor<2x4x512xf32>, tensor<2x512xi32>, tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<2x4x512xf32>, %t: tensor<2x4xi32>, %g: tensor<2x4xf32>) {
  // expected-error @+1 {{with reduction mean the loss's gradient has shape [], got 'tensor<2x4xf32>'}}
  %0 = loom.cross_entropy_grad %l, %t, %g : tensor<2x4x512xf32>, tensor<2x4xi32>, tensor<2x4xf32>
  return
}

// -----

func.func @f(%x: tensor<8x768xf32>, %w: tensor<768xf32>, %dy: tensor<8x767xf32>) {
  // expected-error @+1 {{failed to verify that all of {input, grad, input_grad} have same type}}
  %0:3 = "loom.layernorm_grad"(%x, %w, %dy) : (tensor<8x768xf32>, tensor<768xf32>, tensor<8x767xf32>) -> (tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>)
  return
}
