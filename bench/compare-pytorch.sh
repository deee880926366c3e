#!/usr/bin/env bash
# Issue 13's side-by-side: one GPT-2 124M training step (micro-batch 4 x
# sequence 64, f32, dropout 0, AdamW, clipping at 1.0) in Loom, in PyTorch
# eager and with torch.compile, and the machine's SGEMM rate, in one run.
# Prints one table and checks the issue's two aims.
# Usage: bench/compare-pytorch.sh [STEPS]   (default 5 measured steps, 1 warm-up)
# Environment: LOOM_BUILD_DIR (default build); LOOM_BENCH_VENV, the virtual
# environment with torch and transformers (default ~/.cache/loom/bench-venv:
# created, and the two installed from PyPI, when it cannot import them).
# Test-only: neither CI nor any test runs this (PyTorch is a 5 GiB install).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOOM_BUILD_DIR:-build}
steps=${1:-5}
venv=${LOOM_BENCH_VENV:-$HOME/.cache/loom/bench-venv}
bash scripts/build.sh loomc train_step sgemm_rate > /dev/null

# PyPI's torch for Linux x86_64 is the CUDA build (it pulls the nvidia-*
# wheels); it runs on a CPU-only machine, and PyPI has no CPU-only torch.
if ! "$venv/bin/python" -c 'import torch, transformers' 2> /dev/null; then
  echo "compare-pytorch: installing torch and transformers into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch transformers >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load before: $(uptime | sed 's/.*load average/load average/')" >&2

# Dropout 0, as in the PyTorch model (the issue's "dropout 0"): with it Loom's
# plan has no dropout ops at all.
start=$(date +%s.%N)
./"$build"/bin/loomc examples/gpt.loom -D seq=64 -D dropout=0 \
  --micro-batch-size 4 --global-batch-size 4 -o "$work/gpt2.plan"
loomc_s=$(echo "$(date +%s.%N) - $start" | bc)

# The SGEMM rate first, while nothing else of this script runs.
./"$build"/bin/sgemm_rate > "$work/sgemm.txt"
cat "$work/sgemm.txt" >&2
./"$build"/bin/train_step "$work/gpt2.plan" --steps "$steps" --warmup 1 > "$work/loom.txt"
cat "$work/loom.txt" >&2
# A fresh Inductor cache: "compile s" is a cold compilation, as loomc's is.
TORCHINDUCTOR_CACHE_DIR="$work/inductor" \
  "$venv/bin/python" bench/pytorch_gpt2.py --steps "$steps" --warmup 1 > "$work/torch.txt"
cat "$work/torch.txt" >&2
echo "load after: $(uptime | sed 's/.*load average/load average/')" >&2

value() { # file, "key:" -> the number after it
  sed -n "s/^$2 *//p" "$1" | head -1
}
sgemm=$(value "$work/sgemm.txt" "sgemm GFLOP\/s:")
# train_step's row: | model | parameters | tokens/step | ms/step | tokens/s | GFLOP/step | ...
loom_ms=$(awk -F'|' '{gsub(/ /, "", $5); print $5}' "$work/loom.txt")
tokens=$(awk -F'|' '{gsub(/ /, "", $4); print $4}' "$work/loom.txt")
gflop=$(awk -F'|' '{gsub(/ /, "", $7); print $7}' "$work/loom.txt")
eager_ms=$(value "$work/torch.txt" "eager ms\/step:")
compile_ms=$(value "$work/torch.txt" "compile ms\/step:")
compile_s=$(value "$work/torch.txt" "compile s:")

awk -v tokens="$tokens" -v gflop="$gflop" -v sgemm="$sgemm" -v loom="$loom_ms" \
    -v eager="$eager_ms" -v comp="$compile_ms" -v comp_s="$compile_s" \
    -v loomc_s="$loomc_s" '
function row(name, ms) {
  rate = gflop / (ms / 1e3)
  printf "| %-24s | %8.0f | %8.1f | %7.1f | %16.2f | %19.2f |\n",
         name, ms, tokens / (ms / 1e3), rate, ms / eager, rate / sgemm
}
BEGIN {
  print "| system                   | ms/step  | tokens/s | GFLOP/s | vs PyTorch eager | share of SGEMM rate |"
  print "|--------------------------|----------|----------|---------|------------------|---------------------|"
  row("Loom", loom)
  row("PyTorch eager", eager)
  row("torch.compile", comp)
  printf "| %-24s | %8s | %8s | %7.1f | %16s | %19.2f |\n",
         "OpenBLAS SGEMM 2048^3", "-", "-", sgemm, "-", 1
  printf "\nGFLOP/s of every row: Loom'"'"'s plan FLOPs (%.1f GFLOP/step, forward and\n", gflop
  print "backward, optimizer not counted) / the step time; vs PyTorch eager: ms/step"
  print "ratio (lower is faster)."
  printf "Compile: loomc %.2f s; torch.compile'"'"'s first step (cold cache) %s s.\n", loomc_s, comp_s
  printf "Loom/eager = %.2f (aim <= 0.65): %s\n", loom / eager,
         (loom / eager <= 0.65 ? "met" : "not met")
  loom_rate = gflop / (loom / 1e3)
  printf "Loom GFLOP/s / SGEMM = %.2f (aim >= 0.75): %s\n", loom_rate / sgemm,
         (loom_rate / sgemm >= 0.75 ? "met" : "not met")
}'
