"""Writes loom IR with a chain of calls, for the summary's deep-IR tests.

  call-chain.py DEPTH CALLS   @f0 calls @f1 CALLS times, @f1 calls @f2, ...,
                              and @f{DEPTH-1} runs one loom.gelu on a
                              tensor<2xf32> (5 FLOPs per element: 10)
"""
import sys

depth, calls = int(sys.argv[1]), int(sys.argv[2])
t = "tensor<2xf32>"
out = []
for i in range(depth - 1):
    body = [f"  %0 = func.call @f{i + 1}(%x) : ({t}) -> {t}"]
    for c in range(1, calls):
        body.append(f"  %{c} = func.call @f{i + 1}(%{c - 1}) : ({t}) -> {t}")
    private = "private " if i else ""
    out.append(f"func.func {private}@f{i}(%x: {t}) -> {t} {{\n" + "\n".join(body)
               + f"\n  return %{calls - 1} : {t}\n}}")
private = "private " if depth > 1 else ""
out.append(f"func.func {private}@f{depth - 1}(%x: {t}) -> {t} {{\n"
           f"  %0 = loom.gelu %x : {t}\n  return %0 : {t}\n}}")
print("\n".join(out))
