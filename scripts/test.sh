#!/usr/bin/env bash
# Quick start, part 2 (and CI): install what Loom needs, build everything, and run
# every test: the lit suites and the GoogleTest suites, through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${LOOM_BUILD_DIR:-build}"
ctest --output-on-failure
