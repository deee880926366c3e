#!/usr/bin/env bash
# Quick start, part 1: install what Loom needs, build it, and run its main job:
# compile examples/gpt.loom (a tiny GPT: 2 layers, hidden 64, byte vocabulary)
# into a plan, and train it on the CPU for about a minute on Debian's licence
# texts (/usr/share/common-licenses). The loss falls from ln(256) = 5.5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh loomc loom-run
build=${LOOM_BUILD_DIR:-build}
mkdir -p "$build/quickstart"
cat /usr/share/common-licenses/* > "$build/quickstart/licenses.txt"

echo
echo "== loomc examples/gpt.loom @examples/configs/tiny-bytes.args -o $build/quickstart/tiny.plan"
./"$build"/bin/loomc examples/gpt.loom @examples/configs/tiny-bytes.args -o "$build/quickstart/tiny.plan"
./"$build"/bin/loomc examples/gpt.loom @examples/configs/tiny-bytes.args --summary | head -3
echo
echo "== loom-run $build/quickstart/tiny.plan --steps 600 --data licenses.txt"
./"$build"/bin/loom-run "$build/quickstart/tiny.plan" --steps 600 \
  --data "$build/quickstart/licenses.txt" --log-interval 50 \
  --log-json "$build/quickstart/log.json" --save "$build/quickstart/checkpoint"
