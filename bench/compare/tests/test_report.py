"""The report's arithmetic and the parsing of the C++ programs' summaries, on fixed inputs."""

from __future__ import annotations

from bench.compare import report
from bench.compare.driver import Plan, percentile
from bench.compare.systems import native

PLAN = Plan(sequential=10, warmup_calls=1, levels=(1, 8, 64), level_seconds=1.0,
            level_warmup_seconds=0.1)


def row(system: str, workload: str, p50: float, rates: tuple[float, float, float],
        family: str = "peer") -> dict:
    return {"system": system, "label": system, "family": family, "driver": "threads",
            "config": "", "workload": workload, "status": "ok",
            "outcome": {"p50_us": p50, "p99_us": p50 * 2, "mean_us": p50, "sequential_calls": 10,
                        "sequential_errors": 0, "first_error": None,
                        "levels": [{"callers": c, "calls": int(r), "errors": 0, "seconds": 1.0,
                                    "calls_per_s": r, "p50_us": None, "p99_us": None}
                                   for c, r in zip((1, 8, 64), rates)]}}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_ratios_use_the_hiredis_floor_and_fall_back_to_the_python_floor() -> None:
    rows = [row("floor-py", "noop", 400, (1000, 2000, 4000), "floor"),
            row("prpc-py-thread", "noop", 200, (3000, 8000, 10000), "prpc")]
    assert report.floor_row(rows)["system"] == "floor-py"
    rows.append(row("floor", "noop", 100, (5000, 15000, 20000), "floor"))
    floor = report.floor_row(rows)
    assert floor["system"] == "floor"
    mine = report.find(rows, "prpc-py-thread", "noop")
    assert report.ratio(report.p50(mine), report.p50(floor)) == 2.0
    assert report.ratio(report.throughput(mine), report.throughput(floor)) == 0.5


META = {"date": "2026-01-01T00:00:00+00:00", "mode": "quick", "cpu": "cpu", "cores": 2,
        "memory_gib": 1, "kernel": "k", "python": "3", "redis_server": "7",
        "nats_server": "2.9.10", "prpc_commit": "abc", "packages": {"celery": "5"}}


