"""Checks a Chrome trace written by loom-run --trace.

  check_trace.py TRACE --ranks N --steps FIRST-LAST [--collectives]
                 [--pipeline] [--plan PATH]

Fails (exit 1, naming what is wrong) unless the file is Trace Event Format
JSON that Perfetto opens: every rank has a named track; there are matmul
slices with FLOPs and a model location; slices nest on each track (two
either do not overlap or one encloses the other); every rank has one step
slice per step FIRST..LAST and nothing records another step; every
instruction's slice lies inside its step's slice. --collectives: every rank
has collective slices. --pipeline: every rank has pipeline send and recv
slices naming the peer stage. --plan: the process is named after the plan
("loom-run PATH").
"""

import argparse
import collections
import json
import sys


def fail(message):
    print("check_trace: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--ranks", type=int, required=True)
    parser.add_argument("--steps", required=True)
    parser.add_argument("--collectives", action="store_true")
    parser.add_argument("--pipeline", action="store_true")
    parser.add_argument("--plan")
    args = parser.parse_args()
    first, last = (int(x) for x in args.steps.split("-"))
    steps = set(range(first, last + 1))

    with open(args.trace, encoding="utf-8") as f:
        trace = json.load(f)
    if trace.get("displayTimeUnit") != "ms":
        fail("displayTimeUnit is not ms")
    events = trace["traceEvents"]
    if not isinstance(events, list) or not events:
        fail("no traceEvents")

    names = {}
    process = None
    slices = collections.defaultdict(list)  # tid -> complete events
    for e in events:
        for key in ("name", "ph", "pid", "tid"):
            if key not in e:
                fail("an event has no %r: %r" % (key, e))
        if e["ph"] == "M":
            if e["name"] == "thread_name":
                names[e["tid"]] = e["args"]["name"]
            if e["name"] == "process_name":
                process = e["args"]["name"]
            continue
        if e["ph"] != "X":
            fail("an event is neither complete (X) nor metadata (M): %r" % e)
        for key, kind in (("ts", int), ("dur", int), ("cat", str), ("args", dict)):
            if not isinstance(e.get(key), kind):
                fail("a slice's %r is not a %s: %r" % (key, kind.__name__, e))
        if e["dur"] < 0:
            fail("a slice lasts less than nothing: %r" % e)
        if "step" in e["args"] and e["args"]["step"] not in steps:
            fail("a slice of step %d, which was not traced: %r" % (e["args"]["step"], e))
        slices[e["tid"]].append(e)

    if args.plan is not None and process != "loom-run " + args.plan:
        fail("the process is named %r, not after the plan %r" % (process, args.plan))
    # A rank's track, and (with the dp gradient overlap) its comm track:
    # slices of the all-reduces its communication thread runs.
    ranks = [tid for tid, name in names.items()
             if name.startswith("rank ") and not name.endswith(" comm")]
    comm_tracks = [tid for tid, name in names.items()
                   if name.startswith("rank ") and name.endswith(" comm")]
    for tid in comm_tracks:
        for e in slices.get(tid, []):
            if e["cat"] != "collective":
                fail("a slice on %s that is not a collective: %r" % (names[tid], e))
    if len(ranks) != args.ranks:
        fail("%d rank tracks (%s), expected %d" % (len(ranks), sorted(names.values()), args.ranks))
    for r in range(args.ranks):
        if not any(name.startswith("rank %d (" % r) for name in names.values()):
            fail("no track is named after rank %d: %s" % (r, sorted(names.values())))

    matmuls = [e for tid in slices for e in slices[tid] if e["name"] == "matmul"]
    if not matmuls:
        fail("no matmul slices")
    for e in matmuls:
        if not e["args"].get("flops", 0) > 0:
            fail("a matmul without FLOPs: %r" % e)
        if not e["args"].get("location"):
            fail("a matmul without a model location: %r" % e)
        if not e["args"].get("bytes", 0) > 0:
            fail("a matmul without bytes: %r" % e)

    for tid, track in slices.items():
        # Enclosing slices first: by start, then the longest.
        track.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_slices = []
        for e in track:
            while open_slices and open_slices[-1]["ts"] + open_slices[-1]["dur"] <= e["ts"]:
                open_slices.pop()
            if open_slices and e["ts"] + e["dur"] > open_slices[-1]["ts"] + open_slices[-1]["dur"]:
                fail("slices overlap on track %s (%s): %r and %r"
                     % (tid, names.get(tid), open_slices[-1], e))
            open_slices.append(e)

    for tid in ranks:
        track = slices[tid]
        step_slices = [e for e in track if e["cat"] == "step"]
        got = sorted(e["args"]["step"] for e in step_slices)
        if got != sorted(steps):
            fail("%s has step slices %s, expected %s" % (names[tid], got, sorted(steps)))
        for e in track:
            if "instruction" not in e["args"]:
                continue
            inside = [s for s in step_slices if s["args"]["step"] == e["args"]["step"]
                      and s["ts"] <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"]]
            if not inside:
                fail("an instruction outside its step's slice: %r" % e)
        if args.collectives and not any(e["cat"] == "collective" for e in track):
            fail("%s has no collective slices" % names[tid])
        if args.pipeline:
            for kind in ("send", "recv"):
                if not any(e["cat"] == "pipeline" and e["name"] == kind
                           and "peer_stage" in e["args"] for e in track):
                    fail("%s has no pipeline %s slices" % (names[tid], kind))

    print("trace ok: %d ranks, steps %d to %d, %d slices"
          % (args.ranks, first, last, sum(len(t) for t in slices.values())))


if __name__ == "__main__":
    main()
