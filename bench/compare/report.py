"""results.json, results.md (tables with ratios to the floor, the targets, the machine) and
results.png (p50 latency and throughput at 64 callers per workload)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .systems import BY_NAME, PROCESSES
from .workloads import CPU_SECONDS, WORKLOADS

TOP_LEVEL = 64
# The anchor of broker RPC without durability: every row's ratio to it, per workload.
ANCHOR = "nats"
PRPC_PYTHON = ("prpc-py-thread", "prpc-py-thread-aio", "prpc-py-async", "prpc-py-process")


# ---- numbers out of rows ---------------------------------------------------------------------


def _ok(row: dict[str, Any] | None) -> bool:
    return bool(row) and row.get("status") == "ok"


def p50(row: dict[str, Any] | None) -> float | None:
    return row["outcome"].get("p50_us") if _ok(row) else None


def p99(row: dict[str, Any] | None) -> float | None:
    return row["outcome"].get("p99_us") if _ok(row) else None


def throughput(row: dict[str, Any] | None, callers: int = TOP_LEVEL) -> float | None:
    if not _ok(row):
        return None
    for level in row["outcome"].get("levels", []):
        if level["callers"] == callers and level["calls"] > 0:
            return level["calls_per_s"]
    return None


def errors(row: dict[str, Any]) -> int:
    if not _ok(row):
        return 0
    o = row["outcome"]
    return o.get("sequential_errors", 0) + sum(l.get("errors", 0) for l in o.get("levels", []))


def find(rows: list[dict[str, Any]], system: str, workload: str) -> dict[str, Any] | None:
    for row in rows:
        if row["system"] == system and row["workload"] == workload:
            return row
    return None


def floor_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The denominator of every ratio: the hiredis floor's no-op, else the redis-py floor's."""
    for name in ("floor", "floor-py"):
        row = find(rows, name, "noop")
        if _ok(row) and p50(row) and throughput(row):
            return row
    return None


def cpu_limit(cores: int) -> float:
    """Calls/s the machine could complete on the cpu workload if the work were all it did."""
    return cores / CPU_SECONDS


def best(rows: list[dict[str, Any]], workload: str, names: list[str]) -> tuple[str, float] | None:
    found = [(n, throughput(find(rows, n, workload))) for n in names]
    found = [(n, t) for n, t in found if t]
    return max(found, key=lambda x: x[1]) if found else None


# ---- formatting ------------------------------------------------------------------------------


