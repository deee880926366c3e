#!/usr/bin/env bash
# Quick start, part 1: install what Loom needs, build it, and run its main job
# (for now: compile an example model and print what it is).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh loomc loom-opt
echo
echo "== loomc examples/gpt2_layer.mlir --summary"
./build/bin/loomc examples/gpt2_layer.mlir --summary
