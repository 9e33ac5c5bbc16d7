"""The orchestrator: one private redis-server, then for every (system, workload): FLUSHALL, start
the system's server, drive it from a separate client process while sampling the server's memory,
stop it. Writes results.json, results.md and results.png under the output directory.

    python -m bench.compare [--quick] [--systems a,b] [--workloads noop,echo] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import fnmatch
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report
from .driver import Plan
from .procs import KafkaServer, NatsServer, PeakRss, RedisServer, Server, nats_server_version, tail
from .systems import SYSTEMS, Context, System
from .workloads import WORKLOADS

REPO = Path(__file__).resolve().parents[2]
PEER_PACKAGES = ("celery", "kombu", "redis", "arq", "taskiq", "taskiq-redis", "dramatiq",
                 "faststream", "grpcio", "nats-py", "matplotlib", "py-spy")


def make_plan(workload: str, quick: bool) -> Plan:
    seq_full, seq_quick = WORKLOADS[workload].sequential
    slow = workload in ("sleep", "cpu")
    if quick:
        return Plan(sequential=seq_quick, warmup_calls=5 if slow else 20, levels=(1, 8, 64),
                    level_seconds=0.25, level_warmup_seconds=0.05, ready_timeout=10,
                    sequential_seconds=0.5)
    return Plan(sequential=seq_full, warmup_calls=20 if slow else 100, levels=(1, 8, 64),
                level_seconds=1.5, level_warmup_seconds=0.5, sequential_seconds=2.0)


def select(names: str | None, available: list[str], what: str) -> list[str]:
    """Comma-separated names or shell patterns (prpc-*), in the registry's order."""
    if not names:
        return available
    patterns = [n.strip() for n in names.split(",") if n.strip()]
    for p in patterns:
        if not any(fnmatch.fnmatch(a, p) for a in available):
            raise SystemExit(f"unknown {what} {p!r}; choose from: {', '.join(available)}")
    return [a for a in available if any(fnmatch.fnmatch(a, p) for p in patterns)]


def machine_description(redis: RedisServer, ctx: Context) -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PEER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis.version(),
        "nats_server": nats_server_version(),
        "prpc_commit": commit or "?",
        "build_dir": ctx.build_dir,
        "packages": versions,
    }


