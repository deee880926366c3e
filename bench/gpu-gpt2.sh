#!/usr/bin/env bash
# The GPU benchmark: GPT-2 124M and 350M training steps, bf16 (loomc
# --precision=bf16: bf16 activations, f32 master weights and gradients),
# sequence 1024, dropout 0, one microbatch per step, on Loom's cuda backend
# and in PyTorch (eager and torch.compile) on the same GPU in the same run.
# Prints one table and checks the issue's first aim at 350M (Loom's tokens/s
# at least PyTorch's, and at least 40% MFU) as PASS/FAIL lines.
#
# Two modes, because the GPU machine has only a runtime build (no loomc):
#   bench/gpu-gpt2.sh prepare DIR       where loomc is: compiles the plans
#                                       into DIR with DIR/manifest.tsv
#   bench/gpu-gpt2.sh run DIR [STEPS]   on the GPU: per model, train_step
#                                       --backend cuda on the largest micro
#                                       batch that fits, then PyTorch
#                                       (default 10 measured steps)
# Environment:
#   LOOM_BUILD_DIR         where bin/loomc and bin/train_step are (default build)
#   LOOM_BENCH_BATCHES_124M, LOOM_BENCH_BATCHES_350M
#                          prepare's micro batches (default "4 8 16 32", "4 8 16")
#   LOOM_TRAIN_STEP        run's train_step (default $LOOM_BUILD_DIR/bin/train_step)
#   LOOM_BENCH_PYTHON      run's Python with torch and transformers (default
#                          ~/.cache/loom/bench-venv/bin/python if there, else python3)
#   LOOM_BENCH_WARMUP      run's warm-up steps per system (default 3)
#   LOOM_DEVICE            run's CUDA device index (default 0)
#   LOOM_PEAK_TFLOPS       the MFU's peak (default 989: H200 SXM dense bf16)
#   LOOM_BENCH_LOGS        where run writes every program's output (default DIR/logs)
# Test-only: neither CI nor any test runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOOM_BUILD_DIR:-build}

usage() {
  echo "usage: bench/gpu-gpt2.sh prepare DIR | run DIR [STEPS]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
mode=$1 dir=$2

# (config file, layers, hidden) of each model; the sequence is 1024 in both.
args_of() { case $1 in 124m) echo examples/configs/gpt2-124m.args ;;
                       350m) echo examples/configs/gpt2-355m.args ;; esac; }
shape_of() { case $1 in 124m) echo "12 768" ;; 350m) echo "24 1024" ;; esac; }
seq=1024

prepare() {
  local loomc=$build/bin/loomc
  if [ ! -x "$loomc" ]; then
    echo "gpu-gpt2: no $loomc: build it (bash scripts/build.sh loomc) or set LOOM_BUILD_DIR" >&2
    exit 2
  fi
  mkdir -p "$dir"
  local manifest=$dir/manifest.tsv
  {
    echo "# bench/gpu-gpt2.sh prepare, $(date -u '+%Y-%m-%d %H:%M UTC'), Loom $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "# loomc examples/gpt.loom @CONFIG -D seq=$seq -D dropout=0 --precision=bf16 --micro-batch-size B --global-batch-size B"
    printf '# model\tmicro_batch\tplan\tcompile_s\tpersistent_bytes\tworkspace_bytes\n'
  } > "$manifest"
  printf '%-5s | %5s | %9s | %14s | %14s | %9s\n' model batch compile_s \
    persistent_MiB workspace_MiB arena_GiB
  local model b plan start secs arenas persistent workspace
  for model in 124m 350m; do
    local batches
    if [ "$model" = 124m ]; then batches=${LOOM_BENCH_BATCHES_124M:-4 8 16 32}
    else batches=${LOOM_BENCH_BATCHES_350M:-4 8 16}; fi
    for b in $batches; do
      local flags=(examples/gpt.loom "@$(args_of "$model")" -D "seq=$seq"
                   -D dropout=0 --precision=bf16
                   --micro-batch-size "$b" --global-batch-size "$b")
      plan=gpt2-$model-b$b.plan
      start=$(date +%s.%N)
      "$loomc" "${flags[@]}" -o "$dir/$plan"
      secs=$(echo "$(date +%s.%N) - $start" | bc)
      # The memory plan's arenas ("arenas: persistent N bytes, workspace M
      # bytes"), what the cuda backend allocates on the device; summed over
      # every line in case a plan has several (pipeline chunks).
      arenas=$("$loomc" "${flags[@]}" --emit=plan-text | grep 'arenas:' || true)
      persistent=$(echo "$arenas" | sed -n 's/.*persistent \([0-9]*\) bytes.*/\1/p' | paste -sd+ | bc)
      workspace=$(echo "$arenas" | sed -n 's/.*workspace \([0-9]*\) bytes.*/\1/p' | paste -sd+ | bc)
      persistent=${persistent:-0} workspace=${workspace:-0}
      printf '%s\t%s\t%s\t%.2f\t%s\t%s\n' "$model" "$b" "$plan" "$secs" \
        "$persistent" "$workspace" >> "$manifest"
      awk -v m="$model" -v b="$b" -v s="$secs" -v p="$persistent" -v w="$workspace" \
        'BEGIN { printf "%-5s | %5d | %9.2f | %14.0f | %14.0f | %9.2f\n",
                 m, b, s, p / 2^20, w / 2^20, (p + w) / 2^30 }'
    done
  done
  echo "gpu-gpt2: plans and $manifest written; on the GPU: bench/gpu-gpt2.sh run $dir"
}

