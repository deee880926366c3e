#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-asan/ and runs the whole test suite (ctest) under them. Any report
# fails the test that made it. Not part of every CI run (it takes a while):
# run it after changes to the runtime, the plan loader or the front end.
# Usage: scripts/sanitize.sh [ctest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${LOOM_SANITIZE_BUILD_DIR:-build-asan}
export LOOM_BUILD_DIR="$dir"
export LOOM_CMAKE_ARGS="-DLOOM_SANITIZE=address;undefined -DLOOM_ENABLE_CUDA=OFF ${LOOM_CMAKE_ARGS:-}"
bash scripts/build.sh
# allow_user_poisoning=0: LLVM's allocators poison memory in our instrumented
# code but not in Debian's uninstrumented LLVM/MLIR libraries that share it
# (false use-after-poison otherwise; see scripts/fuzz.sh). detect_leaks=0:
# MLIR and llvm::cl keep process-lifetime allocations by design.
export ASAN_OPTIONS="allow_user_poisoning=0:detect_leaks=0:abort_on_error=0:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$dir"
start=$(date +%s)
ctest --output-on-failure "$@"
echo "sanitize: ctest under ASan+UBSan took $(( $(date +%s) - start )) s"
