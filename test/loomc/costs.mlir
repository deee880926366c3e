// The summary counts a function once per call, and large counts do not overflow.
// RUN: loomc %S/Inputs/calls.mlir --summary | FileCheck %s --check-prefix=CALLS
// RUN: loomc %S/Inputs/huge.mlir --summary | FileCheck %s --check-prefix=HUGE
// RUN: not loomc %S/Inputs/recursive.mlir --summary 2>&1 | FileCheck %s --check-prefix=RECURSIVE

// Per call: matmul 2·8·16·16 = 4096, gelu 5·128 = 640; three calls.
// The parameter is declared once (in @layer) and counted once.
// CALLS: parameters: 256 (1024 bytes)
// CALLS: flops per execution: 14208 (matmul 12288)
// CALLS-DAG: loom.gelu {{ *}}3
// CALLS-DAG: loom.matmul {{ *}}3

// 2^65
// HUGE: flops per execution: 36893488147419103232 (matmul 36893488147419103232)

// RECURSIVE: recursive.mlir:{{[15]}}:1: error: @{{model|helper}} calls itself, directly or through other functions; a model's call graph must be acyclic
func.func @unused() { return }
