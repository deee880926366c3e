#!/usr/bin/env bash
# Training steps of one model on several meshes (tensor, sequence and data
# parallelism), every rank a thread of this process on the CPU backend.
# Prints one table row per mesh. The plan's FLOPs are what all ranks execute
# (a replicated op counts once per rank; with --recompute, what is
# recomputed counts too), so GFLOP/s is the rate of the counted work.
# Usage: bench/train-mesh.sh [STEPS]   (default 5 measured steps, 1 warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LOOM_BUILD_DIR:-build}
steps=${1:-5}
bash scripts/build.sh loomc train_step > /dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=(-D layers=4 -D hidden=256 -D heads=8 -D seq=128 -D vocab=512 -D dropout=0.1
       --micro-batch-size 4 --global-batch-size 16)

echo "| mesh                  | ranks | parameters    | tokens/step | ms/step  | tokens/s | GFLOP/step | GFLOP/s | peak GiB  |"
echo "|-----------------------|-------|---------------|-------------|----------|----------|------------|---------|-----------|"
for mesh in "" "tp=2" "tp=2 sp" "dp=2" "dp=2,tp=2" "tp=4" "pp=2 1f1b" \
            "pp=2 interleaved:2" "pp=2 gpipe" "dp=2,pp=2,tp=2 1f1b"; do
  args=()
  case "$mesh" in
    "") name="1 rank" ;;
    *sp) args=(--mesh "${mesh% sp}" --sequence-parallel); name="${mesh% sp} + SP" ;;
    *" "*) args=(--mesh "${mesh% *}" --schedule "${mesh#* }"); name="$mesh" ;;
    *) args=(--mesh "$mesh"); name="$mesh" ;;
  esac
  ./"$build"/bin/loomc examples/gpt.loom "${model[@]}" "${args[@]}" -o "$work/p.plan"
  ranks=$(./"$build"/bin/loom-run "$work/p.plan" --dump | sed -n 's/^  mesh dp=\([0-9]*\) pp=\([0-9]*\) tp=\([0-9]*\).*/\1 \2 \3/p' | head -1 | awk '{print $1*$2*$3}')
  ./"$build"/bin/train_step "$work/p.plan" --steps "$steps" --warmup 1 |
    sed "s/^| gpt        |/| $(printf '%-21s' "$name") | $(printf '%5s' "$ranks") |/"
done
