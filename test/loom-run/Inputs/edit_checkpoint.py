"""Edits one field of a Loom checkpoint and writes it with its CRC-32
recomputed, so the edit passes the checksum (include/loom/runtime/Checkpoint.h
gives the layout): what loom-run --load must catch by range, not by CRC.

  edit_checkpoint.py SRC DST step|data_position VALUE     (an int64)
  edit_checkpoint.py SRC DST scalar NAME VALUE             (a float, or nan/inf)
  edit_checkpoint.py SRC DST drop-scalar NAME
  edit_checkpoint.py SRC DST add-scalar NAME VALUE
  edit_checkpoint.py SRC DST element TENSOR INDEX VALUE    (an f32 element)

SRC and DST are checkpoint directories; DST is created.
"""
import os
import struct
import sys
import zlib

import checkpoint

def element_offset(parsed, name, index):
    """Where element `index` of tensor `name` is in the file."""
    for found, shape, at in parsed["tensors"]:
        if found == name:
            size = 1
            for d in shape:
                size *= d
            if not 0 <= index < size:
                sys.exit(f"{name} has {size} elements")
            return at + 4 * index
    sys.exit(f"no tensor {name}")


def main(argv):
    src, dst, what = argv[1], argv[2], argv[3]
    data = checkpoint.read(src)
    parsed = checkpoint.parse(data)
    version, step, position, seed, scalars = (
        parsed[k] for k in ("version", "step", "position", "seed", "scalars"))
    # The tensors stay bytes (without the CRC); an element edit patches them.
    tensors = bytearray(data[parsed["tensors_at"]:-4])
    if what == "step":
        step = int(argv[4])
    elif what == "data_position":
        position = int(argv[4])
    elif what == "scalar":
        matches = [s for s in scalars if s[0] == argv[4]]
        if not matches:
            sys.exit(f"no scalar {argv[4]}")
        matches[0][1] = float(argv[5])
    elif what == "drop-scalar":
        scalars = [s for s in scalars if s[0] != argv[4]]
    elif what == "add-scalar":
        scalars.append([argv[4], float(argv[5])])
    elif what == "element":
        at = element_offset(parsed, argv[4], int(argv[5]))
        struct.pack_into("<f", tensors, at - parsed["tensors_at"], float(argv[6]))
    else:
        sys.exit(f"unknown edit {what}")
    out = bytearray(b"LOOMCKPT")
    out += struct.pack("<IqqQI", version, step, position, seed, len(scalars))
    for name, value in scalars:
        encoded = name.encode()
        out += struct.pack("<I", len(encoded)) + encoded + struct.pack("<d", value)
    out += tensors
    out += struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, checkpoint.FILE), "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv)
