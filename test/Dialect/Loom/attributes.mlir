// The loom dialect's discardable attributes, each where it belongs: they
// verify and round trip (custom form, and through the generic form).
// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s --mlir-print-op-generic | loom-opt | FileCheck %s

// CHECK: module attributes {loom.configs = {act = "gelu", heads = 2 : i64, pre_ln = true, std = 2.000000e-02 : f64}, loom.global_batch_size = 8 : i64, loom.micro_batch_size = 2 : i64, loom.pipeline_chunks_per_stage = 1 : i64, loom.pipeline_stages = 2 : i64}
module attributes {loom.micro_batch_size = 2 : i64, loom.global_batch_size = 8 : i64,
                   loom.configs = {heads = 2 : i64, std = 0.02 : f64, pre_ln = true, act = "gelu"},
                   loom.pipeline_stages = 2 : i64, loom.pipeline_chunks_per_stage = 1 : i64} {
  // CHECK-LABEL: func.func @chunk
  // CHECK-SAME: (%{{.*}}: tensor<2x4x8xf32> {loom.boundary_input}, %{{.*}}: tensor<2x4xi32> {loom.input = "labels"}, %{{.*}}: tensor<2x4x8xf32> {loom.output_grad})
  // CHECK-SAME: -> (tensor<f32>, tensor<2x4x8xf32> {loom.input_grad}, tensor<8x8xf32> {loom.grad = "layers.1.w"})
  // CHECK-SAME: attributes {loom.forward_ops = 2 : i64, loom.ignore_index = -100 : i64, loom.labels_input = 1 : i64, loom.layers = 2 : i64, loom.loss_normalizer = "tokens", loom.pipeline_chunk = 1 : i64}
  func.func @chunk(%x: tensor<2x4x8xf32> {loom.boundary_input}, %labels: tensor<2x4xi32> {loom.input = "labels"},
                   %dy: tensor<2x4x8xf32> {loom.output_grad})
      -> (tensor<f32>, tensor<2x4x8xf32> {loom.input_grad}, tensor<8x8xf32> {loom.grad = "layers.1.w"})
      attributes {loom.layers = 2 : i64, loom.pipeline_chunk = 1 : i64, loom.forward_ops = 2 : i64,
                  loom.loss_normalizer = "tokens", loom.labels_input = 1 : i64, loom.ignore_index = -100 : i64} {
    // CHECK: loom.parameter "layers.1.w" {{.*}} {loom.layer = 1 : i64}
    %w = loom.parameter "layers.1.w" init(#loom.normal<std = 2.000000e-02>) {loom.layer = 1 : i64} : tensor<8x8xf32>
    // CHECK: loom.fill 1.000000e+00 {loom.loss_seed} : tensor<f32>
    %seed = loom.fill 1.000000e+00 {loom.loss_seed} : tensor<f32>
    %g = loom.fill 0.000000e+00 : tensor<8x8xf32>
    return %seed, %x, %g : tensor<f32>, tensor<2x4x8xf32>, tensor<8x8xf32>
  }
}
