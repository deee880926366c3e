"""Writes safetensors files with the `safetensors` package, for
SafetensorsTest: Loom's writer must give the same bytes.

  write_safetensors.py DIR   writes DIR/f32.safetensors and DIR/f16.safetensors

The tensors (values as SafetensorsTest computes them: float64 arithmetic,
then rounded to the dtype by numpy, round to nearest even):
  "b.weight" [2, 3], "a" [5], "scalar" [], "empty" [0, 4], "z.bias" [7]
tensor k's element i is i * 0.37 - 1.1 * k.
"""
import os
import sys

import numpy as np
from safetensors.numpy import save_file

SHAPES = [("b.weight", (2, 3)), ("a", (5,)), ("scalar", ()), ("empty", (0, 4)),
          ("z.bias", (7,))]


def tensors(dtype):
    out = {}
    for k, (name, shape) in enumerate(SHAPES):
        n = int(np.prod(shape)) if shape else 1
        values = np.arange(n, dtype=np.float64) * 0.37 - 1.1 * k
        out[name] = values.astype(np.float32).astype(dtype).reshape(shape)
    return out


directory = sys.argv[1]
save_file(tensors(np.float32), os.path.join(directory, "f32.safetensors"),
          metadata={"format": "pt"})
save_file(tensors(np.float16), os.path.join(directory, "f16.safetensors"),
          metadata={"format": "pt"})
