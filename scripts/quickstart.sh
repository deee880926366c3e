#!/usr/bin/env bash
# Quick start, part 1: install what Loom needs, build it, and run its main job
# (for now: compile the GPT example model and print what it is).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh loomc loom-opt
echo
echo "== loomc examples/gpt.loom --summary   (GPT-2 124M, Megatron's GPT)"
./build/bin/loomc examples/gpt.loom --summary
