#!/usr/bin/env bash
# Configures (once) and builds Loom in build/ with Ninja and ccache.
# Usage: scripts/build.sh [ninja targets...]   (default: everything)
# Environment: LOOM_BUILD_DIR (default build), LOOM_CMAKE_ARGS (extra -D options,
# e.g. "-DLOOM_ENABLE_CUDA=OFF" or "-DCUDAToolkit_ROOT=/opt/cuda"),
# LOOM_BUILD_COMPILER=OFF for a runtime-only build without MLIR (the runtime,
# loom-run, the benchmarks and the tests that need no compiler; README.md,
# "Runtime-only build"), in build-runtime/ unless LOOM_BUILD_DIR says otherwise,
# LOOM_JOBS (default: one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
compiler=${LOOM_BUILD_COMPILER:-ON}
case "$compiler" in
  ON | on | 1 | TRUE | true) compiler=ON default_dir=build ;;
  OFF | off | 0 | FALSE | false) compiler=OFF default_dir=build-runtime ;;
  *) echo "build.sh: LOOM_BUILD_COMPILER must be ON or OFF, not '$compiler'" >&2; exit 2 ;;
esac
build_dir=${LOOM_BUILD_DIR:-$default_dir}

if [ ! -f "$build_dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -G Ninja -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
    -DLOOM_BUILD_COMPILER="$compiler" ${LOOM_CMAKE_ARGS:-}
elif ! grep -q "^LOOM_BUILD_COMPILER:BOOL=$compiler\$" "$build_dir/CMakeCache.txt"; then
  # A tree configured before the option existed, or for the other mode.
  cmake -B "$build_dir" -DLOOM_BUILD_COMPILER="$compiler"
fi
# Each MLIR translation unit takes ~0.5 GB to compile; one job per core.
ninja -C "$build_dir" -j "${LOOM_JOBS:-$(nproc)}" "$@"
if command -v ccache >/dev/null; then ccache --show-stats 2>/dev/null | grep -iE "hits|misses" | head -3 || true; fi
