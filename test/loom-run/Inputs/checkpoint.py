"""Reads a Loom checkpoint file (include/loom/runtime/Checkpoint.h gives the
layout), for the test helpers losses.py and edit_checkpoint.py."""
import struct
import sys

FILE = "checkpoint.loomckpt"


def parse(data):
    """The header, the scalars ([name, value] lists), and the tensors as
    (name, shape, offset of the first value in data), with the offset at
    which the tensors start."""
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
    tensors_at = pos
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    tensors = []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        (rank,) = struct.unpack_from("<I", data, pos)
        pos += 4
        shape = struct.unpack_from(f"<{rank}q", data, pos)
        pos += 8 * rank
        size = 1
        for d in shape:
            size *= d
        tensors.append((name, shape, pos))
        pos += 4 * size
    return {"version": version, "step": step, "position": position,
            "seed": seed, "scalars": scalars, "tensors_at": tensors_at,
            "tensors": tensors}


def read(directory):
    """The bytes of the checkpoint in `directory`."""
    with open(directory + "/" + FILE, "rb") as f:
        return f.read()