def table_line(md: str, label: str) -> list[str]:
    """The cells of the first table row whose first cell is `label` (bold or not)."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0].strip("*") == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{md}")


def test_every_row_has_its_ratio_to_nats_beside_the_floor_ratios() -> None:
    rows = [row("floor", "noop", 100, (5000, 15000, 20000), "floor"),
            row("prpc-py-thread", "noop", 150, (3000, 8000, 12000), "prpc"),
            row("nats", "noop", 300, (2500, 10000, 24000), "anchor"),
            row("grpc", "noop", 450, (1500, 2000, 6000))]
    md = report.markdown(META, rows)
    # p50 / floor, x64 / floor, p50 / NATS, x64 / NATS
    assert table_line(md, "prpc-py-thread")[-4:] == ["1.50x", "0.60x", "0.50x", "0.50x"]
    assert table_line(md, "grpc")[-4:] == ["4.50x", "0.30x", "1.50x", "0.25x"]
    assert table_line(md, "nats")[-2:] == ["1.00x", "1.00x"]
    assert ("| PRPC Python no-op (thread workers) calls/s at 64 callers / NATS | 0.50x | >= 1x "
            "| **no** |") in md
    assert "| PRPC Python no-op (thread workers) p50 / NATS p50 | 0.50x | - | - |" in md
    assert "nats-server 2.9.10 (one private instance, no JetStream)" in md
    # NATS is the anchor, not a peer to beat by 3x: the best other peer stays gRPC.
    assert "best other peer (grpc) | 2.00x | >= 3x | **no** |" in md


def test_without_nats_the_nats_ratios_are_na() -> None:
    rows = [row("floor", "noop", 100, (5000, 15000, 20000), "floor"),
            row("prpc-py-thread", "noop", 150, (3000, 8000, 12000), "prpc")]
    md = report.markdown(META, rows)
    assert table_line(md, "prpc-py-thread")[-2:] == ["n/a", "n/a"]
    assert "/ NATS | n/a | >= 1x | n/a |" in md
    assert "nats-server" not in md


def test_the_cpu_line_reports_the_share_of_the_machine_s_cpu_limit() -> None:
    assert report.cpu_limit(2) == 400
    rows = [row("floor", "noop", 100, (5000, 15000, 20000), "floor"),
            row("prpc-py-process", "cpu", 6000, (150, 280, 300), "prpc"),
            row("celery-prefork", "cpu", 9000, (100, 150, 30)),
            row("nats", "cpu", 5500, (170, 320, 360), "anchor")]
    md = report.markdown(META, rows)
    assert ("| 5 ms CPU: PRPC Python best (prpc-py-process) calls/s at 64 / the machine's CPU "
            "limit (2 cores / 5 ms = 400 calls/s) | 75% | - | - |") in md
    # Instead of the ratio to Celery, not beside it.
    assert "5 ms CPU: PRPC Python best (prpc-py-process) / Celery best" not in md
    assert "x64 / CPU limit |" in md
    assert table_line(md, "prpc-py-process")[-1] == "75%"
    assert table_line(md, "nats")[-1] == "90%"
    assert table_line(md, "prpc-py-process")[-3:-1] == ["1.09x", "0.83x"]
    # Only the CPU table has the column.
    assert md.count("x64 / CPU limit |") == 1
    assert report.markdown(dict(META, cores=4), rows).count("(4 cores / 5 ms = 800 calls/s)") == 1


def test_targets_compare_prpc_with_celery_and_the_best_other_peer() -> None:
    rows = [row("floor", "noop", 100, (5000, 15000, 20000), "floor"),
            row("prpc-py-thread", "noop", 150, (3000, 8000, 12000), "prpc"),
            row("celery-threads", "noop", 2000, (400, 800, 1000)),
            row("grpc", "noop", 500, (1500, 2000, 3000)),
            row("arq", "noop", 6000, (100, 600, 1200)),
            {"system": "taskiq", "label": "taskiq", "family": "peer", "driver": "asyncio",
             "config": "", "workload": "noop", "status": "n/a", "reason": "it broke"}]
    meta = {"date": "2026-01-01T00:00:00+00:00", "mode": "quick", "cpu": "cpu", "cores": 2,
            "memory_gib": 1, "kernel": "k", "python": "3", "redis_server": "7",
            "prpc_commit": "abc", "packages": {"celery": "5"}}
    md = report.markdown(meta, rows)
    assert "| PRPC Python no-op (thread workers) p50 / floor p50 | 1.50x | <= 1.5x | yes |" in md
    assert "calls/s at 64 callers / floor | 0.60x | >= 0.6x | yes |" in md
    assert "Celery best (celery-threads), calls/s at 64 | 12x | >= 10x | yes |" in md
    assert "best other peer (grpc) | 4.00x | >= 3x | yes |" in md
    assert "- n/a (it broke): taskiq" in md


def test_the_second_rounds_goals_cover_the_cpp_path_kafka_and_the_sleep_workload() -> None:
    rows = [row("floor", "noop", 100, (5000, 15000, 20000), "floor"),
            row("prpc-host-cpp", "noop", 140, (4000, 12000, 15000), "prpc"),
            row("prpc-py-thread-kafka", "noop", 1800, (400, 2000, 5000), "prpc"),
            row("prpc-py-async", "sleep", 10500, (90, 700, 5000), "prpc"),
            row("grpc", "sleep", 10400, (90, 700, 4000))]
    md = report.markdown(META, rows)
    assert "| C++ client -> prpc-host no-op p50 / floor p50 | 1.40x | <= 1.3x | **no** |" in md
    # row() sets p99 to twice the p50.
    assert "over Kafka (thread workers), sequential p50 | 1.80 ms | <= 2 ms | yes |" in md
    assert "over Kafka (thread workers), sequential p99 | 3.60 ms | <= 5 ms | yes |" in md
    assert "| 10 ms sleep, async workers, calls/s at 64 callers / gRPC | 1.25x | >= 2x | **no** |" \
        in md


FLOOR_HIREDIS = """\
hiredis floor (XADD, then BLPOP): sequential p50 118.4 us  p99 240.2 us  (5000 calls)
hiredis floor: 64 callers: 30512 calls/s (91536 calls)
"""


def call_bench(callers: int, rate_floor: float, rate_prpc: float) -> str:
    return f"""\
Redis redis://127.0.0.1:1/0, 2 cores, 1 rounds of 10 sequential calls and 1000 ms with {callers} callers

(median of rounds)                       p50 us     p99 us        calls/s
hiredis floor (XADD, then BLPOP)          101.5      230.0          {rate_floor:.0f}
hiredis floor (XADD+BLPOP pipelined)       80.1      200.0          {rate_floor:.0f}
Redis broker alone (no engines)           150.0      300.0              -
PRPC over Redis ('noop')                  210.7      420.9          {rate_prpc:.0f}
"""


def test_native_reports_parse() -> None:
    alone = native.parse("floor", [FLOOR_HIREDIS], PLAN)
    assert (alone["p50_us"], alone["p99_us"]) == (118.4, 240.2)
    assert [(l["callers"], l["calls_per_s"]) for l in alone["levels"]] == [(64, 30512.0)]
    outputs = [call_bench(c, 1000.0 * c, 500.0 * c) for c in (1, 8, 64)]
    floor = native.parse("floor", outputs, PLAN)
    assert (floor["p50_us"], floor["p99_us"]) == (101.5, 230.0)
    assert [l["calls_per_s"] for l in floor["levels"]] == [1000.0, 8000.0, 64000.0]
    prpc = native.parse("prpc", outputs, PLAN)
    assert (prpc["p50_us"], prpc["p99_us"]) == (210.7, 420.9)
    assert [l["calls_per_s"] for l in prpc["levels"]] == [500.0, 4000.0, 32000.0]
