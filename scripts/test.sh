#!/usr/bin/env bash
# Quick start, part 2 (and CI): install what Loom needs, build everything, and run
# every test: the lit suites and the GoogleTest suites, through ctest.
# LOOM_BUILD_COMPILER=OFF: the runtime-only build (no MLIR) in build-runtime/
# and the tests it has (docs/testing.md, "The runtime-only build").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
case "${LOOM_BUILD_COMPILER:-ON}" in
  OFF | off | 0 | FALSE | false) default_dir=build-runtime ;;
  *) default_dir=build ;;
esac
# The test-only Python packages (tokenizers, numpy, safetensors), unless the caller
# points at its own.
if [ -z "${LOOM_TEST_PYTHON:-}" ]; then
  LOOM_TEST_PYTHON=$(bash scripts/test-python.sh)
  export LOOM_TEST_PYTHON
fi
cd "${LOOM_BUILD_DIR:-$default_dir}"
ctest --output-on-failure