class Runner:
    def __init__(self, ctx: Context, redis: RedisServer, out: Path, quick: bool) -> None:
        self.ctx = ctx
        self.redis = redis
        self.out = out
        self.quick = quick
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.units = 0
        self.kafka: KafkaServer | None = None
        self.kafka_error: str | None = None
        self.nats: NatsServer | None = None
        self.nats_error: str | None = None

    def start_kafka(self) -> None:
        """Starts the Kafka broker once for the Kafka systems of a round (it is not left running
        under the others: its JVM would take their CPU)."""
        if self.kafka is None and self.kafka_error is None:
            try:
                self.kafka = KafkaServer(Path(self.ctx.workdir), REPO)
            except Exception as exc:  # noqa: BLE001 - the Kafka rows say why
                self.kafka_error = f"Kafka: {exc}"[:400]

    def stop_kafka(self) -> None:
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None

    def start_nats(self) -> None:
        """Starts nats-server once, for the NATS system: like Redis, it only runs for the
        harness."""
        if self.nats is None and self.nats_error is None:
            try:
                self.nats = NatsServer(Path(self.ctx.workdir))
            except Exception as exc:  # noqa: BLE001 - the NATS rows say why
                self.nats_error = f"NATS: {exc}"[:400]

    def stop_brokers(self) -> None:
        self.stop_kafka()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None

    def run(self, system: System, workload: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "system": system.name, "label": system.label, "family": system.family,
            "driver": system.driver, "config": system.config, "workload": workload,
        }
        reason = system.workloads.get(workload, "not defined for this system")
        if reason is not None:
            row.update(status="n/a", reason=reason)
            return row
        plan = make_plan(workload, self.quick)
        started = time.monotonic()
        self.units += 1
        ctx = dataclasses.replace(self.ctx, queue=f"bench{self.units}")
        try:
            if system.extra.get("needs") == "kafka":
                self.start_kafka()
                if self.kafka is None:
                    row.update(status="n/a", reason=self.kafka_error)
                    return row
                ctx = dataclasses.replace(ctx, kafka_bootstrap=self.kafka.bootstrap)
            if system.extra.get("needs") == "nats":
                self.start_nats()
                if self.nats is None:
                    row.update(status="n/a", reason=self.nats_error)
                    return row
                ctx = dataclasses.replace(ctx, nats_url=self.nats.url)
            self.redis.flushall()
            adapter = importlib.import_module(f"{__package__}.systems.{system.module}")
            measure = self._external if hasattr(adapter, "external") else self._measure
            row.update(measure(ctx, adapter, system, workload, plan))
        except Exception as exc:  # noqa: BLE001 - one system's failure is a row, not a crash
            row.update(status="n/a", reason=f"harness: {type(exc).__name__}: {exc}"[:400])
        row["wall_s"] = round(time.monotonic() - started, 1)
        return row

    def _log(self, system: System, workload: str, what: str) -> Path:
        return self.logs / f"{system.name}.{workload}.{what}.log"

    def _external(self, ctx: Context, adapter: Any, system: System, workload: str,
                  plan: Plan) -> dict[str, Any]:
        available = adapter.available(ctx, system.variant)
        if available is not True:
            return {"status": "n/a", "reason": available}
        outputs, peak = [], 0
        for i, argv in enumerate(adapter.external(ctx, system.variant, workload, plan)):
            log = self._log(system, workload, f"program{i}")
            program = Server(argv, log, ctx.python_env(), REPO)
            rss = PeakRss(program.pid)
            try:
                program.proc.wait(self._budget(plan))
            except subprocess.TimeoutExpired:
                pass
            finally:
                peak = max(peak, rss.stop())
                code = program.stop()
            if code != 0:
                return {"status": "n/a", "reason": f"{Path(argv[0]).name} exited with {code}: "
                                                   f"{tail(log, 3)}"}
            outputs.append(log.read_text(errors="replace"))
        try:
            outcome = adapter.parse(system.variant, outputs, plan)
        except ValueError as exc:
            return {"status": "n/a", "reason": str(exc)}
        return {"status": "ok", "outcome": outcome, "peak_rss_bytes": peak,
                "rss_note": "the whole program tree, its callers included"}

    def _budget(self, plan: Plan) -> float:
        per_level = plan.level_warmup_seconds + plan.level_seconds + plan.call_timeout
        return plan.ready_timeout + 120 + len(plan.levels) * per_level

    def _measure(self, ctx: Context, adapter: Any, system: System, workload: str,
                 plan: Plan) -> dict[str, Any]:
        env = ctx.python_env()
        argv = adapter.server(ctx, system.variant, workload)
        server = Server(argv, self._log(system, workload, "server"), env, REPO) if argv else None
        rss = PeakRss(server.pid) if server else None
        client_log = self._log(system, workload, "client")
        result_path = self._log(system, workload, "result")
        try:
            with open(client_log, "wb") as err, open(result_path, "wb") as res:
                proc = subprocess.Popen(
                    [ctx.python, "-m", f"{__package__}.client", "--system", system.name,
                     "--workload", workload, "--plan", json.dumps(dataclasses.asdict(plan)),
                     "--ctx", ctx.to_json()],
                    stdout=res, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
                deadline = time.monotonic() + self._budget(plan)
                # A server that dies fails the measurement now, not after the client's timeouts.
                try:
                    while proc.poll() is None:
                        if time.monotonic() > deadline or (server and not server.alive()):
                            proc.wait(2)
                            break
                        time.sleep(0.1)
                except subprocess.TimeoutExpired:
                    pass
                finally:
                    if proc.poll() is None:  # overran, or the harness is being stopped
                        proc.kill()
                        proc.wait()
            server_died = server is not None and not server.alive()
        finally:
            peak = rss.stop() if rss else None
            if server:
                server.stop()
        lines = [l for l in result_path.read_text(errors="replace").splitlines()
                 if l.startswith("RESULT ")]
        if not lines:
            why = f"client exited with {proc.returncode}: {tail(client_log, 3)}"
            if server_died:
                why = "server exited: " + tail(self._log(system, workload, "server"), 3)
            return {"status": "n/a", "reason": why}
        result = json.loads(lines[-1][len("RESULT "):])
        if "error" in result:
            reason = result["error"]
            last = tail(self._log(system, workload, "server"), 1)[:300]
            if server_died:
                reason += " | server exited: " + last
            elif last:
                reason += " | server's last words: " + last
            return {"status": "n/a", "reason": reason}
        row: dict[str, Any] = {"status": "ok", "outcome": result["outcome"]}
        if peak is not None:
            row["peak_rss_bytes"] = peak
        if server_died:
            row["note"] = "the server exited during the run"
        return row


def best_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a measurement's rounds: the sequential figures of the round with the lowest
    p50, each level's throughput from the round where it was highest, the highest peak RSS.
    On a shared machine the best round is the least disturbed one."""
    ok = [r for r in rounds if r["status"] == "ok"]
    if len(ok) <= 1:
        return ok[0] if ok else rounds[0]
    seq = min(ok, key=lambda r: r["outcome"]["p50_us"] or float("inf"))
    row = json.loads(json.dumps(seq))
    levels = []
    for i, level in enumerate(row["outcome"]["levels"]):
        candidates = [r["outcome"]["levels"][i] for r in ok if len(r["outcome"]["levels"]) > i]
        levels.append(max(candidates, key=lambda l: l["calls_per_s"]) if candidates else level)
    row["outcome"]["levels"] = levels
    peaks = [r["peak_rss_bytes"] for r in ok if r.get("peak_rss_bytes")]
    if peaks:
        row["peak_rss_bytes"] = max(peaks)
    row["rounds"] = [{"p50_us": r["outcome"]["p50_us"],
                      "calls_per_s": [l["calls_per_s"] for l in r["outcome"]["levels"]]}
                     for r in ok]
    row["wall_s"] = round(sum(r.get("wall_s", 0) for r in rounds), 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: few calls, half-second windows")
    parser.add_argument("--systems", help="comma-separated names or patterns (default: all)")
    parser.add_argument("--workloads", help="comma-separated workloads (default: all)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"),
                        help="where results.{json,md,png} and logs/ go")
    parser.add_argument("--build-dir", default=os.environ.get("PRPC_BENCH_BUILD_DIR",
                                                               str(REPO / "build" / "dev")))
    parser.add_argument("--rounds", type=int, default=0,
                        help="measure everything this many times and keep the best round of "
                             "each figure (default: 2, or 1 with --quick)")
    parser.add_argument("--list", action="store_true", help="list the systems and exit")
    args = parser.parse_args(argv)

    if args.list:
        for s in SYSTEMS:
            runs = ",".join(w for w, r in s.workloads.items() if r is None)
            print(f"{s.name:18} {s.label:40} [{runs}]")
        return 0
    # SIGTERM unwinds like Ctrl-C, so the servers and redis-server are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))
    systems = select(args.systems, [s.name for s in SYSTEMS], "system")
    workloads = select(args.workloads, list(WORKLOADS), "workload")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="prpc-bench.") as workdir:
        redis = RedisServer(Path(workdir))
        runner: Runner | None = None
        try:
            ctx = Context(repo=str(REPO), build_dir=str(Path(args.build_dir).resolve()),
                          python=sys.executable, redis_url=redis.url, workdir=workdir,
                          quick=args.quick)
            meta = machine_description(redis, ctx)
            meta["mode"] = "quick" if args.quick else "full"
            # The machine may be shared: the load before and after says how quiet it was.
            meta["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
            runner = Runner(ctx, redis, out, args.quick)
            rounds = args.rounds or (1 if args.quick else 2)
            meta["rounds"] = rounds
            by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
            started = time.monotonic()
            # Rounds go over every system in turn, so a burst of load from elsewhere on a shared
            # machine hits one round of a system, not all of them.
            chosen = [s for s in SYSTEMS if s.name in systems]
            # The Kafka systems go last in each round, with the broker started for them only.
            chosen.sort(key=lambda s: s.extra.get("needs") == "kafka")
            for n in range(rounds):
                for system in chosen:
                    for workload in workloads:
                        done = by_key.setdefault((system.name, workload), [])
                        if done and done[0]["status"] != "ok":
                            continue  # n/a by design, or failed once: once is enough
                        row = runner.run(system, workload)
                        done.append(row)
                        prefix = f"[{n + 1}/{rounds}] " if rounds > 1 else ""
                        print(prefix + report.progress_line(row), flush=True)
                runner.stop_brokers()
            rows = [best_of(r) for r in by_key.values()]
            meta["wall_s"] = round(time.monotonic() - started)
            meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        finally:
            if runner is not None:
                runner.stop_brokers()
            redis.stop()
    report.write(out, meta, rows)
    print()
    print((out / "results.md").read_text())
    return 0
