"""Starts a multi-process job the way a test needs it, and checks how it ends.

  launch.py torchrun N OUTDIR -- CMD...   N processes with torchrun's
                                          variables (RANK, WORLD_SIZE,
                                          LOCAL_RANK, LOCAL_WORLD_SIZE,
                                          MASTER_ADDR, MASTER_PORT: a free
                                          port), as torchrun sets them; no
                                          PyTorch needed
  launch.py mpirun N OUTDIR -- CMD...     mpirun -np N (oversubscribed; as
                                          root where the tests run as root)

Each rank's stdout and stderr go to OUTDIR/rank<R>.out (under mpirun, all
ranks' to OUTDIR/mpirun.out). Exits with the job's exit status (the largest
of the processes' for torchrun).

Options, before --:
  --fault KILL|STOP --victim R --after-step K
        once OUTDIR's rank-0 output shows step K, send the signal to rank R's
        process; then require: the job ends within --within S seconds of the
        signal, with a non-zero status (torchrun: of every other rank;
        mpirun: its own), the output names "rank R (" (or, under mpirun,
        mpirun's "process rank R"), and no process of the job is left
        running. Prints what it saw.
  --within S   (default 30)
"""
import os
import signal
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_of(pid):
    """The launcher's rank in a process's environment, or None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    except OSError:
        return None
    for name in (b"OMPI_COMM_WORLD_RANK", b"RANK"):
        if name in env:
            return int(env[name])
    return None


def descendants(root):
    """Every process under `root` (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def exe_name(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:  # it exited meanwhile
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main(argv):
    args = argv[1:]
    sep = args.index("--")
    opts, cmd = args[:sep], args[sep + 1:]
    kind, n, out = opts[0], int(opts[1]), opts[2]
    fault = victim = after = None
    within = 30.0
    rest = opts[3:]
    while rest:
        key, value = rest[0], rest[1]
        rest = rest[2:]
        if key == "--fault":
            fault = value
        elif key == "--victim":
            victim = int(value)
        elif key == "--after-step":
            after = int(value)
        elif key == "--within":
            within = float(value)
        else:
            sys.exit(f"launch.py: unknown option {key}")
    os.makedirs(out, exist_ok=True)
    procs = []
    if kind == "torchrun":
        port = free_port()
        for r in range(n):
            env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(n), LOCAL_RANK=str(r),
                       LOCAL_WORLD_SIZE=str(n), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
            log = open(os.path.join(out, f"rank{r}.out"), "w")
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        rank0 = os.path.join(out, "rank0.out")
    elif kind == "mpirun":
        mpirun = ["mpirun", "--oversubscribe", "-np", str(n)]
        if os.geteuid() == 0:
            mpirun.insert(1, "--allow-run-as-root")
        log = open(os.path.join(out, "mpirun.out"), "w")
        procs.append(subprocess.Popen(mpirun + cmd, stdout=log, stderr=subprocess.STDOUT))
        rank0 = os.path.join(out, "mpirun.out")
    else:
        sys.exit(f"launch.py: unknown launcher {kind}")
    tree = [p.pid for p in procs]

    def running():
        return any(p.poll() is None for p in procs)

    signalled = None
    deadline = time.time() + 600
    try:
        signalled = watch(procs, tree, running, deadline, fault, victim, after,
                          within, rank0)
    finally:
        # Never leave a test's processes behind, whatever happened here.
        tree[:] = sorted(set(tree + [d for p in procs for d in descendants(p.pid)]))
        # A launcher may return while the processes it killed are still
        # dying (mpirun after MPI_Abort): a few seconds, then what is left
        # was left behind.
        settle = time.time() + 5
        while any(alive(pid) for pid in tree if pid not in [p.pid for p in procs]) \
                and not running() and time.time() < settle:
            time.sleep(0.05)
        left = [pid for pid in tree if alive(pid)]
        described = [f"{pid} ({exe_name(pid)}, rank {rank_of(pid)})" for pid in left]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    took = time.time() - signalled if signalled else None
    codes = [p.wait() for p in procs]
    # The victim's own status (137 for SIGKILL) says nothing: the others'
    # must be non-zero.
    others = [c for r, c in enumerate(codes) if kind == "mpirun" or r != victim]
    status = max((c if c >= 0 else 128 - c) for c in others)
    if not fault:
        sys.exit(status)
    if signalled is None:
        sys.exit(f"launch.py: rank 0 never printed step {after}")
    text = "".join(open(os.path.join(out, f)).read() for f in sorted(os.listdir(out)))
    print(f"launch.py: the job ended {took:.1f} s after the signal with status {status}")
    failures = []
    if took > within:
        failures.append(f"the job was still running {within} s after the signal")
    if status == 0:
        failures.append("the job's exit status is 0")
    if left:
        failures.append(f"processes left running: {', '.join(described)}")
    if f"rank {victim} (" not in text and not (
            kind == "mpirun" and f"process rank {victim} with PID" in text):
        failures.append(f"no output names rank {victim}")
    if failures:
        sys.exit("launch.py: " + "; ".join(failures))
    print("launch.py: ok")


def watch(procs, tree, running, deadline, fault, victim, after, within, rank0):
    """Follows the job until it ends, sends the fault, and keeps `tree` (a
    list, updated in place) the pids seen in the job. Returns when the
    signal was sent, or None."""
    signalled = None
    while running() and time.time() < deadline:
        tree[:] = sorted(set(tree + [d for p in procs for d in descendants(p.pid)]))
        if fault and signalled is None and after is not None:
            try:
                text = open(rank0).read()
            except OSError:
                text = ""
            if f"step {after:6d} |" in text:
                targets = [pid for pid in tree if rank_of(pid) == victim and
                           exe_name(pid) == "loom-run"]
                if targets:
                    os.kill(targets[0], getattr(signal, "SIG" + fault))
                    signalled = time.time()
                    print(f"launch.py: sent SIG{fault} to rank {victim} (pid {targets[0]})")
        if signalled and time.time() - signalled > within:
            break
        time.sleep(0.05)
    return signalled


main(sys.argv)
