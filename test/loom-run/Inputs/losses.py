"""Checks on loom-run's --log-json files (one JSON object per step).

  losses.py same A B [FIRST LAST]   the losses of steps FIRST..LAST (default:
                                    every step of A) are bit-identical in B
  losses.py falls LOG START BELOW   the first step's loss is within 0.3 of
                                    START and the mean of the last 20 steps'
                                    losses is below BELOW
  losses.py near A B RTOL [NRTOL]  every step of A is in B, and its loss
                                    agrees to RTOL relative (and its gradient
                                    norm to NRTOL)
  losses.py close A B TOL          the mean losses of the last 20 steps of A
                                    and B differ by less than TOL
  losses.py skipped LOG MIN MAX     between MIN and MAX steps were skipped,
                                    and the last step was not
  losses.py params A B RTOL ATOL    the checkpoints in directories A and B
                                    hold the same tensors (names, shapes),
                                    every element within ATOL + RTOL·|b|
  losses.py validation A B RTOL     every validation loss of A (a step's
                                    "validation_loss", loom-run --eval-*)
                                    is in B at that step, to RTOL relative
                                    (0: bit-identical)
  losses.py value A FA SA B FB SB RTOL
                                    field FA of A's step SA equals field FB
                                    of B's step SB to RTOL relative
"""
import json
import struct
import sys

import checkpoint


def read_checkpoint(directory):
    """The tensors of a checkpoint: {name: (shape, values)}."""
    data = checkpoint.read(directory)
    tensors = {}
    for name, shape, at in checkpoint.parse(data)["tensors"]:
        size = 1
        for d in shape:
            size *= d
        tensors[name] = (shape, struct.unpack_from(f"<{size}f", data, at))
    return tensors


def read(path):
    with open(path) as f:
        return {r["step"]: r for r in map(json.loads, f) if r}


