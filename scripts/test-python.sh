#!/usr/bin/env bash
# The test-only Python packages (docs/testing.md): Hugging Face tokenizers
# (Gpt2TokenizerTest compares Loom's BPE with it) and numpy
# (IndexedDatasetTest's Megatron fixture) and safetensors (the Hugging Face
# checkpoints loom-convert reads), pinned, in a virtual environment
# of their own (never the system's). Prints the environment's python; the
# tests find it through LOOM_TEST_PYTHON (scripts/test.sh sets it).
# Usage: LOOM_TEST_PYTHON=$(bash scripts/test-python.sh)
# Environment: LOOM_TEST_VENV (default ~/.cache/loom/test-venv).
set -euo pipefail
venv=${LOOM_TEST_VENV:-$HOME/.cache/loom/test-venv}
want="tokenizers==0.23.3 numpy==2.4.6 safetensors==0.8.0"
if ! "$venv/bin/python" -c 'import tokenizers, numpy, safetensors' 2> /dev/null; then
  echo "test-python: installing $want into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q $want >&2
fi
echo "$venv/bin/python"
