#!/usr/bin/env python3
"""Checks loom-preprocess's output for preprocess.test, standard library
only: PREFIX.bin/.idx (Megatron's MMIDIDX format, read here with struct)
hold, for each line of the JSON-lines input, one document whose ids decode
(through vocab.json's byte-level tokens) to the line's KEY text, then
<|endoftext|>; an empty text is a document of no sequences, as
preprocess_data.py writes it. With Hugging Face `tokenizers` importable
(LOOM_TEST_PYTHON's python runs this with it), the ids must also be HF's
exactly; without it that part is skipped, saying so.

Usage: check_preprocessed.py JSONL VOCAB MERGES PREFIX KEY
"""
import json
import struct
import sys

jsonl, vocab_path, merges_path, prefix, key = sys.argv[1:6]
with open(vocab_path, encoding="utf-8") as f:
    vocab = json.load(f)
eod = vocab["<|endoftext|>"]

idx = open(prefix + ".idx", "rb").read()
bin_ = open(prefix + ".bin", "rb").read()
assert idx[:9] == b"MMIDIDX\0\0", "bad magic"
version, code, n, d = struct.unpack_from("<QBQQ", idx, 9)
assert version == 1 and code == (8 if len(vocab) < 65500 else 4), (version, code)
width = 2 if code == 8 else 4
lengths = struct.unpack_from(f"<{n}i", idx, 34)
pointers = struct.unpack_from(f"<{n}q", idx, 34 + 4 * n)
doc_index = struct.unpack_from(f"<{d}q", idx, 34 + 12 * n)
assert len(idx) == 34 + 12 * n + 8 * d, "index size"
assert doc_index[0] == 0 and doc_index[-1] == n


def sequence(i):
    fmt = "<%d%s" % (lengths[i], "H" if width == 2 else "i")
    return list(struct.unpack_from(fmt, bin_, pointers[i]))


byte_of = {}
bs = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD))
      + list(range(0xAE, 0x100)))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + k)
        k += 1
char_to_byte = {chr(c): b for b, c in zip(bs, cs)}
id_to_bytes = {i: bytes(char_to_byte[c] for c in t)
               for t, i in vocab.items() if t != "<|endoftext|>"}

texts = [json.loads(line)[key] for line in open(jsonl, encoding="utf-8")]
assert len(texts) == d - 1, f"{len(texts)} lines but {d - 1} documents"
documents = []
for doc in range(d - 1):
    ids = []
    for s in range(doc_index[doc], doc_index[doc + 1]):
        ids += sequence(s)
    documents.append(ids)
    text = texts[doc]
    if text == "":
        assert ids == [], f"document {doc}: an empty text has no sequences"
        continue
    assert doc_index[doc + 1] - doc_index[doc] == 1
    assert ids[-1] == eod, f"document {doc} does not end with <|endoftext|>"
    decoded = b"".join(id_to_bytes[i] for i in ids[:-1])
    assert decoded == text.encode("utf-8"), f"document {doc} decodes wrongly"
print(f"{d - 1} documents decode to their texts")

try:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
except ImportError:
    print("skipped the comparison with Hugging Face: requires python package "
          f"tokenizers (set LOOM_TEST_PYTHON; this is {sys.executable})")
    sys.exit(0)
hf = Tokenizer(models.BPE.from_file(vocab_path, merges_path))
hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
hf.decoder = decoders.ByteLevel()
for doc, text in enumerate(texts):
    want = hf.encode(text).ids + ([eod] if text else [])
    assert documents[doc] == want, f"document {doc}: not Hugging Face's ids"
print(f"{d - 1} documents match Hugging Face's ids")
