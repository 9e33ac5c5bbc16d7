"""One queue over 1 vs 3 Redis Cluster masters: `redis+cluster://...?shards=1` against `?shards=3`.

Starts a private Redis Cluster of 3 masters (no replicas; the test fixture's RedisCluster class),
then, in interleaved rounds, for each shard count: a fresh queue, `--servers` prpc-host processes
serving functions_example's `noop` (or Python servers, `--server python`), and `--clients`
client processes of `--callers` threads each calling `noop` for `--seconds`. Reports calls/s and,
per master over the window, the commands processed (INFO stats total_commands_processed), the
XACKs (INFO commandstats: one per call, on the request stream that carried it) and the CPU time
of its command thread (INFO cpu, main thread).

With one shard the queue's request stream lives on one master, which gets every XACK; with
three, each master gets a third. Results and reply streams hash on their own keys whatever the
shard count. On a machine with few cores the clients and servers take the CPU, so throughput
grows only as far as the CPUs allow (on 2 cores it does not); the per-master load is the figure
that shows the spreading.

    python3 bench/cluster_scale.py [--build-dir build/dev] [--rounds 3] [--seconds 10]
        [--servers 2] [--clients 6] [--callers 11] [--server host|python] [--shards 1,3]

Numbers only, never assertions; not part of the test suites.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python" / "support"))

WARMUP_SECONDS = 2.0


# ---- the client process ------------------------------------------------------------------

def client_main(url: str, queue: str, callers: int, raw: bool) -> None:
    """Prints "ready" once a call succeeded, reads "<t0> <t1>" (time.time()) from stdin, calls
    `noop` from `callers` threads until t1, and prints a JSON line with what finished in
    [t0, t1]."""
    import prpc

    client = prpc.Client("redis", url, queue, raw=raw)
    deadline = time.monotonic() + 120
    while True:
        try:
            client.call_with("noop", (), timeout=5).sync_wait_result_task(5)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    print("ready", flush=True)
    t0, t1 = (float(x) for x in sys.stdin.readline().split())
    lock = threading.Lock()
    calls, errors, latencies = [0], [0], []

    def run() -> None:
        while True:
            started = time.time()
            if started >= t1:
                return
            try:
                client.call_with("noop", (), timeout=30).sync_wait_result_task(30)
                ok = True
            except Exception:
                ok = False
            ended = time.time()
            if t0 <= ended <= t1:
                with lock:
                    if ok:
                        calls[0] += 1
                        latencies.append(ended - started)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=run) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else None
    print(json.dumps({"calls": calls[0], "errors": errors[0], "p50": p50}), flush=True)


# ---- a CPU budget per master --------------------------------------------------------------

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (cgroup v2: cpu.max)


class CpuBudget:
    """Caps each master's process at `percent` of one core (a CFS quota in a cgroup of its own),
    as if each ran on a small machine of its own: then the masters, not the shared CPUs of the
    callers and servers, are what one queue is limited by, and spreading it over N masters
    shows what it buys. Needs root and a writable cgroup cpu controller (v1 or v2)."""

    def __init__(self, percent: float) -> None:
        self.percent = percent
        self.groups: list[Path] = []
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        self.v2 = v2.exists() and "cpu" in v2.read_text().split()
        self.root = Path("/sys/fs/cgroup") if self.v2 else CGROUP_CPU

    def cap(self, name: str, pid: int) -> None:
        group = self.root / f"prpc-bench-{name}"
        group.mkdir(exist_ok=True)
        period = 100_000
        quota = max(1000, int(period * self.percent / 100))
        if self.v2:
            (group / "cpu.max").write_text(f"{quota} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        (group / "cgroup.procs").write_text(str(pid))
        self.groups.append(group)

    def close(self) -> None:
        for group in self.groups:
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    (self.root / "cgroup.procs").write_text(pid)
                group.rmdir()
            except OSError:
                pass


# ---- the harness -------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, cluster, workdir: Path) -> None:
        self.args = args
        self.cluster = cluster
        self.workdir = workdir
        self.build = Path(args.build_dir).resolve()
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(self.build / "python"), str(ROOT), self.env.get("PYTHONPATH", "")])
        self.env.setdefault("PRPC_LOG_LEVEL", "error")
        self.masters = cluster.masters()
        self.runs = 0

    def server_argv(self, url: str, queue: str) -> list[str]:
        if self.args.server == "python":
            return [sys.executable, "-m", "bench.compare.systems.prpc_py", "redis", url,
                    "thread", "8", queue]
        settings = {"broker.type": "redis", "broker.url": url, "queue.name": queue,
                    "functions.plugins": "example", "codec.python": "none",
                    "executors.thread.workers": "8"}
        argv = [str(self.build / "bin" / "prpc-host")]
        for key, value in settings.items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def url(self, shards: int) -> str:
        return f"{self.cluster.url()}?shards={shards}"

    def counters(self) -> dict[int, tuple[int, int, float]]:
        """Per master: commands processed, XACKs (one per call, on the request stream) and the
        CPU seconds of its main thread (the one that runs commands)."""
        out = {}
        for port in self.masters:
            with self.cluster.client(port) as c:
                total = int(c.info("stats")["total_commands_processed"])
                xack = int(c.info("commandstats").get("cmdstat_xack", {}).get("calls", 0))
                cpu = c.info("cpu")
                busy = (float(cpu["used_cpu_user_main_thread"])
                        + float(cpu["used_cpu_sys_main_thread"]))
                out[port] = (total, xack, busy)
        return out

    def measure(self, shards: int) -> dict:
        from service_process import start_process, stop_process

        self.runs += 1
        queue = f"bench_{self.runs}_{shards}"
        url = self.url(shards)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        servers, clients = [], []
        try:
            for i in range(self.args.servers):
                servers.append(start_process(self.server_argv(url, queue),
                                             logs / f"{queue}.server{i}.log", self.env))
            raw = "1" if self.args.server == "host" else "0"
            for _ in range(self.args.clients):
                clients.append(subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--client", url, queue,
                     str(self.args.callers), raw],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=self.env,
                    cwd=ROOT))
            for c in clients:
                assert c.stdin is not None and c.stdout is not None
                line = c.stdout.readline().strip()  # the client's own bound: 120 s
                if line != "ready":
                    raise RuntimeError(f"a client did not get ready (said {line!r}); "
                                       f"server logs in {logs}")
            t0 = time.time() + WARMUP_SECONDS
            t1 = t0 + self.args.seconds
            for c in clients:
                assert c.stdin is not None
                c.stdin.write(f"{t0} {t1}\n")
                c.stdin.flush()
            time.sleep(max(0.0, t0 - time.time()))  # a measuring window, not a readiness wait
            before = self.counters()
            time.sleep(max(0.0, t1 - time.time()))
            after = self.counters()
            results = [json.loads(c.communicate(timeout=120)[0].strip().splitlines()[-1])
                       for c in clients]
        finally:
            for c in clients:
                if c.poll() is None:
                    c.kill()
                c.wait()
            for s in servers:
                stop_process(s)
        calls = sum(r["calls"] for r in results)
        delta = {p: after[p][0] - before[p][0] for p in self.masters}
        acks = {p: after[p][1] - before[p][1] for p in self.masters}
        busy = {p: after[p][2] - before[p][2] for p in self.masters}
        p50s = [r["p50"] for r in results if r["p50"] is not None]
        return {"shards": shards, "calls_per_s": calls / self.args.seconds,
                "errors": sum(r["errors"] for r in results),
                "p50_ms": statistics.median(p50s) * 1e3 if p50s else None,
                "commands_per_s": {p: d / self.args.seconds for p, d in delta.items()},
                "xacks_per_s": {p: d / self.args.seconds for p, d in acks.items()},
                "cpu_share": {p: d / self.args.seconds for p, d in busy.items()},
                "commands_per_call": sum(delta.values()) / calls if calls else None}


def shares(per_master: dict[int, float]) -> str:
    """Each master's share, the largest first."""
    total = sum(per_master.values()) or 1
    return " ".join(f"{v / total:4.0%}" for v in sorted(per_master.values(), reverse=True))


