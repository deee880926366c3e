#!/usr/bin/env python3
"""Inputs for preprocess.test, with the standard library only: OUT/corpus.jsonl
(one object per line: each of Debian's licence texts as {"text": ...,
"title": ...}, escaped by json.dumps, so non-ASCII text arrives as \\uXXXX
and surrogate pairs; an empty text; Unicode, whitespace runs and digits) and
a small byte-level BPE, OUT/vocab.json and OUT/merges.txt, trained here by
plain pair counting (any merges will do: the test checks that
loom-preprocess writes the tokenizer's ids, not how good they are), with
<|endoftext|> last.

Usage: preprocess_inputs.py OUT MERGES
"""
import collections
import json
import os
import sys

LICENSES = "/usr/share/common-licenses"
out, merges_wanted = sys.argv[1], int(sys.argv[2])


def bytes_to_unicode():
    # GPT-2's byte map: printable Latin-1 bytes stand for themselves.
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
          + list(range(0xAE, 0x100)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


texts = []
for name in sorted(os.listdir(LICENSES)):
    path = os.path.join(LICENSES, name)
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            texts.append((name, f.read()))
texts.insert(2, ("empty", ""))
texts.append(("unicode", "caf\u00e9 na\u00efve \u4f60\u597d \U0001F600!\n\n"
              "  tabs\t\tand   runs 2024 3.14159 it's we'll\r\n"))

byte_map = bytes_to_unicode()
words = collections.Counter()
for _, text in texts:
    for word in text.split(" "):
        words[" " + word] += 1
vocab = {byte_map[b]: b for b in range(256)}
vocab = {token: i for i, token in enumerate(sorted(vocab, key=vocab.get))}
corpus = {tuple(byte_map[b] for b in w.encode("utf-8")): c
          for w, c in words.items()}
merges = []
while len(merges) < merges_wanted:
    pairs = collections.Counter()
    for symbols, count in corpus.items():
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += count
    if not pairs:
        break
    best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
    merges.append(best)
    vocab.setdefault(best[0] + best[1], len(vocab))
    merged = {}
    for symbols, count in corpus.items():
        s, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                s.append(best[0] + best[1])
                i += 2
            else:
                s.append(symbols[i])
                i += 1
        merged[tuple(s)] = merged.get(tuple(s), 0) + count
    corpus = merged
vocab["<|endoftext|>"] = len(vocab)

with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(vocab, f)
with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n")
    for a, b in merges:
        f.write(f"{a} {b}\n")
with open(os.path.join(out, "corpus.jsonl"), "w", encoding="ascii") as f:
    for name, text in texts:
        f.write(json.dumps({"title": name, "n": [1, {"x": None}], "text": text})
                + "\n")
print(len(vocab))
