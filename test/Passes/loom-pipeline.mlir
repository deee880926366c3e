// --loom-pipeline cuts a model's layers (loom.layer) into stages × chunks
// functions of contiguous layers, each taking the activation of the chunk
// before and returning the activation for the next, or the loss.
// RUN: loom-opt %s --loom-pipeline=stages=2 -split-input-file -verify-diagnostics | FileCheck %s
//
// The options (a layout, virtual chunks, the cost-balanced cut) on a
// four-layer model:
// RUN: loom-opt %S/Inputs/four-layers.mlir --loom-pipeline="stages=2 layout=3,1" | FileCheck %s --check-prefix=LAYOUT
// RUN: loom-opt %S/Inputs/four-layers.mlir --loom-pipeline="stages=2 chunks=2" | FileCheck %s --check-prefix=VIRTUAL
// RUN: loom-opt %S/Inputs/four-layers.mlir --loom-pipeline=stages=2 | FileCheck %s --check-prefix=BALANCED
// RUN: not loom-opt %S/Inputs/four-layers.mlir --loom-pipeline="stages=2 layout=2,3" 2>&1 | FileCheck %s --check-prefix=LAYOUT-SUM
// RUN: not loom-opt %S/Inputs/four-layers.mlir --loom-pipeline="stages=2 layout=2,x" 2>&1 | FileCheck %s --check-prefix=LAYOUT-NUMBER
// RUN: not loom-opt %S/Inputs/four-layers.mlir --loom-pipeline="stages=5" 2>&1 | FileCheck %s --check-prefix=TOO-MANY
// RUN: not loom-opt %S/Inputs/four-layers.mlir --loom-pipeline="stages=0" 2>&1 | FileCheck %s --check-prefix=NO-STAGES

// The cheapest cut (Inputs/four-layers.mlir works it out): layers 0 and 1
// with what comes before them, layers 2 and 3 with what follows.
// BALANCED: module attributes {loom.pipeline_chunks_per_stage = 1 : i64, loom.pipeline_stages = 2 : i64}
// BALANCED-LABEL: func.func @f_chunk0(%{{.*}}: tensor<64xf32>) -> tensor<64xf32> attributes {loom.pipeline_chunk = 0 : i64}
// BALANCED-COUNT-2: loom.neg {{.*}} : tensor<64xf32>
// BALANCED-COUNT-4: loom.neg {{.*}} {loom.layer = 0 : i64}
// BALANCED-NEXT: loom.neg {{.*}} {loom.layer = 1 : i64}
// BALANCED-NEXT: return
// BALANCED-LABEL: func.func @f_chunk1(%{{.*}}: tensor<64xf32> {loom.boundary_input}) -> tensor<f32> attributes {loom.pipeline_chunk = 1 : i64}
// BALANCED-NEXT: loom.neg {{.*}} {loom.layer = 2 : i64}
// BALANCED-NEXT: loom.neg {{.*}} {loom.layer = 3 : i64}
// BALANCED-COUNT-4: loom.neg {{.*}} : tensor<64xf32>
// BALANCED-NEXT: loom.reduce sum
// BALANCED-NOT: func.func

// A layout gives the layers per chunk, whatever they cost.
// LAYOUT-LABEL: func.func @f_chunk0
// LAYOUT: loom.neg {{.*}} {loom.layer = 2 : i64}
// LAYOUT-NEXT: return
// LAYOUT-LABEL: func.func @f_chunk1
// LAYOUT-NEXT: loom.neg {{.*}} {loom.layer = 3 : i64}

// Two virtual chunks per stage: four chunks of one layer, chained.
// VIRTUAL: module attributes {loom.pipeline_chunks_per_stage = 2 : i64, loom.pipeline_stages = 2 : i64}
// VIRTUAL-LABEL: func.func @f_chunk0(%{{.*}}: tensor<64xf32>) -> tensor<64xf32> attributes {loom.pipeline_chunk = 0 : i64}
// VIRTUAL: loom.neg {{.*}} {loom.layer = 0 : i64}
// VIRTUAL-LABEL: func.func @f_chunk1(%{{.*}}: tensor<64xf32> {loom.boundary_input}) -> tensor<64xf32> attributes {loom.pipeline_chunk = 1 : i64}
// VIRTUAL-NEXT: loom.neg {{.*}} {loom.layer = 1 : i64}
// VIRTUAL-NEXT: return
// VIRTUAL-LABEL: func.func @f_chunk2(%{{.*}}: tensor<64xf32> {loom.boundary_input}) -> tensor<64xf32> attributes {loom.pipeline_chunk = 2 : i64}
// VIRTUAL-NEXT: loom.neg {{.*}} {loom.layer = 2 : i64}
// VIRTUAL-NEXT: return
// VIRTUAL-LABEL: func.func @f_chunk3(%{{.*}}: tensor<64xf32> {loom.boundary_input}) -> tensor<f32> attributes {loom.pipeline_chunk = 3 : i64}
// VIRTUAL-NEXT: loom.neg {{.*}} {loom.layer = 3 : i64}

