"""The C++ programs that measure themselves, against the harness's redis-server:

- the floor of DESIGN.md (bench/floor_hiredis.cpp: XADD -> XREADGROUP -> LPUSH -> BLPOP written
  directly on hiredis, a server thread beside the callers);
- PRPC's native client path (bench/redis_call_bench.cpp: a C++ prpc::Client calling prpc-host
  serving functions_example's `noop` on a thread executor).

redis_call_bench measures both in one run, at one concurrency level per run, so it is run once per
level; without it the floor comes from floor_hiredis, which measures 64 callers only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..driver import Plan
from . import Context

CALL_BENCH = ("bench/redis_call_bench", "bin/redis_call_bench")
FLOOR = ("bench/floor_hiredis", "bin/floor_hiredis", "bench/prpc_bench_floor")
# Rows of redis_call_bench's summary table: name, p50 us, p99 us, calls/s.
ROWS = {"floor": "hiredis floor (XADD, then BLPOP)", "prpc": "PRPC over Redis"}
NUMBER = r"([\d.]+)"


def _find(ctx: Context, names: tuple[str, ...]) -> Path | None:
    for name in names:
        path = Path(ctx.build_dir) / name
        if path.is_file():
            return path
    return None


def _port(ctx: Context) -> str:
    return ctx.redis_url.rsplit(":", 1)[1].split("/", 1)[0]


def available(ctx: Context, variant: str) -> bool | str:
    if _find(ctx, CALL_BENCH) or (variant == "floor" and _find(ctx, FLOOR)):
        return True
    wanted = "redis_call_bench or floor_hiredis" if variant == "floor" else "redis_call_bench"
    return f"{wanted} is not built in {ctx.build_dir} (bench/CMakeLists.txt)"


def external(ctx: Context, variant: str, workload: str, plan: Plan) -> list[list[str]]:
    bench = _find(ctx, CALL_BENCH)
    if bench is None:
        floor = _find(ctx, FLOOR)
        assert floor is not None
        return [[str(floor), "--port", _port(ctx)]]
    common = [str(bench), "--port", _port(ctx), "--function", "noop", "--rounds", "1",
              "--calls", str(plan.sequential), "--workers", str(ctx.threads),
              "--duration-ms", str(int(plan.level_seconds * 1000))]
    if variant == "prpc":
        common.append("--skip-floor")
    return [common + ["--callers", str(c)] for c in plan.levels]


def _outcome(p50: float, p99: float, levels: list[dict[str, Any]]) -> dict[str, Any]:
    return {"p50_us": p50, "p99_us": p99, "mean_us": None, "sequential_calls": 0,
            "sequential_errors": 0, "levels": levels, "first_error": None}


def _level(callers: int, rate: float) -> dict[str, Any]:
    return {"callers": callers, "calls": int(rate), "errors": 0, "seconds": 0.0,
            "calls_per_s": rate, "p50_us": None, "p99_us": None}


def parse(variant: str, outputs: list[str], plan: Plan) -> dict[str, Any]:
    """The programs' summaries as a driver.Outcome dictionary: the sequential figures of the
    first run, the throughput of each run at its level."""
    if len(outputs) == 1 and "hiredis floor:" in outputs[0]:  # floor_hiredis alone
        text = outputs[0]
        seq = re.search(rf"p50 {NUMBER} us\s+p99 {NUMBER} us", text)
        level = re.search(rf"(\d+) callers: {NUMBER} calls/s", text)
        if seq is None or level is None:
            raise ValueError(f"floor_hiredis printed no summary: {text[-300:]!r}")
        return _outcome(float(seq.group(1)), float(seq.group(2)),
                        [_level(int(level.group(1)), float(level.group(2)))])
    row = re.compile(re.escape(ROWS[variant]) + rf".*?\s{NUMBER}\s+{NUMBER}\s+{NUMBER}\s*$",
                     re.MULTILINE)
    figures = []
    for text in outputs:
        m = row.search(text)
        if m is None:
            raise ValueError(f"no {ROWS[variant]!r} row in redis_call_bench's output: "
                             f"{text[-300:]!r}")
        figures.append(tuple(float(g) for g in m.groups()))
    errors = [t for t in outputs if "errors during the concurrent runs" in t]
    out = _outcome(figures[0][0], figures[0][1],
                   [_level(c, f[2]) for c, f in zip(plan.levels, figures)])
    if errors:
        out["first_error"] = "redis_call_bench reported failed calls"
    return out
