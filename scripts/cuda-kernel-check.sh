#!/usr/bin/env bash
# Compiles the CUDA kernel library (or the named kernel files) for sm_90 with
# the toolkit's nvcc, as NVRTC will: Philox.h, Common.cuh, then the files.
# Prints ptxas's registers and spills per kernel. Needs the toolkit, no GPU.
#   bash scripts/cuda-kernel-check.sh [runtime/cuda/kernels/Norm.cu ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
nvcc="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  for f in $(awk '/^set\(LOOM_CUDA_KERNEL_FILES/{on=1} on{print} on&&/\)/{exit}' "$root/runtime/CMakeLists.txt" |
               sed 's/set(LOOM_CUDA_KERNEL_FILES//; s/)//' | tr ' ' '\n' | grep -v '^$'); do
    files+=("$root/runtime/cuda/kernels/$f.cu")
  done
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat "$root/include/loom/runtime/Philox.h" "$root/runtime/cuda/kernels/Common.cuh" "${files[@]}" > "$tmp/library.cu"
"$nvcc" -arch=sm_90 -std=c++17 -cubin -Xptxas -v -o "$tmp/library.cubin" "$tmp/library.cu" 2>&1 |
  grep -v '^ptxas info    : Compiling entry\|bytes gmem\|Function properties' || true
test -s "$tmp/library.cubin" && echo "ok: ${#files[@]} files compile for sm_90"