def main(argv):
    what = argv[1]
    if what == "same":
        a, b = read(argv[2]), read(argv[3])
        first = int(argv[4]) if len(argv) > 4 else min(a)
        last = int(argv[5]) if len(argv) > 5 else max(a)
        for step in range(first, last + 1):
            if step not in a or step not in b:
                sys.exit(f"step {step} is missing from {argv[2]} or {argv[3]}")
            # repr of the parsed float: every digit loom-run printed (9
            # significant), and both runs print the same float's digits.
            if a[step]["loss"] != b[step]["loss"] or a[step]["grad_norm"] != b[step]["grad_norm"]:
                sys.exit(f"step {step}: loss {a[step]['loss']!r} vs {b[step]['loss']!r}, "
                         f"grad norm {a[step]['grad_norm']!r} vs {b[step]['grad_norm']!r}")
        print(f"same: steps {first}..{last} identical")
    elif what == "falls":
        log = read(argv[2])
        start, below = float(argv[3]), float(argv[4])
        first = log[min(log)]["loss"]
        tail = [log[s]["loss"] for s in sorted(log)[-20:]]
        mean = sum(tail) / len(tail)
        if abs(first - start) > 0.3:
            sys.exit(f"the first loss is {first}, not about {start}")
        if not mean < below:
            sys.exit(f"the last 20 steps' mean loss is {mean:.4f}, not below {below}")
        print(f"falls: {first:.4f} -> {mean:.4f} (mean of the last 20 steps)")
    elif what == "near":
        a, b = read(argv[2]), read(argv[3])
        rtol = float(argv[4])
        if not a or not set(a) <= set(b):
            sys.exit(f"{argv[3]} lacks steps of {argv[2]}")
        worst = max(abs(a[s]["loss"] - b[s]["loss"]) / abs(b[s]["loss"]) for s in a)
        if not worst < rtol:
            sys.exit(f"losses differ by {worst:.3g} relative, more than {rtol}")
        message = f"near: {len(a)} steps agree to {worst:.3g} relative"
        if len(argv) > 5:
            # AdamW hardly sees a gradient's scale; the global norm does.
            nrtol = float(argv[5])
            norms = max(abs(a[s]["grad_norm"] - b[s]["grad_norm"]) / abs(b[s]["grad_norm"]) for s in a)
            if not norms < nrtol:
                sys.exit(f"gradient norms differ by {norms:.3g} relative, more than {nrtol}")
            message += f", gradient norms to {norms:.3g}"
        print(message)
    elif what == "close":
        means = []
        for path in argv[2:4]:
            log = read(path)
            tail = [log[s]["loss"] for s in sorted(log)[-20:]]
            means.append(sum(tail) / len(tail))
        if not abs(means[0] - means[1]) < float(argv[4]):
            sys.exit(f"mean losses {means[0]:.4f} and {means[1]:.4f} differ by more than {argv[4]}")
        print(f"close: {means[0]:.4f} and {means[1]:.4f}")
    elif what == "skipped":
        log = read(argv[2])
        lo, hi = int(argv[3]), int(argv[4])
        skipped = [s for s in sorted(log) if log[s]["skipped"]]
        if not lo <= len(skipped) <= hi or log[max(log)]["skipped"]:
            sys.exit(f"skipped steps {skipped}; expected {lo} to {hi}, the last not")
        print(f"skipped: {len(skipped)} steps")
    elif what == "params":
        a, b = read_checkpoint(argv[2]), read_checkpoint(argv[3])
        rtol, atol = float(argv[4]), float(argv[5])
        if sorted(a) != sorted(b):
            sys.exit(f"the checkpoints hold different tensors: {sorted(set(a) ^ set(b))}")
        worst, where = 0.0, ""
        for name in a:
            (sa, va), (sb, vb) = a[name], b[name]
            if sa != sb:
                sys.exit(f"{name}: shape {sa} vs {sb}")
            for i, (x, y) in enumerate(zip(va, vb)):
                excess = abs(x - y) / (atol + rtol * abs(y))
                if excess > worst:
                    worst, where = excess, f"{name}[{i}]: {x!r} vs {y!r}"
        if not worst <= 1:
            sys.exit(f"parameters differ beyond tolerance: {where}")
        print(f"params: {len(a)} tensors agree (worst {worst:.3g} of the tolerance)")
    elif what == "validation":
        a, b = read(argv[2]), read(argv[3])
        rtol = float(argv[4])
        steps = [s for s in sorted(a) if "validation_loss" in a[s]]
        if not steps:
            sys.exit(f"{argv[2]} has no validation loss")
        worst = 0.0
        for s in steps:
            if s not in b or "validation_loss" not in b[s]:
                sys.exit(f"{argv[3]} has no validation loss at step {s}")
            x, y = a[s]["validation_loss"], b[s]["validation_loss"]
            worst = max(worst, abs(x - y) / abs(y))
            if not (x == y if rtol == 0 else worst < rtol):
                sys.exit(f"step {s}: validation loss {x!r} vs {y!r}, more than {rtol} relative")
        print(f"validation: {len(steps)} evaluations agree to {worst:.3g} relative")
    elif what == "value":
        a, fa, sa = read(argv[2]), argv[3], int(argv[4])
        b, fb, sb = read(argv[5]), argv[6], int(argv[7])
        rtol = float(argv[8])
        if sa not in a or fa not in a[sa] or sb not in b or fb not in b[sb]:
            sys.exit(f"{fa} of step {sa} or {fb} of step {sb} is missing")
        x, y = a[sa][fa], b[sb][fb]
        if not abs(x - y) <= rtol * abs(y):
            sys.exit(f"{fa} {x!r} (step {sa}) vs {fb} {y!r} (step {sb}): more than {rtol} relative")
        print(f"value: {x!r} and {y!r} agree to {rtol}")
    else:
        sys.exit(f"unknown check {what}")


main(sys.argv)
