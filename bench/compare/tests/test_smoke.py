"""The harness end to end on the two systems that need nothing but the build tree and redis-py:
a real redis-server, real servers, the report files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_quick_run_measures_and_reports(build_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--quick", "--systems", "floor-py,prpc-py-thread",
         "--workloads", "noop,echo,cpu", "--build-dir", str(build_dir), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    measured = {(r["system"], r["workload"]): r for r in rows}
    for key in [("floor-py", "noop"), ("floor-py", "echo"), ("prpc-py-thread", "noop"),
                ("prpc-py-thread", "echo")]:
        r = measured[key]
        assert r["status"] == "ok", r
        o = r["outcome"]
        assert 0 < o["p50_us"] <= o["p99_us"]
        assert [l["callers"] for l in o["levels"]] == [1, 8, 64]
        assert all(l["calls"] > 0 and l["errors"] == 0 for l in o["levels"]), o["levels"]
        assert r["peak_rss_bytes"] > 1 << 20
    # A workload a system does not run is a row with its reason, not a gap.
    assert measured[("prpc-py-thread", "cpu")]["status"] == "n/a"
    assert measured[("prpc-py-thread", "cpu")]["reason"]
    md = (out / "results.md").read_text()
    assert "| **PRPC Python, thread workers** | threads |" in md
    assert "Ratios are to the no-op of **floor (redis-py)**" in md
