// --loom-training-step-pipeline is the sequence loomc runs to build the
// training step (lib/Plan/TrainingPipeline.cpp), its options named as
// loomc's flags: the passes in order, what each leaves, and the same module
// as `loomc --emit=step` gives.

// RUN: loom-opt %s --loom-training-step-pipeline --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=PASSES
// PASSES: builtin.module(inline{{.*}},symbol-dce,loom-global-batch-loss,loom-autodiff)

// RUN: loom-opt %s --loom-training-step-pipeline="mesh=tp=2 sequence-parallel=true precision=bf16" --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=PASSES-MESH
// PASSES-MESH: builtin.module(inline{{.*}},symbol-dce,loom-global-batch-loss,loom-shard{mesh=tp=2 sequence-parallel=true},loom-partition,loom-mixed-precision{compute=bf16},loom-autodiff,dist-fuse-reduce-scatter)

// RUN: loom-opt %s --loom-training-step-pipeline="mesh=pp=2,tp=2 pipeline-layout=1,1" --dump-pass-pipeline -o /dev/null 2>&1 | FileCheck %s --check-prefix=PASSES-PP
// PASSES-PP: builtin.module(inline{{.*}},symbol-dce,loom-global-batch-loss,loom-shard{mesh=pp=2,tp=2 sequence-parallel=false},loom-partition,loom-pipeline{chunks=1 layout=1,1 stages=2},loom-autodiff,dist-fuse-reduce-scatter)

// One rank: the call inlined and the private function dropped, the mean
// loss made a sum over the global batch, every parameter's gradient
// returned; no dist op.
// RUN: loom-opt %s --loom-training-step-pipeline | FileCheck %s --implicit-check-not=dist. --implicit-check-not=func.call
// CHECK-NOT: @layer0
// CHECK-LABEL: func.func @mlp(
// CHECK-SAME: -> (tensor<f32>, tensor<64x16xf32> {loom.grad = "wte"}, tensor<16x32xf32> {loom.grad = "layers.0.fc1.weight"}, tensor<32x16xf32> {loom.grad = "layers.0.fc2.weight"}, tensor<16xf32> {loom.grad = "layers.0.fc2.bias"}, tensor<16x32xf32> {loom.grad = "layers.1.fc1.weight"}, tensor<32x16xf32> {loom.grad = "layers.1.fc2.weight"}, tensor<16xf32> {loom.grad = "layers.1.fc2.bias"})
// CHECK-SAME: loom.labels_input = 1 : i64, loom.loss_normalizer = "tokens"
// CHECK: loom.matmul %{{.*}}, %{{.*}} {loom.layer = 0 : i64} : tensor<2x8x16xf32>, tensor<16x32xf32> -> tensor<2x8x32xf32>
// CHECK: loom.cross_entropy %{{.*}}, %{{.*}} reduction sum
// CHECK: loom.fill 1.000000e+00 {loom.loss_seed}
// CHECK: loom.cross_entropy_grad
// CHECK-NOT: @layer0

// tp=2 with sequence parallelism in bf16: local shapes, f32 master weights
// cast where read, f32 gradients; in the backward, each all_gather's
// gradient (an all_slice) of the fan_out's gradient (an all_reduce) is one
// reduce_scatter, so no all_slice is left.
// RUN: loom-opt %s --loom-training-step-pipeline="mesh=tp=2 sequence-parallel=true precision=bf16" | FileCheck %s --check-prefix=SP --implicit-check-not=dist.all_slice
// SP: module attributes {dist.mesh = #dist.mesh<dp = 1, pp = 1, tp = 2>, dist.sequence_parallel
// SP-LABEL: func.func @mlp(
// SP-SAME: tensor<32x16xf32> {loom.grad = "wte"}
// SP: %[[WTE:.*]] = loom.parameter "wte" {{.*}} : tensor<32x16xf32>
// SP: %[[WTE16:.*]] = loom.cast %[[WTE]] : tensor<32x16xf32> to tensor<32x16xbf16>
// SP: dist.reduce_scatter %{{.*}} axis "tp" dim 1 {loom.layer = 0 : i64} : tensor<2x8x16xbf16> -> tensor<2x4x16xbf16>
// SP: %[[G:.*]] = dist.all_gather %{{.*}} axis "tp" dim 1 : tensor<2x4x16xbf16> -> tensor<2x8x16xbf16>
// SP: dist.fan_out %[[G]] axis "tp" : tensor<2x8x16xbf16>
// SP: loom.cross_entropy_partials_grad
// SP: %[[DX:.*]] = loom.matmul %{{.*}}, %[[WTE16]] : tensor<2x8x32xbf16>, tensor<32x16xbf16> -> tensor<2x8x16xbf16>
// SP: dist.reduce_scatter %[[DX]] axis "tp" dim 1 : tensor<2x8x16xbf16> -> tensor<2x4x16xbf16>
// SP: loom.gelu_grad {{.*}} {loom.layer = 1 : i64}
// SP: %[[DX1:.*]] = loom.matmul %{{.*}}, %{{.*}} transposed {loom.layer = 1 : i64} : tensor<2x8x16xbf16>, tensor<16x16xbf16> -> tensor<2x8x16xbf16>
// SP: dist.reduce_scatter %[[DX1]] axis "tp" dim 1 {loom.layer = 1 : i64} : tensor<2x8x16xbf16> -> tensor<2x4x16xbf16>
// SP: return {{.*}} : tensor<f32>, tensor<32x16xf32>, tensor<16x16xf32>, tensor<16x16xf32>, tensor<16xf32>, tensor<16x16xf32>, tensor<16x16xf32>, tensor<16xf32>

