"""Prints a --memory-budget between two plans' memory, from loomc --explain
--json reports: per stage the midpoint of the first plan's allocated bytes
(no recomputation) and the second's (full recomputation), the largest over
the stages. A stage whose first plan fits under it then recomputes nothing;
the others recompute some of their layers.

  budget.py NONE.json FULL.json
"""
import json
import sys


def allocated(path):
    with open(path) as f:
        return [s["allocated_bytes"] for s in json.load(f)["stages"]]


def main(argv):
    none, full = allocated(argv[1]), allocated(argv[2])
    if len(none) != len(full) or any(f >= n for n, f in zip(none, full)):
        sys.exit(f"budget.py: full recomputation must need less on every "
                 f"stage: {none} vs {full}")
    print(max((n + f) // 2 for n, f in zip(none, full)))


if __name__ == "__main__":
    main(sys.argv)
