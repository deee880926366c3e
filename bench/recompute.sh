#!/usr/bin/env bash
# Issue 16's side-by-side: what each recomputation choice costs in memory
# and time, on the CPU, in Loom (one rank, and a two-stage 1F1B pipeline)
# and in PyTorch (Hugging Face GPT-2 with and without gradient
# checkpointing, SDPA and eager attention), in one run. Prints one table.
# Usage: bench/recompute.sh [STEPS]   (default 3 measured steps after one warm-up)
# Environment: LOOM_BUILD_DIR (default build); LOOM_BENCH_VENV (default
# ~/.cache/loom/bench-venv, torch and transformers: bench/compare-pytorch.sh
# installs them); without it the PyTorch rows are left out, and say so.
# Never run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOOM_BUILD_DIR:-build}
steps=${1:-3}
venv=${LOOM_BENCH_VENV:-$HOME/.cache/loom/bench-venv}
bash scripts/build.sh loomc loom-run > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat /usr/share/common-licenses/* > "$work/text.txt"

# A model whose attention matters: hidden 256, 8 heads, 4 layers, sequence
# 512, vocabulary 512, dropout 0, f32; 4 sequences per step.
H=256 A=8 L=4 S=512 V=512 B=4
model="-D hidden=$H -D heads=$A -D layers=$L -D seq=$S -D vocab=$V -D dropout=0.0"
echo "load before: $(uptime | sed 's/.*load average/load average/')" >&2

# name, mesh flags, batch flags
run_loom() {
  local name=$1 mesh=$2 batch=$3 mode=$4
  local plan="$work/$name.$mode.plan"
  local t0 t1
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$build/bin/loomc" examples/gpt.loom $model $batch $mesh --recompute "$mode" -o "$plan"
  t1=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$build/bin/loomc" examples/gpt.loom $model $batch $mesh --recompute "$mode" --explain --json > "$work/$name.$mode.json"
  "$build/bin/loom-run" "$plan" --steps $((steps + 1)) --data "$work/text.txt" \
    --log-json "$work/$name.$mode.log" --memory-report > "$work/$name.$mode.out" 2> /dev/null
  python3 - "$name" "$mode" "$work/$name.$mode.json" "$work/$name.$mode.log" \
    "$work/$name.$mode.out" "$(echo "$t1 - $t0" | bc)" "$((B * S))" << 'PY'
import json, re, statistics, sys
name, mode, explain, log, out, compile_s, tokens = sys.argv[1:]
report = json.load(open(explain))
stage0 = report["stages"][0]
steps = [json.loads(l) for l in open(log) if l.strip()]
tps = statistics.median(s["tokens_per_s"] for s in steps[1:])
ms = int(tokens) / tps * 1e3
mem = [tuple(map(int, m.groups())) for m in
       re.finditer(r"memory: rank (\d+) \(stage (\d+)\): arenas (\d+) bytes, "
                   r"runtime (\d+) bytes, total (\d+) bytes; process peak RSS (\d+)",
                   open(out).read())]
measured = max(m[4] for m in mem if m[1] == 0)
rss = mem[0][5]
hw = report["flops"]["hardware"] / 1e9
print(f"| Loom {name:<10} | {mode:<9} | {stage0['allocated_bytes']/2**20:9.1f} | "
      f"{measured/2**20:9.1f} | {rss/2**20:8.0f} | {ms:8.0f} | {tps:8.0f} | "
      f"{hw:8.2f} | {float(compile_s):7.2f} |")
PY
}

echo
echo "| run             | recompute | predicted MiB (stage 0) | allocated MiB (stage 0) | peak RSS MiB | ms/step | tokens/s | hardware GFLOP/step | compile s |"
echo "|-----------------|-----------|-----------|-----------|----------|----------|----------|----------|---------|"
for mode in none selective full; do
  run_loom "1 rank" "" "--micro-batch-size $B --global-batch-size $B" "$mode"
done
for mode in none selective full; do
  run_loom "pp=2 1f1b" "--mesh pp=2 --schedule 1f1b" "--micro-batch-size 1 --global-batch-size $B" "$mode"
done

if "$venv/bin/python" -c 'import torch, transformers' 2> /dev/null; then
  for attention in sdpa eager; do
    for ckpt in "" --checkpoint; do
      out=$("$venv/bin/python" bench/pytorch_recompute.py --hidden $H --layers $L \
        --heads $A --seq $S --vocab $V --batch $B --steps "$steps" \
        --attention $attention $ckpt 2> /dev/null)
      ms=$(echo "$out" | sed -n 's/^ms\/step: //p')
      before=$(echo "$out" | sed -n 's/^rss before bytes: //p')
      peak=$(echo "$out" | sed -n 's/^rss peak bytes: //p')
      python3 -c "
ms, before, peak = $ms, $before, $peak
mode = 'full' if '$ckpt' else 'none'
print(f'| PyTorch {\"$attention\":<7} | {mode:<9} |         - | {(peak - before)/2**20:9.1f} | {peak/2**20:8.0f} | {ms:8.0f} | {$B * $S / ms * 1e3:8.0f} |        - |       - |')"
    done
  done
  echo
  echo "PyTorch's 'allocated' column is its peak RSS less the RSS after building the model and AdamW (the step's own memory, roughly); Loom's is what its executors allocated for stage 0's rank."
else
  echo
  echo "(no PyTorch rows: $venv has no torch and transformers; bench/compare-pytorch.sh installs them)"
fi
echo "load after: $(uptime | sed 's/.*load average/load average/')" >&2
