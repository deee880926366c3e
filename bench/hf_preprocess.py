"""The peer of loom-preprocess in bench/preprocess.sh: Megatron-LM's
tools/preprocess_data.py structure (a multiprocessing Pool whose workers
json.loads a line and encode its text, imap with chunksize 32, the
<|endoftext|> id appended, IndexedDatasetBuilder's .bin/.idx), with Hugging
Face's `tokenizers` (Rust BPE) as the tokenizer: what a Megatron user runs
with --tokenizer-type HuggingFaceTokenizer, without Megatron installed.

  hf_preprocess.py prepare DIR MB    DIR/corpus.jsonl (~MB MB: the licence
      texts' paragraphs, repeated) and a 8192-token byte-level BPE trained on
      the licence texts (DIR/vocab.json, DIR/merges.txt)
  hf_preprocess.py run DIR PREFIX WORKERS
      DIR/corpus.jsonl -> PREFIX_text_document.bin/.idx
"""
import glob
import json
import multiprocessing
import os
import struct
import sys
import time

import numpy


def prepare(directory, megabytes):
    from tokenizers import ByteLevelBPETokenizer

    files = sorted(glob.glob("/usr/share/common-licenses/*"))
    texts = [open(f, encoding="utf-8", errors="replace").read() for f in files]
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(texts, vocab_size=8192, min_frequency=2,
                                  special_tokens=["<|endoftext|>"])
    tokenizer.save_model(directory)
    paragraphs = [p.strip() for t in texts for p in t.split("\n\n") if p.strip()]
    target, written = megabytes * 1_000_000, 0
    with open(os.path.join(directory, "corpus.jsonl"), "w") as out:
        while written < target:
            for p in paragraphs:
                line = json.dumps({"text": p}) + "\n"
                out.write(line)
                written += len(line)
                if written >= target:
                    break


_tokenizer = None
_eod = None


def _init(directory):
    global _tokenizer, _eod
    from tokenizers import ByteLevelBPETokenizer

    _tokenizer = ByteLevelBPETokenizer(os.path.join(directory, "vocab.json"),
                                       os.path.join(directory, "merges.txt"))
    _eod = _tokenizer.token_to_id("<|endoftext|>")


def _encode(line):
    # Megatron's Encoder.encode: json.loads, tokenize, append eod.
    text = json.loads(line)["text"]
    ids = _tokenizer.encode(text).ids
    if ids:
        ids.append(_eod)
    return ids, len(line)


def run(directory, prefix, workers):
    start = time.time()
    dtype = numpy.uint16
    lengths, documents = [], [0]
    with open(os.path.join(directory, "corpus.jsonl")) as fin, \
            open(prefix + "_text_document.bin", "wb") as data_file, \
            multiprocessing.Pool(workers, initializer=_init,
                                 initargs=(directory,)) as pool:
        for ids, _ in pool.imap(_encode, fin, 32):
            if ids:
                data_file.write(numpy.array(ids, dtype=dtype).tobytes(order="C"))
                lengths.append(len(ids))
            documents.append(len(lengths))
    with open(prefix + "_text_document.idx", "wb") as idx:
        idx.write(b"MMIDIDX\x00\x00")
        idx.write(struct.pack("<Q", 1))
        idx.write(struct.pack("<B", 8))  # uint16
        pointers = numpy.zeros(len(lengths), dtype=numpy.int64)
        if lengths:
            pointers[1:] = numpy.cumsum(numpy.array(lengths[:-1], dtype=numpy.int64) * 2)
        idx.write(struct.pack("<Q", len(lengths)))
        idx.write(struct.pack("<Q", len(documents)))
        idx.write(numpy.array(lengths, dtype=numpy.int32).tobytes(order="C"))
        idx.write(pointers.tobytes(order="C"))
        idx.write(numpy.array(documents, dtype=numpy.int64).tobytes(order="C"))
    print(f"{time.time() - start:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]))
    else:
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
