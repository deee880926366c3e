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

FILE = "checkpoint.loomckpt"


def parse(data):
    if data[:8] != b"LOOMCKPT":
        sys.exit("not a Loom checkpoint")
    version, step, position, seed = struct.unpack_from("<IqqQ", data, 8)
    pos = 8 + 4 + 8 + 8 + 8
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    scalars = []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + n].decode()
        (value,) = struct.unpack_from("<d", data, pos + 4 + n)
        scalars.append([name, value])
        pos += 4 + n + 8
    # The tensors stay bytes; an element edit patches them in place.
    tensors_at = pos
    body = data[:-4]
    return version, step, position, seed, scalars, bytearray(body[tensors_at:])


def element_offset(tensors, name, index):
    (count,) = struct.unpack_from("<I", tensors, 0)
    pos = 4
    for _ in range(count):
        (n,) = struct.unpack_from("<I", tensors, pos)
        found = tensors[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        (rank,) = struct.unpack_from("<I", tensors, pos)
        pos += 4
        shape = struct.unpack_from(f"<{rank}q", tensors, pos)
        pos += 8 * rank
        size = 1
        for d in shape:
            size *= d
        if found == name:
            if not 0 <= index < size:
                sys.exit(f"{name} has {size} elements")
            return pos + 4 * index
        pos += 4 * size
    sys.exit(f"no tensor {name}")


def main(argv):
    src, dst, what = argv[1], argv[2], argv[3]
    with open(os.path.join(src, FILE), "rb") as f:
        version, step, position, seed, scalars, tensors = parse(f.read())
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
        at = element_offset(tensors, argv[4], int(argv[5]))
        struct.pack_into("<f", tensors, at, float(argv[6]))
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
    with open(os.path.join(dst, FILE), "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv)
