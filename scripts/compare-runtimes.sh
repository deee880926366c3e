#!/bin/bash
# Bit-identity check: the same plans, trained by two loom-run binaries, must
# log the same losses, gradient norms and loss scales, and save byte-identical
# checkpoints (every parameter and AdamW moment, bit for bit).
# usage: scripts/compare-runtimes.sh OLD_LOOM_RUN NEW_LOOM_RUN LOOMC OUTDIR
# (for a refactor that must change no result: build the old tree's loom-run
# first, e.g. from a git worktree of the base commit). Exit 0 when every
# configuration is the same.
set -u
OLD=$1 NEW=$2 LOOMC=$3 OUT=$4
SRC=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p $OUT
DATA=$OUT/data.txt
head -c 200000 $SRC/README.md $SRC/docs/*.md > $DATA
M="-D layers=4 -D hidden=32 -D heads=4 -D seq=32 -D vocab=256 -D dropout=0.1 --micro-batch-size 2 --global-batch-size 8 --lr 2e-3 --warmup 2"
configs=(
  "one|"
  "tp2|--mesh tp=2"
  "tp4|--mesh tp=4"
  "sp|--mesh tp=2 --sequence-parallel"
  "dp2|--mesh dp=2"
  "dp2tp2sp|--mesh dp=2,tp=2 --sequence-parallel"
  "pp2gpipe|--mesh pp=2 --schedule gpipe"
  "pp21f1b|--mesh pp=2 --schedule 1f1b"
  "pp41f1b|--mesh pp=4 --schedule 1f1b"
  "pp4gpipetp|--mesh pp=4,tp=2 --schedule gpipe --precision bf16"
  "bf16tpsp|--precision bf16 --mesh dp=2,tp=2 --sequence-parallel"
  "pp2il2|--mesh pp=2 --schedule interleaved:2"
  "pp2tp2il|--mesh pp=2,tp=2 --schedule interleaved:2"
  "dp2pp2tp2sp|--mesh dp=2,pp=2,tp=2 --schedule 1f1b --sequence-parallel"
  "bf16|--precision bf16"
  "bf16pp|--precision bf16 --mesh pp=2,tp=2 --schedule interleaved:2"
  "f16|--precision f16 --initial-loss-scale 1099511627776"
  "f16tp|--precision f16 --mesh dp=2,tp=2"
)
# A loss summed per microbatch (normalised by the microbatches, not the
# tokens), on one rank and over dp × tp.
sed 's/loss = cross_entropy(logits, labels)/loss = cross_entropy(logits, labels, reduction = "sum")/' \
  $SRC/test/loom-run/Inputs/custom.loom > $OUT/sum.loom
S="--micro-batch-size 2 --global-batch-size 8 --lr 2e-3"
configs+=(
  "sum|@$OUT/sum.loom $S"
  "sumdp2tp2|@$OUT/sum.loom $S --mesh dp=2,tp=2"
)
fail=0
for c in "${configs[@]}"; do
  name=${c%%|*}; flags=${c#*|}
  model=$SRC/examples/gpt.loom; base=$M
  if [[ $flags == @* ]]; then model=${flags%% *}; model=${model#@}; flags=${flags#* }; base=; fi
  $LOOMC $model $base $flags -o $OUT/$name.plan 2>/dev/null || { echo "COMPILE FAIL $name"; fail=1; continue; }
  for who in old new; do
    bin=$OLD; [ $who = new ] && bin=$NEW
    rm -f $OUT/$name.$who.json
    rm -rf $OUT/$name.$who.ckpt
    $bin $OUT/$name.plan --steps 6 --data $DATA --log-json $OUT/$name.$who.json --save $OUT/$name.$who.ckpt > $OUT/$name.$who.log 2>&1 || echo "RUN FAIL $name $who"
    sed -E 's/, "(tokens_per_s|elapsed_s)": [^,}]*//g' $OUT/$name.$who.json > $OUT/$name.$who.cmp
  done
  if cmp -s $OUT/$name.old.cmp $OUT/$name.new.cmp && [ -s $OUT/$name.old.cmp ] &&
     cmp -s $OUT/$name.old.ckpt/checkpoint.loomckpt $OUT/$name.new.ckpt/checkpoint.loomckpt; then
    echo "SAME $name $(tail -1 $OUT/$name.new.cmp | head -c 150)"
  else
    echo "DIFF $name"; fail=1
  fi
done
exit $fail
