"""Writes a text file as a Megatron indexed dataset of byte tokens: one
document (one sequence) per paragraph, uint8 ids, the .idx laid out as
megatron/core/datasets/indexed_dataset.py's _IndexWriter writes it (struct
only, so the test needs no numpy).

usage: write_indexed.py TEXT PREFIX
"""
import struct
import sys

text = open(sys.argv[1], "rb").read()
documents = [p + b"\n\n" for p in text.split(b"\n\n") if p.strip()]
lengths = [len(d) for d in documents]
with open(sys.argv[2] + ".bin", "wb") as f:
    for d in documents:
        f.write(d)
pointers, at = [], 0
for n in lengths:
    pointers.append(at)
    at += n
with open(sys.argv[2] + ".idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00")
    f.write(struct.pack("<Q", 1))
    f.write(struct.pack("<B", 1))  # uint8
    f.write(struct.pack("<Q", len(lengths)))
    f.write(struct.pack("<Q", len(lengths) + 1))
    f.write(struct.pack("<%di" % len(lengths), *lengths))
    f.write(struct.pack("<%dq" % len(pointers), *pointers))
    f.write(struct.pack("<%dq" % (len(lengths) + 1), *range(len(lengths) + 1)))
print(len(documents), "documents")