def fmt_us(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_rate(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_ratio(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}x" if v < 10 else f"{v:.0f}x"


def fmt_share(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def fmt_mib(v: int | None) -> str:
    return "n/a" if not v else f"{v / 1048576:.0f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def progress_line(row: dict[str, Any]) -> str:
    head = f"{row['system']:18} {row['workload']:6}"
    if row["status"] != "ok":
        return f"{head} n/a  {row.get('reason', '')[:150]}"
    levels = " ".join(f"x{l['callers']}={fmt_rate(l['calls_per_s'])}/s"
                      for l in row["outcome"]["levels"])
    errs = errors(row)
    return (f"{head} p50 {fmt_us(p50(row))} us  p99 {fmt_us(p99(row))} us  {levels}  "
            f"rss {fmt_mib(row.get('peak_rss_bytes'))} MiB"
            + (f"  errors {errs}" if errs else "") + f"  ({row.get('wall_s', 0)} s)")


# ---- markdown --------------------------------------------------------------------------------


def _targets(rows: list[dict[str, Any]], floor: dict[str, Any] | None,
             cores: int) -> list[str]:
    out = ["## Targets (reported, not asserted)", "",
           "| target | measured | goal | met |", "|---|---|---|---|"]

    def line(what: str, value: float | None, goal: str, met: bool | None,
             shown: str | None = None) -> None:
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        if goal == "-":
            verdict = "-"
        out.append(f"| {what} | {shown or fmt_ratio(value)} | {goal} | {verdict} |")

    # The goals of the second speed round (issue 20), stricter than DESIGN.md's (<= 2x, >= 0.5x).
    thread = find(rows, "prpc-py-thread", "noop")
    r = ratio(p50(thread), p50(floor))
    line("PRPC Python no-op (thread workers) p50 / floor p50", r, "<= 1.5x",
         None if r is None else r <= 1.5)
    r = ratio(throughput(thread), throughput(floor))
    line(f"PRPC Python no-op (thread workers) calls/s at {TOP_LEVEL} callers / floor", r,
         ">= 0.6x", None if r is None else r >= 0.6)
    native = find(rows, "prpc-host-cpp", "noop")
    r = ratio(p50(native), p50(floor))
    line("C++ client -> prpc-host no-op p50 / floor p50", r, "<= 1.3x",
         None if r is None else r <= 1.3)
    kafka = find(rows, "prpc-py-thread-kafka", "noop")
    for name, value, goal_us in (("p50", p50(kafka), 2000), ("p99", p99(kafka), 5000)):
        line(f"PRPC Python over Kafka (thread workers), sequential {name}", None,
             f"<= {goal_us / 1000:g} ms", None if value is None else value <= goal_us,
             shown="n/a" if value is None else f"{value / 1000:.2f} ms")
    sleeper = find(rows, "prpc-py-async", "sleep")
    r = ratio(throughput(sleeper), throughput(find(rows, "grpc", "sleep")))
    line(f"10 ms sleep, async workers, calls/s at {TOP_LEVEL} callers / gRPC", r, ">= 2x",
         None if r is None else r >= 2)
    anchor = find(rows, ANCHOR, "noop")
    r = ratio(throughput(thread), throughput(anchor))
    line(f"PRPC Python no-op (thread workers) calls/s at {TOP_LEVEL} callers / NATS", r,
         ">= 1x", None if r is None else r >= 1)
    # No goal for latency: NATS keeps nothing, PRPC writes every request to a stream.
    line("PRPC Python no-op (thread workers) p50 / NATS p50", ratio(p50(thread), p50(anchor)),
         "-", None)
    peers = [s for s in BY_NAME.values() if s.family == "peer"]
    celery = [s.name for s in peers if s.name.startswith("celery")]
    others = [s.name for s in peers if not s.name.startswith("celery")]
    for workload in WORKLOADS:
        mine = best(rows, workload, list(PRPC_PYTHON))
        if mine is None:
            continue
        c = best(rows, workload, celery)
        o = best(rows, workload, others)
        title = WORKLOADS[workload].title
        if workload == "cpu":
            # Every system is bounded by the cores here, not by its design: say how close to
            # that bound PRPC gets instead of how far ahead of Celery it is.
            limit = cpu_limit(cores)
            share = mine[1] / limit
            line(f"{title}: PRPC Python best ({mine[0]}) calls/s at {TOP_LEVEL} / the machine's "
                 f"CPU limit ({cores} cores / {CPU_SECONDS * 1000:g} ms = {limit:,.0f} calls/s)",
                 share, "-", None, shown=fmt_share(share))
        else:
            r = ratio(mine[1], c[1] if c else None)
            line(f"{title}: PRPC Python best ({mine[0]}) / Celery best"
                 + (f" ({c[0]})" if c else "") + f", calls/s at {TOP_LEVEL}", r, ">= 10x",
                 None if r is None else r >= 10)
        r = ratio(mine[1], o[1] if o else None)
        line(f"{title}: PRPC Python best / best other peer" + (f" ({o[0]})" if o else ""),
             r, ">= 3x", None if r is None else r >= 3)
        if o and o[0].startswith("grpc"):
            # gRPC needs no broker: say how PRPC does against the best peer that has one too.
            b = best(rows, workload, [n for n in others if not n.startswith("grpc")])
            r = ratio(mine[1], b[1] if b else None)
            line(f"{title}: PRPC Python best / best other peer with a broker"
                 + (f" ({b[0]})" if b else ""), r, ">= 3x", None if r is None else r >= 3)
    out.append("")
    return out


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    floor = floor_row(rows)
    cores = int(meta.get("cores") or PROCESSES)
    floor_name = BY_NAME[floor["system"]].label if floor else "none measured"
    out = ["# PRPC against the floor and the peers", ""]
    out.append(f"{meta['date']}, {meta['mode']} run ({meta.get('wall_s', '?')} s). "
               f"{meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB, Linux "
               f"{meta['kernel']}; Python {meta['python']}; redis-server {meta['redis_server']} "
               f"(one private instance, FLUSHALL before every measurement); "
               + (f"nats-server {meta.get('nats_server', '?')} (one private instance, no "
                  "JetStream); " if any(r["system"] == ANCHOR for r in rows) else "")
               + f"PRPC "
               f"{meta['prpc_commit']}. Load average (1, 5, 15 min) before "
               f"{meta.get('loadavg_before')}, after {meta.get('loadavg_after')}.")
    out.append("")
    out.append(f"The floor columns are ratios to the no-op of **{floor_name}**"
               + (f" (p50 {fmt_us(p50(floor))} us, {fmt_rate(throughput(floor))} calls/s at "
                  f"{TOP_LEVEL} callers)." if floor else "."))
    out.append("Latency: sequential calls from one caller. Throughput: completed calls per second "
               "with 1, 8 and 64 concurrent callers in one client process. Peak RSS: the "
               "server's whole process tree, sampled every 50 ms."
               + (f" Each figure is the best of {meta['rounds']} rounds (the machine is shared; "
                  "the best round is the least disturbed)." if meta.get("rounds", 1) > 1 else ""))
    out.append("")
    anchor = [find(rows, ANCHOR, w) for w in WORKLOADS]
    if any(_ok(a) for a in anchor):
        out.append("The NATS columns are ratios to NATS request/reply on the same workload: "
                   "broker RPC without durability, where PRPC keeps every request in a stream.")
    if any(_ok(r) and r["workload"] == "cpu" for r in rows):
        out.append(f"On the CPU workload, \"x64 / CPU limit\" is the share of the calls/s "
                   f"that {cores} cores could complete if the 5 ms of work were all they did "
                   f"({cpu_limit(cores):,.0f} calls/s).")
    out.append("")
    out.extend(_targets(rows, floor, cores))
    for workload, spec in WORKLOADS.items():
        wrows = [r for r in rows if r["workload"] == workload]
        if not wrows:
            continue
        nats = find(rows, ANCHOR, workload)
        cpu = workload == "cpu"
        out += [f"## {spec.title}", "",
                "| system | driver | p50 us | p99 us | calls/s x1 | x8 | x64 | peak RSS MiB "
                "| p50 / floor | x64 calls/s / floor | p50 / NATS | x64 calls/s / NATS |"
                + (" x64 / CPU limit |" if cpu else ""),
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                + ("---:|" if cpu else "")]
        notes: list[str] = []
        not_run: dict[str, list[str]] = {}  # reason -> systems, one line per reason
        for r in wrows:
            if r["status"] != "ok":
                not_run.setdefault(r.get("reason") or "?", []).append(r["label"])
                continue
            lv = {l["callers"]: l for l in r["outcome"]["levels"]}
            rates = [fmt_rate(lv[c]["calls_per_s"]) if c in lv else "n/a" for c in (1, 8, 64)]
            label = f"**{r['label']}**" if r["family"] == "prpc" else r["label"]
            out.append(
                f"| {label} | {r['driver']} | {fmt_us(p50(r))} | {fmt_us(p99(r))} | "
                f"{' | '.join(rates)} | {fmt_mib(r.get('peak_rss_bytes'))} | "
                f"{fmt_ratio(ratio(p50(r), p50(floor)))} | "
                f"{fmt_ratio(ratio(throughput(r), throughput(floor)))} | "
                f"{fmt_ratio(ratio(p50(r), p50(nats)))} | "
                f"{fmt_ratio(ratio(throughput(r), throughput(nats)))} |"
                + (f" {fmt_share(ratio(throughput(r), cpu_limit(cores)))} |" if cpu else ""))
            if errors(r):
                notes.append(f"- {r['label']}: {errors(r)} failed calls, first: "
                             f"{r['outcome'].get('first_error')}")
            for key in ("note", "rss_note"):
                if r.get(key):
                    notes.append(f"- {r['label']}: {'peak RSS is ' if key == 'rss_note' else ''}"
                                 f"{r[key]}")
        out.append("")
        notes += [f"- n/a ({reason}): {'; '.join(labels)}" for reason, labels in not_run.items()]
        if notes:
            out += notes + [""]
    out += ["## Configurations", "", "| system | server configuration |", "|---|---|"]
    seen = []
    for r in rows:
        if r["system"] not in seen:
            seen.append(r["system"])
            out.append(f"| {r['label']} | {r['config']} |")
    out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()), ""]
    return "\n".join(out)


# ---- chart -----------------------------------------------------------------------------------

COLOURS = {"floor": "#7f7f7f", "prpc": "#d62728", "peer": "#1f77b4", "anchor": "#2ca02c"}


def chart(path: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    workloads = [w for w in WORKLOADS if any(_ok(r) and r["workload"] == w for r in rows)]
    if not workloads:
        return False
    heights = [max(1.5, 0.32 * sum(1 for r in rows if _ok(r) and r["workload"] == w) + 0.9)
               for w in workloads]
    fig, axes = plt.subplots(len(workloads), 2, figsize=(13, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for (ax_lat, ax_thr), workload in zip(axes, workloads):
        wrows = [r for r in rows if _ok(r) and r["workload"] == workload]
        labels = [r["label"] for r in wrows]
        colours = [COLOURS.get(r["family"], "#333333") for r in wrows]
        ys = range(len(wrows))
        lat = [p50(r) or 0 for r in wrows]
        thr = [throughput(r) or 0 for r in wrows]
        ax_lat.barh(ys, lat, color=colours)
        ax_thr.barh(ys, thr, color=colours)
        for ax, values, unit in ((ax_lat, lat, "us"), (ax_thr, thr, "/s")):
            # Linear: on a log axis bar lengths exaggerate small differences.
            ax.set_xlim(0, max(values + [1]) * 1.3)
            ax.invert_yaxis()
            for y, v in zip(ys, values):
                if v:
                    ax.text(v, y, f" {v:,.0f}{unit}", va="center", fontsize=7)
        ax_lat.set_yticks(list(ys), labels, fontsize=8)
        ax_thr.set_yticks(list(ys), [""] * len(wrows))
        title = WORKLOADS[workload].title
        ax_lat.set_title(f"{title}: sequential p50 latency (us, lower is better)", fontsize=9)
        ax_thr.set_title(f"{title}: calls/s with {TOP_LEVEL} callers (higher is better)",
                         fontsize=9)
    fig.suptitle(f"PRPC against the floor and the peers: {meta['cpu']}, {meta['cores']} cores, "
                 f"{meta['date'][:10]} ({meta['mode']} run)", fontsize=10)
    # Leave the suptitle its own strip above the first row of panels.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / sum(heights)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    md = markdown(meta, rows)
    if chart(out / "results.png", meta, rows):
        md += "\n![p50 latency and throughput per workload](results.png)\n"
    (out / "results.md").write_text(md)


if __name__ == "__main__":
    # Renders results.md and results.png again from a results.json (after a report change).
    import sys

    results = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/results.json")
    data = json.loads(results.read_text())
    write(results.parent, data["meta"], data["rows"])
