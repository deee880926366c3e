#!/usr/bin/env bash
# Training steps of one model on several meshes, with the ranks as threads of
# one loom-run (the local communicator) and as processes: mpirun (the mpi
# communicator) and a torchrun-style launch (the gloo communicator, through
# test/distributed/Inputs/launch.py), on the CPU backend. Prints one table row
# per mesh and launch: the median step time and tokens/s of the steps after
# the first two, and the rate against the threads'. Every launch of a mesh
# trains to the same losses (checked: the run stops if they differ).
# Usage: bench/train-processes.sh [STEPS]   (default 12 steps, the first 2 not counted)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOOM_BUILD_DIR:-build}
steps=${1:-12}
bash scripts/build.sh loomc loom-run > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat /usr/share/common-licenses/* > "$work/text.txt"
model=(-D layers=4 -D hidden=256 -D heads=8 -D seq=128 -D vocab=512 -D dropout=0.1
       --micro-batch-size 4 --global-batch-size 16)
mpirun=(mpirun --oversubscribe -np)
[ "$(id -u)" -eq 0 ] && mpirun=(mpirun --allow-run-as-root --oversubscribe -np)

median() { # LOG: the median seconds per step and tokens/s after step 2
  python3 - "$1" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
times, last = [], None
for r in rows:
    if last is not None and r["step"] > 2:
        times.append(r["elapsed_s"] - last)
    last = r["elapsed_s"]
t = statistics.median(times)
tokens = 16 * 128
print(f"{t * 1000:.1f} {tokens / t:.0f}")
EOF
}

echo "| mesh                | ranks | launch            | comm  | ms/step | tokens/s | vs threads |"
echo "|---------------------|-------|-------------------|-------|---------|----------|------------|"
for mesh in "tp=2" "dp=2,tp=2" "dp=4" "dp=2,pp=2,tp=2"; do
  "$build"/bin/loomc examples/gpt.loom "${model[@]}" --mesh "$mesh" -o "$work/p.plan"
  ranks=$(( $(echo "$mesh" | tr ',' '\n' | cut -d= -f2 | paste -sd'*') ))
  run=(loom-run "$work/p.plan" --steps "$steps" --data "$work/text.txt" --no-shuffle)
  "$build"/bin/"${run[@]}" --log-json "$work/threads.json" > /dev/null 2>&1
  "${mpirun[@]}" "$ranks" "$build"/bin/"${run[@]}" --log-json "$work/mpi.json" > /dev/null 2>&1
  PATH="$build/bin:$PATH" python3 test/distributed/Inputs/launch.py torchrun "$ranks" "$work/tr" -- \
    "${run[@]}" --log-json "$work/gloo.json" > /dev/null
  for log in mpi gloo; do
    python3 test/loom-run/Inputs/losses.py same "$work/threads.json" "$work/$log.json" > /dev/null ||
      { echo "train-processes: $mesh: the $log run's losses differ from the threads'" >&2; exit 1; }
  done
  read -r tms ttok < <(median "$work/threads.json")
  for launch in "threads (one process):local:threads" "mpirun -np $ranks:mpi:mpi" "torchrun-style:gloo:gloo"; do
    IFS=: read -r name comm log <<< "$launch"
    read -r ms tok < <(median "$work/$log.json")
    printf "| %-19s | %5s | %-17s | %-5s | %7s | %8s | %9.2fx |\n" "$mesh" "$ranks" "$name" "$comm" "$ms" "$tok" \
      "$(python3 -c "print($tok / $ttok)")"
  done
done
