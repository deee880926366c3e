// One matmul of 2·2^30·2^17·2^17 = 2^65 FLOPs, past what an int64 holds
// (a 1T-parameter model's step is ~1e19 FLOPs).
func.func @f(%x: tensor<1073741824x131072xbf16>, %w: tensor<131072x131072xbf16>) -> tensor<1073741824x131072xbf16> {
  %0 = loom.matmul %x, %w : tensor<1073741824x131072xbf16>, tensor<131072x131072xbf16> -> tensor<1073741824x131072xbf16>
  return %0 : tensor<1073741824x131072xbf16>
}