def busiest_share(per_master: dict[int, float]) -> float:
    return max(per_master.values()) / (sum(per_master.values()) or 1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--client":
        client_main(argv[1], argv[2], int(argv[3]), argv[4] == "1")
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=str(ROOT / "build" / "dev"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--servers", type=int, default=2)
    # Several client processes, as in a deployment: each has its own reply stream, on one master.
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--callers", type=int, default=11, help="threads per client process")
    p.add_argument("--server", choices=("host", "python"), default="host")
    p.add_argument("--shards", default="1,3", help="shard counts to compare")
    p.add_argument("--json", help="also write every figure to this file")
    p.add_argument("--master-cpu", type=float, default=0,
                   help="cap each master at this percent of one core (0: no cap), so that the "
                        "masters are the limit, as on small machines of their own")
    args = p.parse_args(argv)
    shard_counts = [int(s) for s in args.shards.split(",")]
    if args.server == "host" and not (Path(args.build_dir) / "bin" / "prpc-host").exists():
        p.error(f"{args.build_dir}/bin/prpc-host is not built")

    from redis_cluster_fixture import RedisCluster

    workdir = Path(tempfile.mkdtemp(prefix="prpc-cluster-bench-"))
    cluster = RedisCluster(workdir / "cluster", masters=3, replicas_per_master=0)
    rows = []
    budget = CpuBudget(args.master_cpu) if args.master_cpu > 0 else None
    try:
        bench = Bench(args, cluster, workdir)
        if budget is not None:
            for port in bench.masters:
                with cluster.client(port) as c:
                    budget.cap(str(port), int(c.info("server")["process_id"]))
        cap = f", each master capped at {args.master_cpu:g}% of a core" if budget else ""
        print(f"Redis Cluster of 3 masters {bench.masters} (no replicas{cap}), "
              f"{os.cpu_count()} CPUs; "
              f"{args.servers} {args.server} servers, {args.clients} client processes x "
              f"{args.callers} callers, {args.seconds:g} s per measurement, noop")
        print(f"{'round':>5} {'shards':>6} {'calls/s':>9} {'p50 ms':>7} {'errors':>6} "
              f"{'cmds/call':>9} {'busiest master':>14} {'its CPU':>7}  "
              f"{'all commands per master':<24}XACKs (request streams) per master")
        for r in range(args.rounds):
            for n in shard_counts:  # interleaved, so a disturbance hits both alike
                row = bench.measure(n)
                row["round"] = r + 1
                rows.append(row)
                p50 = f"{row['p50_ms']:.2f}" if row["p50_ms"] is not None else "-"
                cpc = row["commands_per_call"]
                print(f"{r + 1:>5} {n:>6} {row['calls_per_s']:>9.0f} {p50:>7} "
                      f"{row['errors']:>6} {cpc if cpc is None else round(cpc, 1)!s:>9} "
                      f"{max(row['commands_per_s'].values()):>8.0f} cmd/s "
                      f"{max(row['cpu_share'].values()):>7.0%}  "
                      f"{shares(row['commands_per_s']):<24}{shares(row['xacks_per_s'])}",
                      flush=True)
    finally:
        if budget is not None:
            budget.close()
        cluster.close()
    print("\nmedians over the rounds:")
    for n in shard_counts:
        mine = [row for row in rows if row["shards"] == n]
        rate = statistics.median(row["calls_per_s"] for row in mine)
        busiest = statistics.median(max(row["commands_per_s"].values()) for row in mine)
        share = statistics.median(busiest_share(row["commands_per_s"]) for row in mine)
        acks = statistics.median(busiest_share(row["xacks_per_s"]) for row in mine)
        cpu = statistics.median(max(row["cpu_share"].values()) for row in mine)
        print(f"  shards={n}: {rate:.0f} calls/s; the busiest master {busiest:.0f} commands/s "
              f"({share:.0%} of all commands, {acks:.0%} of the XACKs), its command thread "
              f"{cpu:.0%} busy")
    print("""
XACKs (one per call, always on the master of the request stream that carried it) show where the
requests go: with N shards each of N masters serves 1/N of them. The other commands follow
their own keys: results hash anywhere, and each client process's reply stream lives on one
master (its id is a hash tag), so with few client processes the reply pushes weigh on the
masters that hold their streams; many clients spread them too. Throughput grows only as far as
the CPUs allow: where the servers and callers, not Redis, use up the CPUs (as on a 2-core
machine) it cannot triple, and N shards add connections and reading lanes, which take CPU too.
Compare the busiest master's CPU as well as its commands: far from saturation each connection
carries short pipelines, so spreading the same calls over more masters (more connections, fewer
commands per read) can lower the commands per master more than the CPU per master.""")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