run() {
  local steps=${1:-10} warmup=${LOOM_BENCH_WARMUP:-3}
  local manifest=$dir/manifest.tsv
  [ -f "$manifest" ] || { echo "gpu-gpt2: no $manifest: run 'bench/gpu-gpt2.sh prepare $dir' first" >&2; exit 2; }
  local train_step=${LOOM_TRAIN_STEP:-$build/bin/train_step}
  if [ ! -x "$train_step" ]; then
    echo "gpu-gpt2: no $train_step: build it (bash scripts/build.sh train_step) or set LOOM_BUILD_DIR / LOOM_TRAIN_STEP" >&2
    exit 2
  fi
  local py=${LOOM_BENCH_PYTHON:-}
  if [ -z "$py" ]; then
    py=$HOME/.cache/loom/bench-venv/bin/python
    [ -x "$py" ] || py=python3
  fi
  local logs=${LOOM_BENCH_LOGS:-$dir/logs}
  mkdir -p "$logs"
  local results=$logs/results.tsv
  : > "$results"
  local device=${LOOM_DEVICE:-0}
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv >&2 || true
  fi

  local model
  for model in 124m 350m; do
    # The model's plans, the largest micro batch first.
    local rows
    rows=$(awk -F'\t' -v m="$model" '!/^#/ && $1 == m' "$manifest" | sort -t$'\t' -k2,2nr)
    [ -n "$rows" ] || continue
    local ran=no model_batches
    model_batches=$(echo "$rows" | cut -f2 | paste -sd,)
    while IFS=$'\t' read -r _ b plan _ persistent workspace; do
      local log=$logs/loom-$model-b$b
      echo "gpu-gpt2: Loom $model micro batch $b ($plan)" >&2
      if "$train_step" "$dir/$plan" --backend cuda --device "$device" \
          --steps "$steps" --warmup "$warmup" < /dev/null > "$log.out" 2> "$log.err"; then
        # | model | parameters | tokens/step | ms/step | tokens/s | GFLOP/step | GFLOP/s | max RSS GiB |
        awk -F'|' -v m="$model" -v b="$b" -v mem=$((persistent + workspace)) \
          '{ gsub(/ /, ""); printf "%s\tLoom cuda\t%s\t%s\t%s\t%.0f\t%s\tplan\n",
             m, b, $5, $4, $7 * 1e9, mem }' "$log.out" >> "$results"
        ran=yes
        break
      fi
      if grep -qiE 'cannot allocate|out of memory|cudaErrorMemoryAllocation' "$log.err"; then
        echo "gpu-gpt2: Loom $model micro batch $b: out of memory, trying a smaller one: $(tail -1 "$log.err")" >&2
        continue
      fi
      if grep -qiE 'the cuda backend:|no usable GPU|without the CUDA toolkit|there is no GPU' "$log.err"; then
        echo "gpu-gpt2: train_step has no GPU to run on, so nothing was measured:" >&2
        sed 's/^/  /' "$log.err" >&2
        echo "gpu-gpt2: run this on the GPU machine, with a train_step built with the CUDA toolkit" >&2
        exit 3
      fi
      echo "gpu-gpt2: Loom $model micro batch $b failed (not out of memory):" >&2
      sed 's/^/  /' "$log.err" >&2
      ran=failed
      break
    done <<< "$rows"
    [ "$ran" = yes ] || printf '%s\tLoom cuda\t-\t-\t-\t-\t-\tplan\n' "$model" >> "$results"

    # PyTorch on the same model and GPU, trying the same micro batches.
    local log=$logs/torch-$model
    echo "gpu-gpt2: PyTorch $model, micro batches $model_batches" >&2
    if TORCHINDUCTOR_CACHE_DIR=$logs/inductor-$model PYTHONUNBUFFERED=1 \
        "$py" bench/pytorch_gpt2.py --device cuda --dtype bf16 --model "$model" \
        --seq $seq --batch "$model_batches" --steps "$steps" --warmup "$warmup" \
        > "$log.out" 2> "$log.err"; then :; else
      echo "gpu-gpt2: PyTorch $model failed:" >&2
      tail -5 "$log.err" | sed 's/^/  /' >&2
    fi
    local params
    params=$(sed -n 's/^params: *//p' "$log.out")
    read -r layers hidden <<< "$(shape_of "$model")"
    local sys name
    for sys in eager compile; do
      [ "$sys" = eager ] && name="PyTorch eager" || name="PyTorch torch.compile"
      local b ms peak
      b=$(sed -n "s/^$sys batch: *//p" "$log.out")
      ms=$(sed -n "s/^$sys ms\/step: *//p" "$log.out")
      peak=$(sed -n "s/^$sys peak bytes: *//p" "$log.out")
      if [ -z "$ms" ] || [ -z "$params" ]; then
        printf '%s\t%s\t%s\t-\t-\t-\t-\tformula\n' "$model" "$name" "${b:--}" >> "$results"
        continue
      fi
      # llm.c's count (GPU-NOTES.md 1.5): 6N + 6·L·C·T FLOPs per token.
      awk -v m="$model" -v n="$name" -v b="$b" -v ms="$ms" -v N="$params" \
        -v L="$layers" -v C="$hidden" -v T=$seq -v peak="${peak:--}" \
        'BEGIN { tok = b * T; printf "%s\t%s\t%s\t%s\t%d\t%.0f\t%s\tformula\n",
                 m, n, b, ms, tok, (6 * N + 6 * L * C * T) * tok, peak }' >> "$results"
    done
  done
  report "$results"
}

