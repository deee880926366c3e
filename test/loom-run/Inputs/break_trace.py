"""Writes a copy of a loom-run trace with one thing wrong, for checking that
check_trace.py notices it.

  break_trace.py MODE IN OUT

overlap: a matmul moved to straddle the end of its step's slice;
step: a slice that says it is of a step that was not traced;
flops: a matmul without FLOPs;
track: rank 0's track without its name.
"""

import json
import sys

mode, source, target = sys.argv[1:]
with open(source, encoding="utf-8") as f:
    trace = json.load(f)
events = trace["traceEvents"]
matmul = next(e for e in events if e["name"] == "matmul")
if mode == "overlap":
    step = next(e for e in events if e.get("cat") == "step"
                and e["tid"] == matmul["tid"] and e["args"]["step"] == matmul["args"]["step"])
    matmul["ts"] = step["ts"] + step["dur"] - 1
    matmul["dur"] = 10
elif mode == "step":
    matmul["args"]["step"] = 99
elif mode == "flops":
    matmul["args"]["flops"] = 0
elif mode == "track":
    trace["traceEvents"] = [e for e in events if not (
        e["ph"] == "M" and e["name"] == "thread_name" and e["args"]["name"].startswith("rank 0 "))]
else:
    sys.exit("unknown mode " + mode)
with open(target, "w", encoding="utf-8") as f:
    json.dump(trace, f)
