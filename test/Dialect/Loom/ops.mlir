// Round trip: custom form -> custom form, and custom -> generic -> custom.
// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | loom-opt | FileCheck %s

// CHECK-LABEL: func.func @parameters
func.func @parameters() -> (tensor<768x2304xf32>, tensor<2304x768xbf16>, tensor<768xf16>, tensor<768xf32>) {
  // CHECK: loom.parameter "layers.0.attention.qkv.weight" init(#loom.normal<std = 2.000000e-02>) : tensor<768x2304xf32>
  %0 = loom.parameter "layers.0.attention.qkv.weight" init(#loom.normal<std = 0.02>) : tensor<768x2304xf32>
  // CHECK: loom.parameter "layers.0.attention.proj.weight" init(#loom.scaled_normal<std = 2.000000e-02, layers = 12>) : tensor<2304x768xbf16>
  %1 = loom.parameter "layers.0.attention.proj.weight" init(#loom.scaled_normal<std = 0.02, layers = 12>) : tensor<2304x768xbf16>
  // CHECK: loom.parameter "layers.0.ln_1.bias" init(#loom.zeros) : tensor<768xf16>
  %2 = loom.parameter "layers.0.ln_1.bias" init(#loom.zeros) : tensor<768xf16>
  // CHECK: loom.parameter "layers.0.ln_1.weight" init(#loom.ones) : tensor<768xf32>
  %3 = loom.parameter "layers.0.ln_1.weight" init(#loom.ones) : tensor<768xf32>
  return %0, %1, %2, %3 : tensor<768x2304xf32>, tensor<2304x768xbf16>, tensor<768xf16>, tensor<768xf32>
}

// CHECK-LABEL: func.func @matmul
func.func @matmul(%x: tensor<64x768xf32>, %w: tensor<768x2304xf32>, %q: tensor<12x64x64xbf16>, %k: tensor<12x64x64xbf16>, %wt: tensor<2304x768xf32>, %b3: tensor<4x64x768xf32>) {
  // CHECK: loom.matmul %{{.*}}, %{{.*}} : tensor<64x768xf32>, tensor<768x2304xf32> -> tensor<64x2304xf32>
  %0 = loom.matmul %x, %w : tensor<64x768xf32>, tensor<768x2304xf32> -> tensor<64x2304xf32>
  // CHECK: loom.matmul %{{.*}}, %{{.*}} transposed : tensor<12x64x64xbf16>, tensor<12x64x64xbf16> -> tensor<12x64x64xbf16>
  %1 = loom.matmul %q, %k transposed : tensor<12x64x64xbf16>, tensor<12x64x64xbf16> -> tensor<12x64x64xbf16>
  // CHECK: loom.matmul %{{.*}} transposed, %{{.*}} : tensor<64x768xf32>, tensor<64x2304xf32> -> tensor<768x2304xf32>
  %2 = loom.matmul %x transposed, %0 : tensor<64x768xf32>, tensor<64x2304xf32> -> tensor<768x2304xf32>
  // A rank-2 weight broadcast over a batched lhs.
  // CHECK: loom.matmul %{{.*}}, %{{.*}} transposed : tensor<4x64x768xf32>, tensor<2304x768xf32> -> tensor<4x64x2304xf32>
  %3 = loom.matmul %b3, %wt transposed : tensor<4x64x768xf32>, tensor<2304x768xf32> -> tensor<4x64x2304xf32>
  return
}

// CHECK-LABEL: func.func @binary
func.func @binary(%x: tensor<4x64x768xf32>, %b: tensor<768xf32>, %c: tensor<4x1x1xf32>, %i: tensor<8xi32>, %j: tensor<1xi32>) {
  // CHECK: loom.add %{{.*}}, %{{.*}} : tensor<4x64x768xf32>, tensor<768xf32> -> tensor<4x64x768xf32>
  %0 = loom.add %x, %b : tensor<4x64x768xf32>, tensor<768xf32> -> tensor<4x64x768xf32>
  // CHECK: loom.sub %{{.*}}, %{{.*}} : tensor<4x64x768xf32>, tensor<4x1x1xf32> -> tensor<4x64x768xf32>
  %1 = loom.sub %x, %c : tensor<4x64x768xf32>, tensor<4x1x1xf32> -> tensor<4x64x768xf32>
  // CHECK: loom.mul %{{.*}}, %{{.*}} : tensor<4x1x1xf32>, tensor<768xf32> -> tensor<4x1x768xf32>
  %2 = loom.mul %c, %b : tensor<4x1x1xf32>, tensor<768xf32> -> tensor<4x1x768xf32>
  // CHECK: loom.div %{{.*}}, %{{.*}} : tensor<4x64x768xf32>, tensor<4x64x768xf32> -> tensor<4x64x768xf32>
  %3 = loom.div %x, %0 : tensor<4x64x768xf32>, tensor<4x64x768xf32> -> tensor<4x64x768xf32>
  // CHECK: loom.add %{{.*}}, %{{.*}} : tensor<8xi32>, tensor<1xi32> -> tensor<8xi32>
  %4 = loom.add %i, %j : tensor<8xi32>, tensor<1xi32> -> tensor<8xi32>
  return
}

// CHECK-LABEL: func.func @unary
func.func @unary(%x: tensor<8x3072xbf16>, %y: tensor<8x768xf32>) {
  // CHECK: loom.neg %{{.*}} : tensor<8x3072xbf16>
  %0 = loom.neg %x : tensor<8x3072xbf16>
  // CHECK: loom.relu %{{.*}} : tensor<8x3072xbf16>
  %1 = loom.relu %x : tensor<8x3072xbf16>
  // CHECK: loom.silu %{{.*}} : tensor<8x3072xbf16>
  %2 = loom.silu %x : tensor<8x3072xbf16>
  // CHECK: loom.gelu %{{.*}} : tensor<8x3072xbf16>
  %3 = loom.gelu %x : tensor<8x3072xbf16>
  // CHECK: loom.gelu %{{.*}} approximate tanh : tensor<8x3072xbf16>
  %4 = loom.gelu %x approximate tanh : tensor<8x3072xbf16>
  // The default is elided when printed.
  // CHECK: loom.gelu %{{.*}} : tensor<8x3072xbf16>
  %5 = loom.gelu %x approximate none : tensor<8x3072xbf16>
  // CHECK: loom.scale %{{.*}} by 1.250000e-01 : tensor<8x768xf32>
  %6 = loom.scale %y by 0.125 : tensor<8x768xf32>
  // CHECK: loom.cast %{{.*}} : tensor<8x768xf32> to tensor<8x768xbf16>
  %7 = loom.cast %y : tensor<8x768xf32> to tensor<8x768xbf16>
  // CHECK: loom.cast %{{.*}} : tensor<8x768xf32> to tensor<8x768xi1>
  %8 = loom.cast %y : tensor<8x768xf32> to tensor<8x768xi1>
  return
}

// CHECK-LABEL: func.func @softmax
func.func @softmax(%s: tensor<4x12x64x64xf32>, %m: tensor<4x1x1x64xi1>, %r: tensor<12x32x64xf16>) {
  // CHECK: loom.softmax %{{.*}} : tensor<4x12x64x64xf32>
  %0 = loom.softmax %s : tensor<4x12x64x64xf32>
  // CHECK: loom.softmax %{{.*}} causal scale 1.250000e-01 : tensor<4x12x64x64xf32>
  %1 = loom.softmax %s causal scale 0.125 : tensor<4x12x64x64xf32>
  // CHECK: loom.softmax %{{.*}} mask(%{{.*}} : tensor<4x1x1x64xi1>) : tensor<4x12x64x64xf32>
  %2 = loom.softmax %s mask(%m : tensor<4x1x1x64xi1>) : tensor<4x12x64x64xf32>
  // Causal with fewer queries than keys (decoding with a cache).
  // CHECK: loom.softmax %{{.*}} causal : tensor<12x32x64xf16>
  %3 = loom.softmax %r causal : tensor<12x32x64xf16>
  return
}

// CHECK-LABEL: func.func @norms_and_dropout
func.func @norms_and_dropout(%x: tensor<8x768xf32>, %g: tensor<768xf32>, %b: tensor<768xf32>) {
  // CHECK: loom.layernorm %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
  %0 = loom.layernorm %x, %g, %b : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
  // CHECK: loom.layernorm %{{.*}}, %{{.*}}, %{{.*}} eps 9.9999999999999995E-7 : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
  %1 = loom.layernorm %x, %g, %b eps 1.0e-6 : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
  // CHECK: loom.rmsnorm %{{.*}}, %{{.*}} : tensor<8x768xf32>, tensor<768xf32>
  %2 = loom.rmsnorm %x, %g : tensor<8x768xf32>, tensor<768xf32>
  // CHECK: loom.rmsnorm %{{.*}}, %{{.*}} eps 9.9999999999999995E-7 : tensor<8x768xf32>, tensor<768xf32>
  %3 = loom.rmsnorm %x, %g eps 1.0e-6 : tensor<8x768xf32>, tensor<768xf32>
  // CHECK: loom.dropout %{{.*}} rate 1.000000e-01 site "layers.0.attention.dropout" : tensor<8x768xf32>
  %4 = loom.dropout %x rate 0.1 site "layers.0.attention.dropout" : tensor<8x768xf32>
  return
}

// CHECK-LABEL: func.func @shapes
func.func @shapes(%x: tensor<64x2304xf32>, %wte: tensor<50257x768xf32>, %tok: tensor<4x64xi32>, %t64: tensor<4x64xi64>) {
  // CHECK: loom.embedding %{{.*}}[%{{.*}}] : tensor<50257x768xf32>, tensor<4x64xi32> -> tensor<4x64x768xf32>
  %0 = loom.embedding %wte[%tok] : tensor<50257x768xf32>, tensor<4x64xi32> -> tensor<4x64x768xf32>
  // CHECK: loom.embedding %{{.*}}[%{{.*}}] : tensor<50257x768xf32>, tensor<4x64xi64> -> tensor<4x64x768xf32>
  %1 = loom.embedding %wte[%t64] : tensor<50257x768xf32>, tensor<4x64xi64> -> tensor<4x64x768xf32>
  // CHECK: %[[Q:.*]]:3 = loom.split %{{.*}} axis 1 : tensor<64x2304xf32> -> tensor<64x768xf32>, tensor<64x768xf32>, tensor<64x768xf32>
  %q, %k, %v = loom.split %x axis 1 : tensor<64x2304xf32> -> tensor<64x768xf32>, tensor<64x768xf32>, tensor<64x768xf32>
  // CHECK: loom.reshape %[[Q]]#0 : tensor<64x768xf32> -> tensor<64x12x64xf32>
  %2 = loom.reshape %q : tensor<64x768xf32> -> tensor<64x12x64xf32>
  // CHECK: loom.transpose %{{.*}} [1, 0, 2] : tensor<64x12x64xf32> -> tensor<12x64x64xf32>
  %3 = loom.transpose %2 [1, 0, 2] : tensor<64x12x64xf32> -> tensor<12x64x64xf32>
  // CHECK: loom.concat %[[Q]]#0, %[[Q]]#1, %[[Q]]#2 axis 1 : tensor<64x768xf32>, tensor<64x768xf32>, tensor<64x768xf32> -> tensor<64x2304xf32>
  %4 = loom.concat %q, %k, %v axis 1 : tensor<64x768xf32>, tensor<64x768xf32>, tensor<64x768xf32> -> tensor<64x2304xf32>
  // CHECK: loom.reshape %{{.*}} : tensor<64x2304xf32> -> tensor<147456xf32>
  %5 = loom.reshape %4 : tensor<64x2304xf32> -> tensor<147456xf32>
  return
}

// CHECK-LABEL: func.func @reduce_and_loss
func.func @reduce_and_loss(%x: tensor<4x64x768xf32>, %logits: tensor<4x64x512xbf16>, %labels: tensor<4x64xi32>, %i: tensor<4x8xi64>) {
  // CHECK: loom.reduce sum %{{.*}} dims [0, 1] : tensor<4x64x768xf32> -> tensor<768xf32>
  %0 = loom.reduce sum %x dims [0, 1] : tensor<4x64x768xf32> -> tensor<768xf32>
  // CHECK: loom.reduce mean %{{.*}} dims [2] keep_dims : tensor<4x64x768xf32> -> tensor<4x64x1xf32>
  %1 = loom.reduce mean %x dims [2] keep_dims : tensor<4x64x768xf32> -> tensor<4x64x1xf32>
  // CHECK: loom.reduce max %{{.*}} dims [1] : tensor<4x8xi64> -> tensor<4xi64>
  %2 = loom.reduce max %i dims [1] : tensor<4x8xi64> -> tensor<4xi64>
  // CHECK: loom.cross_entropy %{{.*}}, %{{.*}} : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<f32>
  %3 = loom.cross_entropy %logits, %labels : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<f32>
  // CHECK: loom.cross_entropy %{{.*}}, %{{.*}} reduction none ignore_index 0 : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<4x64xf32>
  %4 = loom.cross_entropy %logits, %labels reduction none ignore_index 0 : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<4x64xf32>
  // CHECK: loom.cross_entropy %{{.*}}, %{{.*}} reduction sum : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<bf16>
  %5 = loom.cross_entropy %logits, %labels reduction sum : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<bf16>
  // CHECK: loom.cross_entropy %{{.*}}, %{{.*}} reduction sum classes 500 : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<f32>
  %6 = loom.cross_entropy %logits, %labels reduction sum classes 500 : tensor<4x64x512xbf16>, tensor<4x64xi32> -> tensor<f32>
  return
}

// The padded classes of a vocabulary (cross_entropy's `classes`) through the
// vocabulary-parallel pieces.
// CHECK-LABEL: func.func @padded_vocabulary
func.func @padded_vocabulary(%z: tensor<2x4x256xf32>, %ids: tensor<2x4xi32>, %m: tensor<2x4xf32>, %g: tensor<2x4xf32>, %d: tensor<f32>) {
  // CHECK: loom.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} reduction sum classes 255 : tensor<2x4x256xf32>, tensor<2x4xi32>, tensor<f32>
  %0 = loom.cross_entropy_grad %z, %ids, %d reduction sum classes 255 : tensor<2x4x256xf32>, tensor<2x4xi32>, tensor<f32>
  // CHECK: loom.cross_entropy_max %{{.*}} classes 500 : tensor<2x4x256xf32> -> tensor<2x4xf32>
  %1 = loom.cross_entropy_max %z classes 500 : tensor<2x4x256xf32> -> tensor<2x4xf32>
  // CHECK: loom.cross_entropy_max %{{.*}} : tensor<2x4x256xf32> -> tensor<2x4xf32>
  %2 = loom.cross_entropy_max %z : tensor<2x4x256xf32> -> tensor<2x4xf32>
  // CHECK: loom.cross_entropy_partials %{{.*}}, %{{.*}}, %{{.*}} ignore_index 0 classes 500 : tensor<2x4x256xf32>, tensor<2x4xf32>, tensor<2x4xi32> -> tensor<2x4xf32>, tensor<2x4xf32>
  %3:2 = loom.cross_entropy_partials %z, %m, %ids ignore_index 0 classes 500 : tensor<2x4x256xf32>, tensor<2x4xf32>, tensor<2x4xi32> -> tensor<2x4xf32>, tensor<2x4xf32>
  // CHECK: loom.cross_entropy_partials_grad %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} classes 500 : tensor<2x4x256xf32>, tensor<2x4xf32>, tensor<2x4xi32>, tensor<2x4xf32>, tensor<2x4xf32>
  %4 = loom.cross_entropy_partials_grad %z, %m, %ids, %g, %g classes 500 : tensor<2x4x256xf32>, tensor<2x4xf32>, tensor<2x4xi32>, tensor<2x4xf32>, tensor<2x4xf32>
  return
}

// CHECK-LABEL: func.func @fill_and_broadcast
func.func @fill_and_broadcast(%x: tensor<8x1xf32>, %i: tensor<4xi32>) {
  // CHECK: loom.fill 1.000000e+00 : tensor<f32>
  %0 = loom.fill 1.0 : tensor<f32>
  // CHECK: loom.broadcast %{{.*}} : tensor<8x1xf32> -> tensor<4x8x768xf32>
  %1 = loom.broadcast %x : tensor<8x1xf32> -> tensor<4x8x768xf32>
  // CHECK: loom.broadcast %{{.*}} : tensor<4xi32> -> tensor<2x4xi32>
  %2 = loom.broadcast %i : tensor<4xi32> -> tensor<2x4xi32>
  return
}

// CHECK-LABEL: func.func @backward_ops
func.func @backward_ops(%x: tensor<8x768xf32>, %dy: tensor<8x768xf32>, %w: tensor<768xf32>, %p: tensor<12x64x64xbf16>, %dp: tensor<12x64x64xbf16>, %ids: tensor<2x4xi32>, %de: tensor<2x4x768xf32>, %logits: tensor<2x4x512xf32>, %dloss: tensor<f32>, %dtok: tensor<2x4xf32>) {
  // CHECK: loom.relu_grad %{{.*}}, %{{.*}} : tensor<8x768xf32>
  %0 = loom.relu_grad %x, %dy : tensor<8x768xf32>
  // CHECK: loom.silu_grad %{{.*}}, %{{.*}} : tensor<8x768xf32>
  %1 = loom.silu_grad %x, %dy : tensor<8x768xf32>
  // CHECK: loom.gelu_grad %{{.*}}, %{{.*}} approximate tanh : tensor<8x768xf32>
  %2 = loom.gelu_grad %x, %dy approximate tanh : tensor<8x768xf32>
  // CHECK: loom.softmax_grad %{{.*}}, %{{.*}} scale 1.250000e-01 : tensor<12x64x64xbf16>
  %3 = loom.softmax_grad %p, %dp scale 0.125 : tensor<12x64x64xbf16>
  // CHECK: loom.layernorm_grad %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x768xf32>, tensor<768xf32>
  %4:3 = loom.layernorm_grad %x, %w, %dy : tensor<8x768xf32>, tensor<768xf32>
  // CHECK: loom.rmsnorm_grad %{{.*}}, %{{.*}}, %{{.*}} eps 9.9999999999999995E-7 : tensor<8x768xf32>, tensor<768xf32>
  %5:2 = loom.rmsnorm_grad %x, %w, %dy eps 1.0e-6 : tensor<8x768xf32>, tensor<768xf32>
  // CHECK: loom.dropout_grad %{{.*}} rate 1.000000e-01 site "layers.0.mlp_output_dropout" : tensor<8x768xf32>
  %6 = loom.dropout_grad %dy rate 0.1 site "layers.0.mlp_output_dropout" : tensor<8x768xf32>
  // CHECK: loom.embedding_grad %{{.*}}[%{{.*}}] : tensor<2x4x768xf32>, tensor<2x4xi32> -> tensor<50257x768xf32>
  %7 = loom.embedding_grad %de[%ids] : tensor<2x4x768xf32>, tensor<2x4xi32> -> tensor<50257x768xf32>
  // CHECK: loom.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x4x512xf32>, tensor<2x4xi32>, tensor<f32>
  %8 = loom.cross_entropy_grad %logits, %ids, %dloss : tensor<2x4x512xf32>, tensor<2x4xi32>, tensor<f32>
  // CHECK: loom.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} reduction none ignore_index 0 : tensor<2x4x512xf32>, tensor<2x4xi32>, tensor<2x4xf32>
  %9 = loom.cross_entropy_grad %logits, %ids, %dtok reduction none ignore_index 0 : tensor<2x4x512xf32>, tensor<2x4xi32>, tensor<2x4xf32>
  return
}
