// The backward reads recomputed copies of the forward values the mode names
// (docs/memory.md). One layer of the tiny GPT, its training step from loomc.
// RUN: loomc %loom_src_root/examples/gpt.loom -D layers=1 -D hidden=16 -D heads=2 -D seq=8 -D vocab=32 -D dropout=0.1 --micro-batch-size 2 --global-batch-size 2 --emit=step > %t.step.mlir
// RUN: loom-opt %t.step.mlir --loom-recompute=mode=none | FileCheck %s --check-prefix=NONE
// RUN: loom-opt %t.step.mlir --loom-recompute=mode=selective | FileCheck %s --check-prefix=SELECTIVE
// RUN: loom-opt %t.step.mlir --loom-recompute=mode=full | FileCheck %s --check-prefix=FULL
// RUN: loom-opt %t.step.mlir --loom-recompute="mode=none per-layer=0:full" | FileCheck %s --check-prefix=FULL
// RUN: not loom-opt %t.step.mlir --loom-recompute=mode=most 2>&1 | FileCheck %s --check-prefix=BADMODE
// RUN: not loom-opt %t.step.mlir --loom-recompute="per-layer=3:full" 2>&1 | FileCheck %s --check-prefix=BADLAYER
// RUN: not loom-opt %t.step.mlir --loom-recompute="per-layer=0-full" 2>&1 | FileCheck %s --check-prefix=BADENTRY

// Nothing is recomputed; the softmax's backward reads the forward's.
// NONE: loom.layer_recompute = ["none"]
// NONE-NOT: loom.recomputed
// NONE: %[[P:.*]] = loom.softmax
// NONE: loom.softmax_grad %[[P]],

// Selective: the scores, the softmax and its dropout are made again just
// before the backward reads them, from the stored q and k.
// SELECTIVE: loom.layer_recompute = ["selective"]
// SELECTIVE: %[[Q:[0-9]+]] = loom.transpose
// SELECTIVE: %[[K:[0-9]+]] = loom.transpose
// SELECTIVE: %[[P:[0-9]+]] = loom.softmax
// SELECTIVE: loom.cross_entropy_grad
// SELECTIVE: %[[S2:.*]] = loom.matmul %[[Q]], %[[K]] transposed {loom.layer = 0 : i64, loom.recomputed}
// SELECTIVE: %[[P2:.*]] = loom.softmax %[[S2]] causal {{.*}}loom.recomputed
// SELECTIVE: %[[D2:.*]] = loom.dropout %[[P2]] {{.*}}site "layers.0.attention.attention_dropout"{{.*}}loom.recomputed
// SELECTIVE-NOT: loom.layernorm {{.*}}loom.recomputed
// SELECTIVE: loom.softmax_grad %[[P2]],

// Full: the layer's layernorms are recomputed too (from the layer's input).
// FULL: loom.layer_recompute = ["full"]
// FULL: loom.cross_entropy_grad
// FULL: loom.layernorm {{.*}}loom.recomputed
// FULL: loom.gelu {{.*}}loom.recomputed

// BADMODE: mode 'most' is not none, selective or full
// BADLAYER: the model has no layer 3 (its layers are 0 to 0)
// BADENTRY: per-layer entry '0-full' is not LAYER:none|selective|full
