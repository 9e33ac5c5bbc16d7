"""Profiles one system under load: its server and the client process are sampled with py-spy
(Python frames, and with --native the C/C++ frames beneath them) and, with --perf, the server
with `perf record -e cpu-clock` (no hardware counters needed). Prints the hottest frames, self
and inclusive, and keeps the raw profiles.

    python -m bench.compare.profile --system prpc-py-thread --workload noop --callers 64

py-spy cannot read pyenv's shared-libpython interpreters ("Failed to find python version"): the
default --python is Debian's /usr/bin/python3.11, which it reads, and which loads the prpc
extension built for the 3.11 ABI. Peers need their packages importable by that interpreter.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .driver import Plan
from .procs import RedisServer, Server, wait_until
from .run import REPO
from .systems import BY_NAME, Context


def collapse(path: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Self and inclusive sample counts per frame of a collapsed-stack file."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        # A thread's name is the stack's root: keep it out of the frame tables.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return own, inclusive, total


def _commands(redis: RedisServer) -> int:
    for line in redis.command("INFO", "stats").decode(errors="replace").splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":", 1)[1])
    return 0


def table(title: str, counts: collections.Counter[str], total: int, top: int) -> str:
    lines = [f"{title} ({total} samples)"]
    for frame, n in counts.most_common(top):
        lines.append(f"  {100.0 * n / total:5.1f}%  {frame}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare.profile",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", default="prpc-py-thread", choices=sorted(BY_NAME))
    parser.add_argument("--workload", default="noop")
    parser.add_argument("--callers", type=int, default=64,
                        help="concurrent callers; 1 profiles sequential calls")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C/C++ frames)")
    parser.add_argument("--pyspy", action=argparse.BooleanOptionalAction, default=True,
                        help="py-spy the server and the client (default: yes)")
    parser.add_argument("--perf", action="store_true",
                        help="perf record the server, after py-spy (whose ptrace stops would "
                             "show in perf's profile)")
    parser.add_argument("--perf-on", choices=("server", "client"), default="server",
                        help="the process perf records")
    parser.add_argument("--callgrind", action="store_true",
                        help="run the server under valgrind --tool=callgrind instead (slow: use "
                             "--callers 1); prints the instructions per object and function")
    parser.add_argument("--python", default="/usr/bin/python3.11",
                        help="the interpreter of the profiled processes")
    parser.add_argument("--build-dir", default=os.environ.get("PRPC_BENCH_BUILD_DIR",
                                                               str(REPO / "build" / "dev")))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "profile"))
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    system = BY_NAME[args.system]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    adapter = importlib.import_module(f"{__package__}.systems.{system.module}")
    phases = int(args.pyspy) + int(args.perf) or 1
    plan = Plan(sequential=0, warmup_calls=100, levels=(args.callers,),
                level_seconds=phases * args.seconds + 3, level_warmup_seconds=1.0,
                ready_timeout=120 if args.callgrind else 60)
    with tempfile.TemporaryDirectory(prefix="prpc-profile.") as workdir:
        redis = RedisServer(Path(workdir))
        ctx = Context(repo=str(REPO), build_dir=str(Path(args.build_dir).resolve()),
                      python=args.python, redis_url=redis.url, workdir=workdir)
        env = ctx.python_env()
        argv = adapter.server(ctx, system.variant, args.workload)
        callgrind_out = out / f"{args.system}.server.callgrind"
        if args.callgrind:
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_out}",
                    "--trace-children=no"] + argv
        server = Server(argv, out / f"{args.system}.server.log", env, REPO)
        client = Server([args.python, "-m", f"{__package__}.client", "--system", system.name,
                         "--workload", args.workload, "--plan",
                         json.dumps(dataclasses.asdict(plan)), "--ctx", ctx.to_json()],
                        out / f"{args.system}.client.log", env, REPO)
        recorders = []
        try:
            # Sample once the load is on: Redis has served a few thousand commands.
            wait_until(lambda: _commands(redis) > 2000 or not client.alive(), 60, "the load")
            for who, pid in (("server", server.pid), ("client", client.pid)) if args.pyspy else ():
                cmd = [py_spy, "record", "--pid", str(pid), "--rate", str(args.rate),
                       "--duration", str(int(args.seconds)), "--format", "raw", "--subprocesses",
                       "--output", str(out / f"{args.system}.{who}.pyspy.txt")]
                if args.native:
                    cmd.append("--native")
                recorders.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                  stderr=open(out / f"pyspy.{who}.log", "wb")))
            for r in recorders:
                r.wait(args.seconds + 60)
            if args.perf:
                recorders.append(subprocess.Popen(
                    ["perf", "record", "-e", "cpu-clock", "-F", "199", "--call-graph", "dwarf,16384",
                     "-p", str(server.pid if args.perf_on == "server" else client.pid),
                     "-o", str(out / f"{args.system}.{args.perf_on}.perf.data"), "--",
                     "sleep", str(args.seconds)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for r in recorders:
                r.wait(args.seconds + 60)
            if args.callgrind:
                client.proc.wait(plan.level_seconds + plan.ready_timeout + 60)
        finally:
            client.stop()
            server.stop(grace=60 if args.callgrind else 3)
            redis.stop()

    for who in ("server", "client"):
        path = out / f"{args.system}.{who}.pyspy.txt"
        if not path.exists():
            print(f"no py-spy profile of the {who}: see {out / f'pyspy.{who}.log'}")
            continue
        own, inclusive, total = collapse(path)
        if total == 0:
            print(f"py-spy recorded no samples of the {who}")
            continue
        print(table(f"== {args.system} {who}, py-spy, self", own, total, args.top))
        print(table(f"== {args.system} {who}, py-spy, inclusive", inclusive, total, args.top))
        print()
    if args.callgrind and callgrind_out.exists():
        for what in (["--inclusive=no"], ["--inclusive=yes"]):
            report = subprocess.run(["callgrind_annotate", *what, str(callgrind_out)],
                                    capture_output=True, text=True)
            lines = [l for l in report.stdout.splitlines() if l.strip()]
            print(f"== {args.system} server, callgrind {what[0]}")
            print("\n".join(l[:160] for l in lines[:args.top + 20]))
    perf_data = out / f"{args.system}.{args.perf_on}.perf.data"
    if args.perf and perf_data.exists():
        for sort in ("dso", "dso,symbol"):
            report = subprocess.run(
                ["perf", "report", "-i", str(perf_data), "--stdio", "--no-children", "-g", "none",
                 "--sort", sort, "--percent-limit", "0.5"], capture_output=True, text=True)
            lines = [l.rstrip()[:140] for l in report.stdout.splitlines()
                     if l.strip() and not l.startswith("#")]
            print(f"== {args.system} {args.perf_on}, perf cpu-clock, self by {sort}")
            print("\n".join(lines[: args.top]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
