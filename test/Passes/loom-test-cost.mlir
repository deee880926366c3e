// The cost interface on every op. Expected values are worked out by hand from
// the conventions in docs/dialect.md (matmul 2·m·n·k; one FLOP per elementary
// operation; bytes = elements × element size, i1 as one byte).
// RUN: loom-opt %s --loom-test-cost -split-input-file -verify-diagnostics
// RUN: loom-opt %s --loom-test-cost=per-op=false -split-input-file 2>&1 | FileCheck %s --check-prefix=TOTAL

// TOTAL: remark: total of 2 ops: flops = 44040192 (matmul 44040192), bytes read = 9658368, bytes written = 196608
// expected-remark @+1 {{total of 2 ops: flops = 44040192 (matmul 44040192), bytes read = 9658368, bytes written = 196608}}
func.func @matmuls(%x: tensor<8x768xf32>, %w: tensor<768x3072xf32>, %q: tensor<12x64x64xbf16>, %k: tensor<12x64x64xbf16>) {
  // 2·8·3072·768; (8·768 + 768·3072)·4; 8·3072·4
  // expected-remark @+1 {{flops = 37748736, bytes read = 9461760, bytes written = 98304}}
  %0 = loom.matmul %x, %w : tensor<8x768xf32>, tensor<768x3072xf32> -> tensor<8x3072xf32>
  // 2·12·64·64·64; 2·12·64·64·2; 12·64·64·2
  // expected-remark @+1 {{flops = 6291456, bytes read = 196608, bytes written = 98304}}
  %1 = loom.matmul %q, %k transposed : tensor<12x64x64xbf16>, tensor<12x64x64xbf16> -> tensor<12x64x64xbf16>
  return
}

// -----

// TOTAL: remark: total of 5 ops: flops = 491520 (matmul 0), bytes read = 491520, bytes written = 344064
// expected-remark @+1 {{total of 5 ops: flops = 491520 (matmul 0), bytes read = 491520, bytes written = 344064}}
func.func @elementwise(%x: tensor<8x3072xf32>, %xb: tensor<8x3072xbf16>) {
  // 9 per element
  // expected-remark @+1 {{flops = 221184, bytes read = 98304, bytes written = 98304}}
  %0 = loom.gelu %x approximate tanh : tensor<8x3072xf32>
  // 5 per element, 2-byte elements
  // expected-remark @+1 {{flops = 122880, bytes read = 49152, bytes written = 49152}}
  %1 = loom.gelu %xb : tensor<8x3072xbf16>
  // 4 per element
  // expected-remark @+1 {{flops = 98304, bytes read = 49152, bytes written = 49152}}
  %2 = loom.silu %xb : tensor<8x3072xbf16>
  // expected-remark @+1 {{flops = 24576, bytes read = 196608, bytes written = 98304}}
  %3 = loom.add %x, %x : tensor<8x3072xf32>, tensor<8x3072xf32> -> tensor<8x3072xf32>
  // expected-remark @+1 {{flops = 24576, bytes read = 98304, bytes written = 49152}}
  %4 = loom.cast %x : tensor<8x3072xf32> to tensor<8x3072xbf16>
  return
}

// -----

// TOTAL: remark: total of 4 ops: flops = 347392 (matmul 0), bytes read = 101408, bytes written = 101376
// expected-remark @+1 {{total of 4 ops: flops = 347392 (matmul 0), bytes read = 101408, bytes written = 101376}}
func.func @attention_pieces(%s: tensor<12x64x64xbf16>, %t: tensor<4x8x8xf32>, %m: tensor<4x1x8xi1>) {
  // 5 + scale + mask = 7 per element
  // expected-remark @+1 {{flops = 344064, bytes read = 98304, bytes written = 98304}}
  %0 = loom.softmax %s causal scale 0.125 : tensor<12x64x64xbf16>
  // 5 + mask = 6 per element; the i1 mask is 32 bytes
  // expected-remark @+1 {{flops = 1536, bytes read = 1056, bytes written = 1024}}
  %1 = loom.softmax %t mask(%m : tensor<4x1x8xi1>) : tensor<4x8x8xf32>
  // expected-remark @+1 {{flops = 1280, bytes read = 1024, bytes written = 1024}}
  %2 = loom.softmax %t : tensor<4x8x8xf32>
  // expected-remark @+1 {{flops = 512, bytes read = 1024, bytes written = 1024}}
  %3 = loom.dropout %t rate 0.1 site "attention.dropout" : tensor<4x8x8xf32>
  return
}

// -----

