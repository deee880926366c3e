#!/usr/bin/env bash
# Builds the model-language fuzz target (clang-19, libFuzzer, ASan) in
# build-fuzz/ and runs it for N seconds (default 60), seeded with the example
# models, the standard library and every error case of the lit tests.
# Exits non-zero, with the crashing input under build-fuzz/fuzz-artifacts/, if
# it finds a crash, a hang or a sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
dir=${LOOM_FUZZ_BUILD_DIR:-build-fuzz}

if [ ! -f "$dir/build.ninja" ]; then
  cmake -G Ninja -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
    -DLOOM_BUILD_FUZZERS=ON -DLOOM_BUILD_TESTS=OFF -DLOOM_ENABLE_CUDA=OFF
fi
ninja -C "$dir" -j "$(nproc)" loom-parser-fuzzer

corpus="$dir/fuzz-corpus"
seeds="$dir/fuzz-seeds"
rm -rf "$seeds"
mkdir -p "$corpus" "$seeds" "$dir/fuzz-artifacts"
cp examples/*.loom lib/Frontend/stdlib/*.loom "$seeds/"
/usr/lib/llvm-19/bin/split-file test/loomc/language-errors.test "$seeds/errors"

echo "fuzz: running loom-parser-fuzzer for ${seconds} s"
set +e
# allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its slabs in our
# instrumented code but not in Debian's uninstrumented MLIR libraries, which
# share the slabs; that mix reports false use-after-poison. Every other ASan
# check stays on.
ASAN_OPTIONS=allow_user_poisoning=0 "$dir/bin/loom-parser-fuzzer" "$corpus" "$seeds" "$seeds/errors" \
  -max_total_time="$seconds" -max_len=8192 -timeout=20 -rss_limit_mb=4096 \
  -artifact_prefix="$dir/fuzz-artifacts/" -print_final_stats=1 >"$dir/fuzz.log" 2>&1
status=$?
set -e
# The log's progress lines are noise; the summary and any report are not.
grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$dir/fuzz.log" | tail -60
if [ "$status" -ne 0 ]; then
  echo "fuzz: FAILED (exit $status); the input is in $dir/fuzz-artifacts/" >&2
  exit "$status"
fi
echo "fuzz: no crash in ${seconds} s"
