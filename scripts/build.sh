#!/usr/bin/env bash
# Configures (once) and builds Loom in build/ with Ninja and ccache.
# Usage: scripts/build.sh [ninja targets...]   (default: everything)
# Environment: LOOM_BUILD_DIR (default build), LOOM_CMAKE_ARGS (extra -D options,
# e.g. "-DLOOM_ENABLE_CUDA=OFF" or "-DCUDAToolkit_ROOT=/opt/cuda").
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${LOOM_BUILD_DIR:-build}

if [ ! -f "$build_dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -G Ninja -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${LOOM_CMAKE_ARGS:-}
fi
# Each MLIR translation unit takes ~0.5 GB to compile; one job per core.
ninja -C "$build_dir" -j "$(nproc)" "$@"
if command -v ccache >/dev/null; then ccache --show-stats 2>/dev/null | grep -iE "hits|misses" | head -3 || true; fi
