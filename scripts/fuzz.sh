#!/usr/bin/env bash
# Builds the fuzz targets (clang-19, libFuzzer, ASan) in build-fuzz/ and runs
# each for N seconds (default 60):
# - loom-parser-fuzzer: the model-language front end, seeded with the example
#   models, the standard library and every error case of the lit tests;
# - loom-plan-fuzzer: the plan loader (validatePlan) and the CPU executor,
#   seeded with plan payloads loomc writes: the committed
#   test/fuzz/plan-seeds/, and fresh ones when the normal build has
#   build/bin/loomc.
# Exits non-zero, with the crashing input under build-fuzz/fuzz-artifacts/, if
# either finds a crash, a hang or a sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
dir=${LOOM_FUZZ_BUILD_DIR:-build-fuzz}
loomc=${LOOM_LOOMC:-build/bin/loomc}

if [ ! -f "$dir/build.ninja" ]; then
  cmake -G Ninja -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
    -DLOOM_BUILD_FUZZERS=ON -DLOOM_BUILD_TESTS=OFF -DLOOM_ENABLE_CUDA=OFF
fi
ninja -C "$dir" -j "$(nproc)" loom-parser-fuzzer loom-plan-fuzzer

seeds="$dir/fuzz-seeds"
rm -rf "$seeds"
mkdir -p "$dir/fuzz-corpus" "$dir/plan-corpus" "$seeds/models" "$seeds/plans" \
  "$seeds/plan-files" "$dir/fuzz-artifacts"
cp examples/*.loom lib/Frontend/stdlib/*.loom "$seeds/models/"
/usr/lib/llvm-19/bin/split-file test/loomc/language-errors.test "$seeds/models/errors"

# Plan seeds: the payload of a plan file is its bytes after the 20-byte
# header (LOOMPLAN, version, size), less the 4-byte CRC.
cp test/fuzz/plan-seeds/*.payload "$seeds/plans/"
if [ -x "$loomc" ]; then
  tiny="-D layers=1 -D hidden=8 -D heads=2 -D seq=4 -D vocab=16 --micro-batch-size 2"
  while read -r name args; do
    # shellcheck disable=SC2086
    if "$loomc" examples/gpt.loom $tiny $args -o "$seeds/plan-files/$name.plan" 2>/dev/null; then
      tail -c +21 "$seeds/plan-files/$name.plan" | head -c -4 >"$seeds/plans/$name.payload"
    fi
  done <<'PLANS'
f32 --global-batch-size 4
f16 --global-batch-size 4 --precision f16
bf16-dp2-tp2-sp --global-batch-size 8 --precision bf16 --mesh dp=2,tp=2 --sequence-parallel
pp2-1f1b -D layers=2 --global-batch-size 4 --mesh pp=2 --schedule 1f1b
pp2-interleaved -D layers=4 --global-batch-size 4 --mesh pp=2 --schedule interleaved:2
PLANS
fi

status=0
# run NAME LOG ARGS...: one target for $seconds; a failure is kept in $status.
run() {
  local name=$1 log=$2
  shift 2
  echo "fuzz: running $name for ${seconds} s"
  set +e
  # allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its slabs in our
  # instrumented code but not in Debian's uninstrumented MLIR libraries,
  # which share the slabs; that mix reports false use-after-poison. Every
  # other ASan check stays on.
  ASAN_OPTIONS=allow_user_poisoning=0 "$dir/bin/$name" "$@" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$dir/fuzz-artifacts/" -print_final_stats=1 >"$log" 2>&1
  local code=$?
  set -e
  # The log's progress lines are noise; the summary and any report are not.
  grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -40
  if [ "$code" -ne 0 ]; then
    echo "fuzz: $name FAILED (exit $code); the input is in $dir/fuzz-artifacts/" >&2
    status=$code
  fi
}
run loom-parser-fuzzer "$dir/fuzz.log" "$dir/fuzz-corpus" "$seeds/models" \
  -max_len=8192
# Plans are tens of KB; -malloc_limit_mb catches an allocation a plan could
# make absurd before the OS does.
run loom-plan-fuzzer "$dir/plan-fuzz.log" "$dir/plan-corpus" "$seeds/plans" \
  -max_len=131072 -malloc_limit_mb=2048
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
echo "fuzz: no crash in ${seconds} s per target"