// TOTAL: remark: total of 7 ops: flops = 73736 (matmul 0), bytes read = 894976, bytes written = 860192
// expected-remark @+1 {{total of 7 ops: flops = 73736 (matmul 0), bytes read = 894976, bytes written = 860192}}
func.func @norms_and_gathers(%x: tensor<8x768xf32>, %g: tensor<768xf32>, %b: tensor<768xf32>, %ids: tensor<4x64xi32>) {
  // 7 per element; reads x, weight and bias
  // expected-remark @+1 {{flops = 43008, bytes read = 30720, bytes written = 24576}}
  %0 = loom.layernorm %x, %g, %b : tensor<8x768xf32>, tensor<768xf32>, tensor<768xf32>
  // expected-remark @+1 {{flops = 24576, bytes read = 27648, bytes written = 24576}}
  %1 = loom.rmsnorm %x, %g : tensor<8x768xf32>, tensor<768xf32>
  // A parameter is resident: its reads are counted at its consumers.
  // expected-remark @+1 {{flops = 0, bytes read = 0, bytes written = 0}}
  %wte = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<50257x768xf32>
  // Reads the 256 indices and the 256 rows they select, not the whole table.
  // expected-remark @+1 {{flops = 0, bytes read = 787456, bytes written = 786432}}
  %2 = loom.embedding %wte[%ids] : tensor<50257x768xf32>, tensor<4x64xi32> -> tensor<4x64x768xf32>
  // expected-remark @+1 {{flops = 0, bytes read = 0, bytes written = 0}}
  %3 = loom.reshape %x : tensor<8x768xf32> -> tensor<6144xf32>
  // expected-remark @+1 {{flops = 0, bytes read = 24576, bytes written = 24576}}
  %4 = loom.transpose %x [1, 0] : tensor<8x768xf32> -> tensor<768x8xf32>
  // 6144 adds + 8 divides
  // expected-remark @+1 {{flops = 6152, bytes read = 24576, bytes written = 32}}
  %5 = loom.reduce mean %x dims [1] : tensor<8x768xf32> -> tensor<8xf32>
  return
}

// -----

// TOTAL: remark: total of 3 ops: flops = 524800 (matmul 0), bytes read = 1573888, bytes written = 1048580
// expected-remark @+1 {{total of 3 ops: flops = 524800 (matmul 0), bytes read = 1573888, bytes written = 1048580}}
func.func @loss(%logits: tensor<4x64x512xf32>, %labels: tensor<4x64xi32>) {
  // 4 per logit + 2 per token
  // expected-remark @+1 {{flops = 524800, bytes read = 525312, bytes written = 4}}
  %0 = loom.cross_entropy %logits, %labels : tensor<4x64x512xf32>, tensor<4x64xi32> -> tensor<f32>
  // expected-remark @+1 {{flops = 0, bytes read = 524288, bytes written = 524288}}
  %1:2 = loom.split %logits axis 2 : tensor<4x64x512xf32> -> tensor<4x64x256xf32>, tensor<4x64x256xf32>
  // expected-remark @+1 {{flops = 0, bytes read = 524288, bytes written = 524288}}
  %2 = loom.concat %1#0, %1#1 axis 2 : tensor<4x64x256xf32>, tensor<4x64x256xf32> -> tensor<4x64x512xf32>
  return
}

// -----

// TOTAL: remark: total of 4 ops: flops = 208896 (matmul 0), bytes read = 150528, bytes written = 79876
// expected-remark @+1 {{total of 4 ops: flops = 208896 (matmul 0), bytes read = 150528, bytes written = 79876}}
func.func @backward(%x: tensor<8x768xf32>, %dy: tensor<8x768xf32>, %w: tensor<768xf32>) {
  // 2 per element (6144 elements); reads x and dy
  // expected-remark @+1 {{flops = 12288, bytes read = 49152, bytes written = 24576}}
  %0 = loom.relu_grad %x, %dy : tensor<8x768xf32>
  // 16 per element
  // expected-remark @+1 {{flops = 98304, bytes read = 49152, bytes written = 24576}}
  %1 = loom.gelu_grad %x, %dy approximate tanh : tensor<8x768xf32>
  // 16 per input element; reads x, w, dy; writes dx, dw, db
  // expected-remark @+1 {{flops = 98304, bytes read = 52224, bytes written = 30720}}
  %2:3 = loom.layernorm_grad %x, %w, %dy : tensor<8x768xf32>, tensor<768xf32>
  // expected-remark @+1 {{flops = 0, bytes read = 0, bytes written = 4}}
  %3 = loom.fill 1.0 : tensor<f32>
  return
}
