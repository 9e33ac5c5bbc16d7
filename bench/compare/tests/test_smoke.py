"""The harness end to end on the systems that need nothing but the build tree, redis-py and
nats-py (the redis-py floor, PRPC's Python server, NATS request/reply): a real redis-server, a
real nats-server when it is installed, real servers, the report files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench.compare.procs import nats_server_binary

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def quick_run(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--quick", "--systems",
         "floor-py,prpc-py-thread,nats", "--workloads", "noop,echo,sleep,cpu", "--build-dir",
         str(build_dir), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    return {"rows": {(r["system"], r["workload"]): r for r in rows},
            "md": (out / "results.md").read_text(), "out": out}


def assert_measured(row: dict[str, Any]) -> None:
    assert row["status"] == "ok", row
    o = row["outcome"]
    assert 0 < o["p50_us"] <= o["p99_us"]
    assert [l["callers"] for l in o["levels"]] == [1, 8, 64]
    assert all(l["calls"] > 0 and l["errors"] == 0 for l in o["levels"]), o["levels"]
    assert row["peak_rss_bytes"] > 1 << 20


def test_the_python_floor_is_measured_and_reported(quick_run: dict[str, Any]) -> None:
    for workload in ("noop", "echo"):
        assert_measured(quick_run["rows"][("floor-py", workload)])
    # A workload a system does not run is a row with its reason, not a gap.
    cpu = quick_run["rows"][("floor-py", "cpu")]
    assert cpu["status"] == "n/a" and cpu["reason"]
    assert "| floor (redis-py) | asyncio |" in quick_run["md"]
    # The chart is drawn when matplotlib is importable, and then the table links it.
    if "](results.png)" in quick_run["md"]:
        assert (quick_run["out"] / "results.png").stat().st_size > 0


def test_prpc_python_is_measured_and_compared(quick_run: dict[str, Any], build_dir: Path) -> None:
    if not (build_dir / "lib" / "prpc" / "plugins" / "prpc_broker_redis.so").exists():
        pytest.skip("the Redis broker plugin is not built in this tree")
    for workload in ("noop", "echo"):
        assert_measured(quick_run["rows"][("prpc-py-thread", workload)])
    assert "| **PRPC Python, thread workers** | threads |" in quick_run["md"]
    assert "PRPC Python no-op (thread workers) p50 / floor p50" in quick_run["md"]
    if quick_run["rows"][("nats", "noop")]["status"] == "ok":
        # Both sides measured: the ratio to NATS is a number, not n/a.
        assert re.search(r"calls/s at 64 callers / NATS \| \d+\.\d\dx \|", quick_run["md"])


def test_nats_request_reply_is_measured_as_the_anchor(quick_run: dict[str, Any]) -> None:
    if nats_server_binary() is None:
        row = quick_run["rows"][("nats", "noop")]
        assert row["status"] == "n/a" and "nats-server is not installed" in row["reason"]
        pytest.skip("nats-server is not installed (scripts/deps.sh test installs it)")
    # The asyncio subscriber (noop, echo, sleep) and the queue group of processes (cpu).
    for workload in ("noop", "echo", "sleep", "cpu"):
        assert_measured(quick_run["rows"][("nats", workload)])
    # 64 callers of a 10 ms sleep can only pass 1,000 calls/s if the subscriber answers
    # concurrently (the bound is loose: the machine may be loaded).
    sleep = quick_run["rows"][("nats", "sleep")]["outcome"]["levels"][-1]
    assert sleep["calls_per_s"] > 1000, sleep
    md = quick_run["md"]
    assert "| NATS request/reply, nats-py (no durability) | asyncio |" in md
    assert "(one private instance, no JetStream)" in md
    assert "calls/s at 64 callers / NATS |" in md
    assert "x64 / CPU limit |" in md
    # The server's process tree holds both members of the group on the CPU workload.
    cpu = quick_run["rows"][("nats", "cpu")]
    assert cpu["peak_rss_bytes"] > quick_run["rows"][("nats", "noop")]["peak_rss_bytes"]
