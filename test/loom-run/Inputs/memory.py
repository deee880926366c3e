"""Checks on memory: loom-run --memory-report lines and loomc --explain --json.

  memory.py under OUT BUDGET       every rank's measured total (arenas and
                                   the backend's own) is at most BUDGET
  memory.py falls A.json B.json ...  per stage, each report's allocated
                                   bytes are below the one before
  memory.py matches OUT EXPLAIN.json RTOL
                                   every rank's measured total is its
                                   stage's predicted allocated bytes to RTOL
                                   relative
"""
import json
import re
import sys

LINE = re.compile(r"memory: rank (\d+) \(stage (\d+)\): arenas (\d+) bytes, "
                  r"runtime (\d+) bytes, total (\d+) bytes")


def measured(path):
    with open(path) as f:
        ranks = [tuple(map(int, m.groups())) for m in map(LINE.search, f) if m]
    if not ranks:
        sys.exit(f"memory.py: {path} has no 'memory: rank' lines")
    return ranks


def stages(path):
    with open(path) as f:
        return [s["allocated_bytes"] for s in json.load(f)["stages"]]


def main(argv):
    if argv[1] == "under":
        budget = int(argv[3])
        for rank, stage, arenas, runtime, total in measured(argv[2]):
            if total > budget:
                sys.exit(f"under: rank {rank} holds {total} bytes, over the "
                         f"budget {budget}")
        print(f"under: every rank within {budget} bytes")
    elif argv[1] == "falls":
        reports = [stages(p) for p in argv[2:]]
        for before, after, name in zip(reports, reports[1:], argv[3:]):
            for s, (b, a) in enumerate(zip(before, after)):
                if not a < b:
                    sys.exit(f"falls: stage {s} of {name} allocates {a} "
                             f"bytes, not below {b}")
        print("falls: " + " > ".join(str(r) for r in reports))
    elif argv[1] == "matches":
        predicted, rtol = stages(argv[3]), float(argv[4])
        worst = 0.0
        for rank, stage, arenas, runtime, total in measured(argv[2]):
            p = predicted[stage]
            if abs(p - total) > rtol * p:
                sys.exit(f"matches: rank {rank} (stage {stage}) allocated "
                         f"{total} bytes; --explain predicted {p}")
            worst = max(worst, abs(p - total) / p)
        print(f"matches: measured within {worst:.2e} of the prediction")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
