#!/usr/bin/env bash
# Preprocessing throughput (docs/performance.md): loom-preprocess beside the
# peer a Megatron user runs, tools/preprocess_data.py's structure with Hugging
# Face's Rust BPE (bench/hf_preprocess.py), on the same JSON-lines corpus and
# byte-level BPE, 1 and 2 workers. Both write Megatron's .bin/.idx; the
# script checks the files are identical (the same ids) before it prints.
# Usage: bench/preprocess.sh [MB]   (default 30)
# Environment: LOOM_BUILD_DIR (default build), LOOM_BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-30}
bin=${LOOM_BUILD_DIR:-build}/bin
dir=${LOOM_BENCH_DIR:-${LOOM_BUILD_DIR:-build}/bench-preprocess}
py=$(bash scripts/test-python.sh)
mkdir -p "$dir"
[ -f "$dir/corpus.jsonl" ] || "$py" bench/hf_preprocess.py prepare "$dir" "$mb"
bytes=$(stat -c %s "$dir/corpus.jsonl")
docs=$(wc -l < "$dir/corpus.jsonl")
peak() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
rows=()
for w in 1 2; do
  /usr/bin/time -v -o "$dir/loom-$w.time" "$bin/loom-preprocess" --input "$dir/corpus.jsonl" \
    --output-prefix "$dir/loom-$w" --vocab-file "$dir/vocab.json" \
    --merge-file "$dir/merges.txt" --append-eod --workers "$w" 2> /dev/null
  s=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/loom-$w.time" | awk -F: '{print $(NF-1)*60 + $NF}')
  rows+=("loom-preprocess|$w|$s|$(peak "$dir/loom-$w.time")")
  /usr/bin/time -v -o "$dir/hf-$w.time" "$py" bench/hf_preprocess.py run "$dir" "$dir/hf-$w" "$w" > /dev/null
  s=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/hf-$w.time" | awk -F: '{print $(NF-1)*60 + $NF}')
  rows+=("Megatron-style + HF tokenizers|$w|$s|$(peak "$dir/hf-$w.time")")
  cmp "$dir/loom-$w"_text_document.bin "$dir/hf-$w"_text_document.bin
  cmp "$dir/loom-$w"_text_document.idx "$dir/hf-$w"_text_document.idx
done
echo "corpus: $docs documents, $bytes bytes; BPE of 8192 tokens; the .bin/.idx of both tools identical"
echo "| tool | workers | seconds | MB/s | documents/s | peak RSS |"
echo "|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r tool w s kb <<< "$r"
  awk -v t="$tool" -v w="$w" -v s="$s" -v b="$bytes" -v d="$docs" -v kb="$kb" \
    'BEGIN { printf "| %s | %d | %.2f | %.1f | %.0f | %.0f MB |\n", t, w, s, b / s / 1e6, d / s, kb / 1024 }'
done
