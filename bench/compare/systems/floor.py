"""The floor of DESIGN.md: bench/floor_hiredis.cpp, the smallest RPC over Redis written directly
on hiredis. It measures itself (its own C++ callers), against the harness's redis-server; this
adapter runs it and reads its report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..driver import Plan
from . import Context

# The names the floor program may have in the build tree, the first found wins.
PROGRAMS = ("bench/compare/floor_levels", "bench/floor_hiredis", "bin/floor_hiredis",
            "bench/prpc_bench_floor", "bin/prpc_bench_floor")


def program(ctx: Context) -> Path | None:
    for name in PROGRAMS:
        path = Path(ctx.build_dir) / name
        if path.is_file():
            return path
    return None


def available(ctx: Context) -> bool | str:
    if program(ctx) is None:
        return (f"the floor program is not built in {ctx.build_dir} (bench/floor_hiredis.cpp, "
                "CMake target floor_hiredis)")
    return True


def external(ctx: Context, variant: str, workload: str, plan: Plan) -> list[str]:
    path = program(ctx)
    assert path is not None
    port = ctx.redis_url.rsplit(":", 1)[1].split("/", 1)[0]
    argv = [str(path), "--port", port]
    if path.name == "floor_levels":
        argv += ["--calls", str(plan.sequential), "--warmup", str(plan.warmup_calls),
                 "--seconds", str(plan.level_seconds),
                 "--warmup-seconds", str(plan.level_warmup_seconds),
                 "--callers", ",".join(str(c) for c in plan.levels)]
    return argv


SEQUENTIAL = re.compile(r"p50\s+([\d.]+)\s*us\s+p99\s+([\d.]+)\s*us(?:\s+\((\d+) calls\))?")
LEVEL = re.compile(r"(\d+)\s+callers?:\s+([\d.]+)\s+calls/s(?:\s+\((\d+) calls\))?")


def parse(text: str, plan: Plan) -> dict[str, Any]:
    """The floor's two report lines, as a driver.Outcome dictionary."""
    seq = SEQUENTIAL.search(text)
    if seq is None:
        raise ValueError(f"no sequential latency in the floor's output: {text[-300:]!r}")
    levels = []
    for m in LEVEL.finditer(text):
        rate = float(m.group(2))
        calls = int(m.group(3)) if m.group(3) else 0
        levels.append({"callers": int(m.group(1)), "calls": calls or int(rate), "errors": 0,
                       "seconds": calls / rate if calls and rate else 0.0,
                       "calls_per_s": rate, "p50_us": None, "p99_us": None})
    return {"p50_us": float(seq.group(1)), "p99_us": float(seq.group(2)), "mean_us": None,
            "sequential_calls": int(seq.group(3) or 0), "sequential_errors": 0,
            "levels": levels, "first_error": None}
