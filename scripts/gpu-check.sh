#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, as one prepared script
# (docs/cuda.md, "Checking on a GPU"). Two halves, because the GPU machine
# has no MLIR (runtime-only build, no loomc):
#
#   bash scripts/gpu-check.sh prepare DIR    # here: compile the plans into DIR
#   bash scripts/gpu-check.sh run DIR [OUT]  # there: build, test, compare, bench
#
# `run` builds the runtime-only tree, runs the device tests (OnTheGpu.*, and
# the nccl communicator's NcclOnTheGpu.* on a 1-rank world), the
# conformance suite (it instantiates `cuda` when a GPU is present), trains
# every carried plan 20 steps on cpu and on cuda and compares the losses
# (1e-5 relative) and gradient norms (1e-4), and runs bench/gpu-gpt2.sh if
# its plans were prepared. Logs and tables go to OUT (default DIR/out; on
# the device machine pass $OUT). Exit status: 0 when every check passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
mode=${1:-}
dir=${2:-}
if [ -z "$mode" ] || [ -z "$dir" ]; then
  echo "usage: scripts/gpu-check.sh prepare DIR | run DIR [OUT]" >&2
  exit 2
fi
meshes=("one:" "tp2:--mesh tp=2" "dp2:--mesh dp=2" "pp2:--mesh pp=2 --global-batch-size 8" "dp2tp2:--mesh dp=2,tp=2")
model=(-D layers=2 -D hidden=64 -D heads=4 -D seq=64 -D vocab=256 -D dropout=0.1
       --micro-batch-size 4 --global-batch-size 8 --lr 2e-3 --warmup 5)

if [ "$mode" = prepare ]; then
  build=${LOOM_BUILD_DIR:-build}
  mkdir -p "$dir"
  for entry in "${meshes[@]}"; do
    name=${entry%%:*}
    # shellcheck disable=SC2086
    "$build/bin/loomc" examples/gpt.loom "${model[@]}" ${entry#*:} -o "$dir/$name.plan" || exit 1
  done
  cat /usr/share/common-licenses/* > "$dir/text.txt"
  if [ "${LOOM_GPU_BENCH:-1}" = 1 ]; then
    LOOM_BUILD_DIR=$build bash bench/gpu-gpt2.sh prepare "$dir/bench" || exit 1
  fi
  echo "prepared $dir: carry it (and this tree) to the GPU machine"
  exit 0
fi

[ "$mode" = run ] || { echo "unknown mode $mode" >&2; exit 2; }
out=${3:-$dir/out}
mkdir -p "$out"
failed=0
note() { echo "$*" | tee -a "$out/summary.txt"; }
nvidia-smi -L > "$out/nvidia-smi.txt" 2>&1 || true

start=$(date +%s)
if ! LOOM_BUILD_COMPILER=OFF bash scripts/build.sh > "$out/build.log" 2>&1; then
  note "FAIL build (see build.log)"
  exit 1
fi
note "build: $(( $(date +%s) - start )) s"
bin="build-runtime/bin"
tests="build-runtime/test"

"$tests/runtime/loom-runtime-cuda-tests" > "$out/device-tests.log" 2>&1 &&
  note "ok   device tests (loom-runtime-cuda-tests)" ||
  { note "FAIL device tests (device-tests.log)"; failed=1; }
# The nccl communicator on a 1-rank world (NCCL refuses two ranks on one
# GPU: docs/distributed.md, "NCCL"); they are in the binary above, and are
# counted here so that a build without NCCL (all skipped) shows.
"$tests/runtime/loom-runtime-cuda-tests" --gtest_filter='NcclOnTheGpu.*' > "$out/nccl-tests.log" 2>&1 &&
  [ "$(grep -c '^\[       OK' "$out/nccl-tests.log")" -gt 0 ] &&
  note "ok   nccl on one GPU ($(grep -c '^\[       OK' "$out/nccl-tests.log") tests ran)" ||
  { note "FAIL nccl on one GPU (nccl-tests.log: none ran, or one failed)"; failed=1; }
"$tests/conformance/loom-conformance-tests" > "$out/conformance.log" 2>&1 &&
  note "ok   conformance suite ($(grep -c '^\[       OK' "$out/conformance.log") passed, $(grep '^\[       OK' "$out/conformance.log" | grep '/cuda_' | grep -vc 'cuda_emulated') of them on cuda)" ||
  { note "FAIL conformance suite (conformance.log)"; failed=1; }
"$tests/cuda/loom-cuda-kernel-tests" > "$out/emulation.log" 2>&1 ||
  { note "FAIL kernels under emulation (emulation.log)"; failed=1; }

for entry in "${meshes[@]}"; do
  name=${entry%%:*}
  for backend in cpu cuda; do
    "$bin/loom-run" "$dir/$name.plan" --steps 20 --data "$dir/text.txt" --backend "$backend" \
      --log-json "$out/$name.$backend.json" > "$out/$name.$backend.log" 2>&1 ||
      { note "FAIL $name on $backend ($name.$backend.log: $(grep -m1 'loom-run' "$out/$name.$backend.log"))"; failed=1; }
  done
  if python3 test/loom-run/Inputs/losses.py near "$out/$name.cpu.json" "$out/$name.cuda.json" 1e-5 1e-4 \
       > "$out/$name.compare.txt" 2>&1; then
    note "ok   $name: cuda trains with the cpu's losses over 20 steps"
  else
    note "FAIL $name: cuda vs cpu ($name.compare.txt)"; failed=1
  fi
done
"$bin/loom-run" "$dir/one.plan" --steps 20 --data "$dir/text.txt" --backend cuda --no-cuda-graph \
  --log-json "$out/one.eager.json" > "$out/one.eager.log" 2>&1 &&
  python3 test/loom-run/Inputs/losses.py near "$out/one.cpu.json" "$out/one.eager.json" 1e-5 1e-4 \
    > /dev/null 2>&1 && note "ok   one: --no-cuda-graph too" ||
  { note "FAIL one --no-cuda-graph (one.eager.log)"; failed=1; }

if [ -f "$dir/bench/manifest.tsv" ]; then
  LOOM_BUILD_DIR=build-runtime LOOM_BENCH_LOGS="$out/bench" bash bench/gpu-gpt2.sh run "$dir/bench" \
    > "$out/bench.txt" 2>&1 || note "bench/gpu-gpt2.sh exited $? (bench.txt)"
  note "bench: see bench.txt"
fi
note "total: $(( $(date +%s) - start )) s"
exit $failed