# The table and the aims, from run's results.tsv: model, system, micro batch,
# ms/step, tokens/step, FLOPs/step, peak bytes, which FLOP count.
report() {
  awk -F'\t' -v peak="${LOOM_PEAK_TFLOPS:-989}" '
  { model[NR] = $1; sys[NR] = $2; b[NR] = $3; ms[NR] = $4; tok[NR] = $5
    fl[NR] = $6; mem[NR] = $7; how[NR] = $8 }
  END {
    printf "| %-5s | %-21s | %5s | %9s | %9s | %8s | %6s | %9s |\n",
           "model", "system", "batch", "ms/step", "tokens/s", "TFLOP/s", "MFU", "peak GiB"
    print  "|-------|-----------------------|-------|-----------|-----------|----------|--------|-----------|"
    for (i = 1; i <= NR; ++i) {
      if (ms[i] == "-") {
        printf "| %-5s | %-21s | %5s | %9s | %9s | %8s | %6s | %9s |\n",
               model[i], sys[i], b[i], "-", "-", "-", "-", "-"
        continue
      }
      t = ms[i] / 1e3; rate[i] = tok[i] / t; tf[i] = fl[i] / t / 1e12
      mfu[i] = tf[i] / peak
      printf "| %-5s | %-21s | %5d | %9.1f | %9.0f | %8.1f | %5.1f%% | %9s |\n",
             model[i], sys[i], b[i], ms[i], rate[i], tf[i], 100 * mfu[i],
             (mem[i] == "-" ? "-" : sprintf("%.2f", mem[i] / 2^30))
    }
    print ""
    print "TFLOP/s: Loom rows, the plan'\''s own FLOPs per step (loomc'\''s cost model,"
    print "forward and backward; the optimizer not counted); PyTorch rows, llm.c'\''s"
    print "6*N*tokens + 6*L*C*T*tokens (N parameters, L layers, C hidden, T 1024)."
    printf "MFU: TFLOP/s over %g TFLOP/s (H200 SXM dense bf16; LOOM_PEAK_TFLOPS).\n", peak
    print "Peak: Loom, the plan'\''s arenas (persistent + workspace); PyTorch,"
    print "torch.cuda.max_memory_allocated. Batch: the largest micro batch that fit."
    print ""
    # The issue'\''s first aim, at 350M.
    loom = 0; best = 0
    for (i = 1; i <= NR; ++i) {
      if (model[i] != "350m" || ms[i] == "-") continue
      if (sys[i] == "Loom cuda") loom = i
      else if (rate[i] > best) best = rate[i]
    }
    if (!loom) {
      print "FAIL: 350M Loom tokens/s >= PyTorch'\''s: Loom did not run"
      print "FAIL: 350M Loom MFU >= 40%: Loom did not run"
      exit 0
    }
    if (best > 0)
      printf "%s: 350M Loom tokens/s >= PyTorch'\''s best: %.0f vs %.0f (%.2fx)\n",
             (rate[loom] >= best ? "PASS" : "FAIL"), rate[loom], best, rate[loom] / best
    else
      print "FAIL: 350M Loom tokens/s >= PyTorch'\''s: PyTorch did not run, nothing to compare"
    printf "%s: 350M Loom MFU >= 40%%: %.1f%%\n",
           (mfu[loom] >= 0.40 ? "PASS" : "FAIL"), 100 * mfu[loom]
  }' "$1"
}

case $mode in
  prepare) [ $# -eq 2 ] || usage; prepare ;;
  run) [ $# -le 3 ] || usage; run "${3:-}" ;;
  *) usage ;;
esac
