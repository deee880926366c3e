// --emit=loom prints IR that loom-opt parses, and that prints the same again.
// RUN: loomc %loom_src_root/examples/gpt2_layer.mlir --emit=loom -o %t.mlir
// RUN: loom-opt %t.mlir | FileCheck %s
// RUN: loom-opt %t.mlir > %t.2.mlir
// RUN: loomc %t.2.mlir --emit=loom | diff %t.2.mlir -

// CHECK-LABEL: func.func @gpt2_layer
// CHECK: loom.softmax %{{.*}} causal scale 1.250000e-01 : tensor<1x12x1024x1024xf32>
// CHECK: return
