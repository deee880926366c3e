#!/usr/bin/env bash
# The training-step benchmark of issue 4: GPT-2 124M (and the tiny model of
# the quick start) at micro-batch 4 x sequence 64 on the CPU backend.
# Prints the compile time and one table row per model.
# Usage: bench/train-gpt2.sh [STEPS]   (default 5 measured steps, 1 warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOOM_BUILD_DIR:-build}
steps=${1:-5}
bash scripts/build.sh loomc train_step > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

compile() { # name, loomc args...
  local name=$1; shift
  local start=$(date +%s.%N)
  ./"$build"/bin/loomc examples/gpt.loom "$@" -o "$work/$name.plan"
  printf '%s: loomc %.2f s\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)" >&2
}
compile gpt2-124m -D seq=64 --micro-batch-size 4 --global-batch-size 4
compile tiny-bytes @examples/configs/tiny-bytes.args

echo "| model      | parameters    | tokens/step | ms/step  | tokens/s | GFLOP/step | GFLOP/s | peak GiB  |"
echo "|------------|---------------|-------------|----------|----------|------------|---------|-----------|"
./"$build"/bin/train_step "$work/gpt2-124m.plan" --steps "$steps" --warmup 1 | sed 's/| gpt        |/| gpt2-124m  |/'
./"$build"/bin/train_step "$work/tiny-bytes.plan" --steps 50 --warmup 5 | sed 's/| gpt        |/| tiny-bytes |/'
