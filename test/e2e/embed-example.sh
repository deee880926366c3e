#!/usr/bin/env bash
# Builds examples/embed as an application would, against the build tree's
# CMake package (find_package(Loom) -> Loom::runtime), then runs it on a
# plan compiled by loomc. Usage: embed-example.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bin/loomc" "$src/examples/gpt.loom" -D layers=2 -D hidden=32 -D heads=4 \
  -D seq=16 -D vocab=256 --micro-batch-size 4 --global-batch-size 8 -o "$work/tiny.plan"
cat "$src/README.md" "$src/docs/language.md" > "$work/corpus.txt"
cmake -S "$src/examples/embed" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLoom_DIR="$build/cmake" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/build/train_embedded" "$work/tiny.plan" "$work/corpus.txt" "$work/checkpoint"
