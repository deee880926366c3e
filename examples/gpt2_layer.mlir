// One transformer layer of GPT-2 small (hidden 768, 12 heads, sequence 1024,
// batch 1), written by hand in the loom dialect: pre-LN attention and MLP
// blocks with residuals, as in GPT-2 and Megatron's GPT.
//
// The model language (examples/*.loom) will generate IR of this shape; until
// then this file is what `loomc --summary` reads in the quick start.
//
// Parameters: 12·h² + 13·h = 7,087,872. Forward matmul FLOPs:
// 24·s·h² + 4·s²·h = 17,716,740,096 (Narayanan et al. 2021, per layer).

func.func @gpt2_layer(%x: tensor<1x1024x768xf32>) -> tensor<1x1024x768xf32> {
  // --- attention block: x + dropout(proj(attention(layernorm(x))))
  %ln1_w = loom.parameter "layers.0.ln_1.weight" init(#loom.ones) : tensor<768xf32>
  %ln1_b = loom.parameter "layers.0.ln_1.bias" init(#loom.zeros) : tensor<768xf32>
  %h = loom.layernorm %x, %ln1_w, %ln1_b : tensor<1x1024x768xf32>, tensor<768xf32>, tensor<768xf32>

  %qkv_w = loom.parameter "layers.0.attention.qkv.weight" init(#loom.normal<std = 0.02>) : tensor<768x2304xf32>
  %qkv_b = loom.parameter "layers.0.attention.qkv.bias" init(#loom.zeros) : tensor<2304xf32>
  %qkv_mm = loom.matmul %h, %qkv_w : tensor<1x1024x768xf32>, tensor<768x2304xf32> -> tensor<1x1024x2304xf32>
  %qkv = loom.add %qkv_mm, %qkv_b : tensor<1x1024x2304xf32>, tensor<2304xf32> -> tensor<1x1024x2304xf32>
  %q, %k, %v = loom.split %qkv axis 2 : tensor<1x1024x2304xf32> -> tensor<1x1024x768xf32>, tensor<1x1024x768xf32>, tensor<1x1024x768xf32>

  // [b, s, h] -> [b, heads, s, head_dim]
  %q4 = loom.reshape %q : tensor<1x1024x768xf32> -> tensor<1x1024x12x64xf32>
  %qh = loom.transpose %q4 [0, 2, 1, 3] : tensor<1x1024x12x64xf32> -> tensor<1x12x1024x64xf32>
  %k4 = loom.reshape %k : tensor<1x1024x768xf32> -> tensor<1x1024x12x64xf32>
  %kh = loom.transpose %k4 [0, 2, 1, 3] : tensor<1x1024x12x64xf32> -> tensor<1x12x1024x64xf32>
  %v4 = loom.reshape %v : tensor<1x1024x768xf32> -> tensor<1x1024x12x64xf32>
  %vh = loom.transpose %v4 [0, 2, 1, 3] : tensor<1x1024x12x64xf32> -> tensor<1x12x1024x64xf32>

  // The attention core: softmax(q·kᵀ / sqrt(64), causal), dropout, ·v.
  %scores = loom.matmul %qh, %kh transposed : tensor<1x12x1024x64xf32>, tensor<1x12x1024x64xf32> -> tensor<1x12x1024x1024xf32>
  %probs = loom.softmax %scores causal scale 0.125 : tensor<1x12x1024x1024xf32>
  %probs_d = loom.dropout %probs rate 0.1 site "layers.0.attention.attention_dropout" : tensor<1x12x1024x1024xf32>
  %ctx = loom.matmul %probs_d, %vh : tensor<1x12x1024x1024xf32>, tensor<1x12x1024x64xf32> -> tensor<1x12x1024x64xf32>

  // [b, heads, s, head_dim] -> [b, s, h]
  %ctx_t = loom.transpose %ctx [0, 2, 1, 3] : tensor<1x12x1024x64xf32> -> tensor<1x1024x12x64xf32>
  %ctx_h = loom.reshape %ctx_t : tensor<1x1024x12x64xf32> -> tensor<1x1024x768xf32>

  %proj_w = loom.parameter "layers.0.attention.proj.weight" init(#loom.scaled_normal<std = 0.02, layers = 12>) : tensor<768x768xf32>
  %proj_b = loom.parameter "layers.0.attention.proj.bias" init(#loom.zeros) : tensor<768xf32>
  %attn_mm = loom.matmul %ctx_h, %proj_w : tensor<1x1024x768xf32>, tensor<768x768xf32> -> tensor<1x1024x768xf32>
  %attn = loom.add %attn_mm, %proj_b : tensor<1x1024x768xf32>, tensor<768xf32> -> tensor<1x1024x768xf32>
  %attn_d = loom.dropout %attn rate 0.1 site "layers.0.attention.output_dropout" : tensor<1x1024x768xf32>
  %x1 = loom.add %x, %attn_d : tensor<1x1024x768xf32>, tensor<1x1024x768xf32> -> tensor<1x1024x768xf32>

  // --- MLP block: x1 + dropout(fc2(gelu(fc1(layernorm(x1)))))
  %ln2_w = loom.parameter "layers.0.ln_2.weight" init(#loom.ones) : tensor<768xf32>
  %ln2_b = loom.parameter "layers.0.ln_2.bias" init(#loom.zeros) : tensor<768xf32>
  %h2 = loom.layernorm %x1, %ln2_w, %ln2_b : tensor<1x1024x768xf32>, tensor<768xf32>, tensor<768xf32>

  %fc1_w = loom.parameter "layers.0.mlp.fc1.weight" init(#loom.normal<std = 0.02>) : tensor<768x3072xf32>
  %fc1_b = loom.parameter "layers.0.mlp.fc1.bias" init(#loom.zeros) : tensor<3072xf32>
  %fc1_mm = loom.matmul %h2, %fc1_w : tensor<1x1024x768xf32>, tensor<768x3072xf32> -> tensor<1x1024x3072xf32>
  %fc1 = loom.add %fc1_mm, %fc1_b : tensor<1x1024x3072xf32>, tensor<3072xf32> -> tensor<1x1024x3072xf32>
  %act = loom.gelu %fc1 approximate tanh : tensor<1x1024x3072xf32>

  %fc2_w = loom.parameter "layers.0.mlp.fc2.weight" init(#loom.scaled_normal<std = 0.02, layers = 12>) : tensor<3072x768xf32>
  %fc2_b = loom.parameter "layers.0.mlp.fc2.bias" init(#loom.zeros) : tensor<768xf32>
  %fc2_mm = loom.matmul %act, %fc2_w : tensor<1x1024x3072xf32>, tensor<3072x768xf32> -> tensor<1x1024x768xf32>
  %fc2 = loom.add %fc2_mm, %fc2_b : tensor<1x1024x768xf32>, tensor<768xf32> -> tensor<1x1024x768xf32>
  %mlp_d = loom.dropout %fc2 rate 0.1 site "layers.0.mlp.dropout" : tensor<1x1024x768xf32>
  %x2 = loom.add %x1, %mlp_d : tensor<1x1024x768xf32>, tensor<1x1024x768xf32> -> tensor<1x1024x768xf32>

  return %x2 : tensor<1x1024x768xf32>
}