// LAYOUT-SUM: error: --pipeline-layout 2,3 gives 2 chunks of 5 layers; the model has 4 layers and the pipeline 2 chunks (pp=2 x 1 per stage)
// LAYOUT-NUMBER: error: --pipeline-layout 2,x: give layers per chunk as whole numbers from 1 to the model's 4 layers, e.g. 3,3,2,2
// TOO-MANY: error: cannot cut @f into pp=5 x 1 chunks: the model has 4 layers; 5 pipeline chunks need at least one layer each
// NO-STAGES: error: --loom-pipeline needs stages >= 1 and chunks >= 1, at most 1048576 chunks in all (got stages=0, chunks=1)

// Layer 0 and what comes before it (the embedding) make chunk 0; layer 1 and
// what follows it (the tied LM head and the loss) chunk 1. The tied table is
// declared in both chunks. The module records the pipeline's shape; each
// chunk keeps the function's attributes and its number, and only the last
// keeps the loss's, with the labels' argument renumbered for that chunk.
// CHECK: module attributes {loom.micro_batch_size = 2 : i64, loom.pipeline_chunks_per_stage = 1 : i64, loom.pipeline_stages = 2 : i64}
// CHECK-NOT: func.func @lm(
// CHECK-LABEL: func.func @lm_chunk0
// CHECK-SAME: (%[[TOKENS:.*]]: tensor<2x4xi32> {loom.input = "tokens"}) -> tensor<2x4x8xf32>
// CHECK-SAME: attributes {loom.layers = 2 : i64, loom.pipeline_chunk = 0 : i64} {
// CHECK-NEXT: %[[WTE:.*]] = loom.parameter "wte"
// CHECK-NEXT: %[[X:.*]] = loom.embedding %[[WTE]][%[[TOKENS]]]
// CHECK-NEXT: %[[W0:.*]] = loom.parameter "layers.0.w"
// CHECK-NEXT: %[[H0:.*]] = loom.matmul %[[X]], %[[W0]] {loom.layer = 0 : i64}
// CHECK-NEXT: return %[[H0]] : tensor<2x4x8xf32>
// CHECK-LABEL: func.func @lm_chunk1
// CHECK-SAME: (%[[IN:.*]]: tensor<2x4x8xf32> {loom.boundary_input}, %[[LABELS:.*]]: tensor<2x4xi32> {loom.input = "labels"}) -> tensor<f32>
// CHECK-SAME: attributes {loom.ignore_index = -100 : i64, loom.labels_input = 1 : i64, loom.layers = 2 : i64, loom.loss_normalizer = "tokens", loom.pipeline_chunk = 1 : i64} {
// CHECK-NEXT: %[[W1:.*]] = loom.parameter "layers.1.w"
// CHECK-NEXT: %[[H1:.*]] = loom.matmul %[[IN]], %[[W1]] {loom.layer = 1 : i64}
// CHECK-NEXT: %[[HEAD:.*]] = loom.parameter "wte"
// CHECK-NEXT: %[[LOGITS:.*]] = loom.matmul %[[H1]], %[[HEAD]] transposed
// CHECK-NEXT: %[[LOSS:.*]] = loom.cross_entropy %[[LOGITS]], %[[LABELS]]
// CHECK-NEXT: return %[[LOSS]] : tensor<f32>
module attributes {loom.micro_batch_size = 2 : i64} {
  func.func @lm(%labels: tensor<2x4xi32> {loom.input = "labels"}, %tokens: tensor<2x4xi32> {loom.input = "tokens"}) -> tensor<f32>
      attributes {loom.layers = 2 : i64, loom.loss_normalizer = "tokens", loom.labels_input = 0 : i64, loom.ignore_index = -100 : i64} {
    %wte = loom.parameter "wte" init(#loom.normal<std = 2.000000e-02>) : tensor<16x8xf32>
    %x = loom.embedding %wte[%tokens] : tensor<16x8xf32>, tensor<2x4xi32> -> tensor<2x4x8xf32>
    %w0 = loom.parameter "layers.0.w" init(#loom.normal<std = 2.000000e-02>) {loom.layer = 0 : i64} : tensor<8x8xf32>
    %h0 = loom.matmul %x, %w0 {loom.layer = 0 : i64} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
    %w1 = loom.parameter "layers.1.w" init(#loom.normal<std = 2.000000e-02>) {loom.layer = 1 : i64} : tensor<8x8xf32>
    %h1 = loom.matmul %h0, %w1 {loom.layer = 1 : i64} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
    %head = loom.parameter "wte" init(#loom.normal<std = 2.000000e-02>) : tensor<16x8xf32>
    %logits = loom.matmul %h1, %head transposed : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
    %loss = loom.cross_entropy %logits, %labels reduction sum : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
    return %loss : tensor<f32>
  }
}

// -----

// expected-error @+1 {{@f has no layers (a `repeat` block) to cut into pipeline stages}}
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  %l = loom.reduce sum %x dims [0] : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{cannot cut @f into pp=2 x 1 chunks: the model has 1 layers; 2 pipeline chunks need at least one layer each (use fewer stages or virtual chunks, or more layers)}}
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  %l = loom.reduce sum %x dims [0] {loom.layer = 0 : i64} : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  %a = loom.neg %x {loom.layer = 1 : i64} : tensor<4xf32>
  // expected-error @+1 {{layer 0 comes after layer 1; a pipeline cuts a model whose layers run in order}}
  %b = loom.neg %a {loom.layer = 0 : i64} : tensor<4xf32>
  %l = loom.reduce sum %b dims [0] : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  // expected-error @+1 {{loom.layer = 100 is out of range; layers are numbered 0, 1, ... in the order they run}}
  %a = loom.neg %x {loom.layer = 100 : i64} : tensor<4xf32>
  %l = loom.reduce sum %a dims [0] : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Layer 1 reads two values of layer 0.
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  // expected-note @+1 {{the other one}}
  %a = loom.neg %x {loom.layer = 0 : i64} : tensor<4xf32>
  %b = loom.neg %a {loom.layer = 0 : i64} : tensor<4xf32>
  // expected-error @+1 {{two values cross from pipeline chunk 0 to 1; a pipeline passes one activation between chunks}}
  %c = loom.add %a, %b {loom.layer = 1 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %l = loom.reduce sum %c dims [0] : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @f(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4xf32>) {
  %a = loom.neg %x {loom.layer = 0 : i64} : tensor<4xf32>
  %b = loom.neg %a {loom.layer = 1 : i64} : tensor<4xf32>
  %l = loom.reduce sum %b dims [0] : tensor<4xf32> -> tensor<f32>
  // expected-error @+1 {{the loss must come from the last pipeline chunk}}
  return %l, %a : tensor<f32>, tensor<4xf32>
}

// -----

// Layer 1 reads only the model's input: nothing would pass between stages.
// expected-error @+1 {{nothing flows from pipeline chunk 0 to chunk 1}}
func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
  %a = loom.neg %x {loom.layer = 0 : i64} : tensor<4xf32>
  %b = loom.neg %x {loom.layer = 1 : i64} : tensor<4xf32>
  %l = loom.reduce sum %b dims [0] : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// The labels are read in chunk 0 only, so the last chunk cannot count them.
// expected-error @+1 {{the loss's labels are not read by the last pipeline chunk}}
func.func @f(%x: tensor<4xf32>, %labels: tensor<4xi32>) -> tensor<f32> attributes {loom.labels_input = 1 : i64} {
  %m = loom.cast %labels {loom.layer = 0 : i64} : tensor<4xi32> to tensor<4xf32>
  %a = loom.add %x, %m {loom.layer = 0 : i64} : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
  %b = loom.neg %a {loom.layer = 1 : i64} : tensor<4xf32>
  %l = loom.reduce sum %b dims [0] : tensor<4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// expected-error @+1 {{--loom-pipeline cuts one model function; the module has 2}}
module {
  func.func @f() {
    return
  }
  func.func @g() {
    return
  }
}
