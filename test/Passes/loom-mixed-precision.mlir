// RUN: loom-opt %s --loom-mixed-precision=compute=bf16 | FileCheck %s --check-prefix=BF16
// RUN: loom-opt %s --loom-mixed-precision=compute=f16 --loom-autodiff | FileCheck %s --check-prefix=GRAD
// RUN: not loom-opt %s --loom-mixed-precision=compute=f8 2>&1 | FileCheck %s --check-prefix=BAD

// Parameters stay f32 and are cast where read; activations take the compute
// type; cross-entropy reads bf16 logits and returns an f32 loss.
// BF16-LABEL: func.func @f
// BF16-SAME: -> tensor<f32>
// BF16: %[[W:.*]] = loom.parameter "w" {{.*}} : tensor<8x16xf32>
// BF16: %[[WL:.*]] = loom.cast %[[W]] : tensor<8x16xf32> to tensor<8x16xbf16>
// BF16: loom.matmul %{{.*}}, %[[WL]] : tensor<4x8xbf16>, tensor<8x16xbf16> -> tensor<4x16xbf16>
// BF16: loom.gelu {{.*}} : tensor<4x16xbf16>
// BF16: loom.cross_entropy {{.*}} : tensor<4x16xbf16>, tensor<4xi32> -> tensor<f32>

// The cast's gradient rule returns the parameter's gradient in f32.
// GRAD-LABEL: func.func @f
// GRAD-SAME: -> (tensor<f32>, tensor<4x8xf32> {loom.grad = "x"}, tensor<8x16xf32> {loom.grad = "w"})
// GRAD: %[[DW:.*]] = loom.cast %{{.*}} : tensor<8x16xf16> to tensor<8x16xf32>
// GRAD: return %{{.*}}, %{{.*}}, %[[DW]]

// BAD: compute type 'f8' is not bf16 or f16
func.func @f(%labels: tensor<4xi32>) -> tensor<f32> {
  %x = loom.parameter "x" init(#loom.normal<std = 1.000000e+00>) : tensor<4x8xf32>
  %w = loom.parameter "w" init(#loom.normal<std = 2.000000e-02>) : tensor<8x16xf32>
  %y = loom.matmul %x, %w : tensor<4x8xf32>, tensor<8x16xf32> -> tensor<4x16xf32>
  %g = loom.gelu %y : tensor<4x16xf32>
  %l = loom.cross_entropy %g, %labels : tensor<4x16xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}
