// loomc --summary on the GPT-2 small layer. The expected numbers come from the
// architecture, not from Loom: 12·h² + 13·h parameters and 24·s·h² + 4·s²·h
// forward matmul FLOPs (Narayanan et al. 2021) for h = 768, s = 1024.
// RUN: loomc %loom_src_root/examples/gpt2_layer.mlir --summary | FileCheck %s
// RUN: loomc %loom_src_root/examples/gpt2_layer.mlir --summary --json | FileCheck %s --check-prefix=JSON

// CHECK: parameters: 7087872 (28351488 bytes)
// qkv: 768·2304 + 2304
// CHECK-DAG: layers.*.attention.qkv {{ *}}1771776
// fc1: 768·3072 + 3072
// CHECK-DAG: layers.*.mlp.fc1 {{ *}}2362368
// Non-matmul FLOPs, by the rules of docs/dialect.md with N = 1024·768,
// H = 12·1024·1024 (attention probabilities), F = 1024·3072:
// layernorm 2·7N, biases 1024·2304 + N + F + N, softmax (scaled, causal) 7H,
// dropouts 2H + 2N + 2N, residual adds 2N, gelu (tanh) 9F = 164364288.
// CHECK: flops per execution: 17881104384 (matmul 17716740096)
// CHECK-DAG: loom.matmul {{ *}}6
// CHECK-DAG: loom.parameter {{ *}}12
// CHECK: parameter tensors:
// CHECK: layers.*.attention.qkv.weight {{ *}}[768, 2304] {{ *}}f32

// JSON-DAG: "parameters": 7087872
// JSON-DAG: "matmul_flops": 17716740096
// JSON-DAG: "name": "layers.0.mlp.fc2.weight"