// pp=2: one function per chunk, each differentiated.
// RUN: loom-opt %s --loom-training-step-pipeline="mesh=pp=2 pipeline-layout=1,1" | FileCheck %s --check-prefix=PP
// PP: module attributes {dist.mesh = #dist.mesh<dp = 1, pp = 2, tp = 1>
// PP: func.func @mlp_chunk0({{.*}}{loom.output_grad}) -> (tensor<2x8x16xf32>, tensor<64x16xf32> {loom.grad = "wte"}
// PP: func.func @mlp_chunk1(%{{.*}}: tensor<2x8x16xf32> {loom.boundary_input}, {{.*}}) -> (tensor<f32>, tensor<2x8x16xf32> {loom.input_grad}

// The options reach the passes.
// RUN: not loom-opt %s --loom-training-step-pipeline="mesh=pp=2 chunks-per-stage=2" 2>&1 | FileCheck %s --check-prefix=CHUNKS
// CHUNKS: error: cannot cut @mlp into pp=2 x 2 chunks
// RUN: not loom-opt %s --loom-training-step-pipeline="precision=f64" 2>&1 | FileCheck %s --check-prefix=PRECISION
// PRECISION: error: --loom-mixed-precision: compute type 'f64' is not bf16 or f16

// The same module loomc builds.
// RUN: loom-opt %s --loom-training-step-pipeline="mesh=tp=2 sequence-parallel=true precision=bf16" -o %t.opt.mlir
// RUN: loomc %s --mesh tp=2 --sequence-parallel --precision bf16 --emit=step -o %t.loomc.mlir
// RUN: diff %t.opt.mlir %t.loomc.mlir
// RUN: loom-opt %s --loom-training-step-pipeline="mesh=dp=2,pp=2,tp=2 precision=f16 pipeline-layout=1,1" -o %t.opt-pp.mlir
// RUN: loomc %s --mesh dp=2,pp=2,tp=2 --precision f16 --pipeline-layout 1,1 --emit=step -o %t.loomc-pp.mlir
// RUN: diff %t.opt-pp.mlir %t.loomc-pp.mlir
// RUN: loom-opt %s --loom-training-step-pipeline -o %t.opt-one.mlir
// RUN: loomc %s --emit=step -o %t.loomc-one.mlir
// RUN: diff %t.opt-one.mlir %t.loomc-one.mlir

module attributes {loom.global_batch_size = 4 : i64, loom.micro_batch_size = 2 : i64} {
  // Layer 0, called: the pipeline inlines it and drops the function.
  func.func private @layer0(%x: tensor<2x8x16xf32>) -> tensor<2x8x16xf32> {
    %w1 = loom.parameter "layers.0.fc1.weight" init(#loom.normal<std = 0.02>) {loom.layer = 0 : i64} : tensor<16x32xf32>
    %h = loom.matmul %x, %w1 {loom.layer = 0 : i64} : tensor<2x8x16xf32>, tensor<16x32xf32> -> tensor<2x8x32xf32>
    %a = loom.gelu %h {loom.layer = 0 : i64} : tensor<2x8x32xf32>
    %w2 = loom.parameter "layers.0.fc2.weight" init(#loom.normal<std = 0.02>) {loom.layer = 0 : i64} : tensor<32x16xf32>
    %y = loom.matmul %a, %w2 {loom.layer = 0 : i64} : tensor<2x8x32xf32>, tensor<32x16xf32> -> tensor<2x8x16xf32>
    %b = loom.parameter "layers.0.fc2.bias" init(#loom.zeros) {loom.layer = 0 : i64} : tensor<16xf32>
    %z = loom.add %y, %b {loom.layer = 0 : i64} : tensor<2x8x16xf32>, tensor<16xf32> -> tensor<2x8x16xf32>
    return %z : tensor<2x8x16xf32>
  }
  func.func @mlp(%tokens: tensor<2x8xi32> {loom.input = "tokens"}, %labels: tensor<2x8xi32> {loom.input = "labels"}) -> tensor<f32> {
    %wte = loom.parameter "wte" init(#loom.normal<std = 0.02>) : tensor<64x16xf32>
    %x = loom.embedding %wte[%tokens] : tensor<64x16xf32>, tensor<2x8xi32> -> tensor<2x8x16xf32>
    %x0 = func.call @layer0(%x) : (tensor<2x8x16xf32>) -> tensor<2x8x16xf32>
    %w1 = loom.parameter "layers.1.fc1.weight" init(#loom.normal<std = 0.02>) {loom.layer = 1 : i64} : tensor<16x32xf32>
    %h = loom.matmul %x0, %w1 {loom.layer = 1 : i64} : tensor<2x8x16xf32>, tensor<16x32xf32> -> tensor<2x8x32xf32>
    %a = loom.gelu %h {loom.layer = 1 : i64} : tensor<2x8x32xf32>
    %w2 = loom.parameter "layers.1.fc2.weight" init(#loom.normal<std = 0.02>) {loom.layer = 1 : i64} : tensor<32x16xf32>
    %y = loom.matmul %a, %w2 {loom.layer = 1 : i64} : tensor<2x8x32xf32>, tensor<32x16xf32> -> tensor<2x8x16xf32>
    %b = loom.parameter "layers.1.fc2.bias" init(#loom.zeros) {loom.layer = 1 : i64} : tensor<16xf32>
    %x1 = loom.add %y, %b {loom.layer = 1 : i64} : tensor<2x8x16xf32>, tensor<16xf32> -> tensor<2x8x16xf32>
    %logits = loom.matmul %x1, %wte transposed : tensor<2x8x16xf32>, tensor<64x16xf32> -> tensor<2x8x64xf32>
    %loss = loom.cross_entropy %logits, %labels : tensor<2x8x64xf32>, tensor<2x8xi32> -> tensor<f32>
    return %loss : tensor<f32>
  }
}
