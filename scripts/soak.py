"""The soak test (scripts/soak.sh): steady traffic against three Python servers on a private
redis-server, one server SIGKILLed and restarted every `--kill-every` seconds, for `minutes`.
Prints one line per minute: calls/s, p50/p99 round trip, errors, and the RSS of every process
(servers, the client, redis-server); at the end the RSS slope after warm-up. Exit status 1 when
a call was lost (never answered) or answered wrong."""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import prpc

APP = '''
import os
from prpc import AppServer

app = AppServer("redis", os.environ["PRPC_URL_BROKER"], "thread", 4, None,
                os.environ["PRPC_QUEUE_NAME"])

@app.decorator_reg_func()
def echo(value):
    return value

if __name__ == "__main__":
    app.start()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Servers:
    def __init__(self, app: Path, env: dict[str, str], count: int, logdir: Path) -> None:
        self.app, self.env, self.logdir = app, env, logdir
        self.procs: list[subprocess.Popen] = [self.spawn(i) for i in range(count)]
        self.kills = 0

    def spawn(self, slot: int) -> subprocess.Popen:
        log = open(self.logdir / f"server{slot}.log", "a")
        return subprocess.Popen([sys.executable, str(self.app)], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)

    def kill_one(self) -> None:
        slot = random.randrange(len(self.procs))
        self.procs[slot].send_signal(signal.SIGKILL)
        self.procs[slot].wait()
        self.kills += 1
        self.procs[slot] = self.spawn(slot)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


class Traffic:
    """`callers` threads, each making calls one after another at about `rate` calls/s in all."""

    def __init__(self, client: prpc.Client, callers: int, rate: float, timeout: float) -> None:
        self.client, self.timeout = client, timeout
        self.interval = callers / rate
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self.wrong = 0
        self.total = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(callers)]
        for t in self.threads:
            t.start()

    def run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            started = time.monotonic()
            value = f"{n}-{i}"
            try:
                got = self.client.call("echo", value).sync_wait_result_task(self.timeout)
                with self.lock:
                    self.total += 1
                    self.latencies.append(time.monotonic() - started)
                    if got != value:
                        self.wrong += 1
            except Exception as e:
                with self.lock:
                    self.total += 1
                    self.errors += 1
                print(f"  call {value} failed: {type(e).__name__}: {e}", flush=True)
            i += 1
            rest = self.interval - (time.monotonic() - started)
            if rest > 0:
                self.stop.wait(rest)

    def take(self) -> tuple[list[float], int, int, int]:
        with self.lock:
            out = (self.latencies, self.errors, self.wrong, self.total)
            self.latencies, self.errors, self.wrong, self.total = [], 0, 0, 0
        return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("minutes", type=float, nargs="?", default=30.0)
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--callers", type=int, default=16)
    ap.add_argument("--rate", type=float, default=400.0, help="calls per second in all")
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills")
    ap.add_argument("--timeout", type=float, default=60.0, help="a call's limit, seconds")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prpc-soak-"))
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(work)],
                             stdout=open(work / "redis.log", "w"), stderr=subprocess.STDOUT)
    env = dict(os.environ, PRPC_TYPE_BROKER="redis",
               PRPC_URL_BROKER=f"redis://127.0.0.1:{port}/0", PRPC_QUEUE_NAME="soak",
               PRPC_LOG_LEVEL="warn")
    os.environ.update({k: env[k] for k in ("PRPC_TYPE_BROKER", "PRPC_URL_BROKER",
                                           "PRPC_QUEUE_NAME")})
    app = work / "app.py"
    app.write_text(APP)
    servers = Servers(app, env, args.servers, work)
    client = prpc.Client()
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.ping(timeout=1) == "pong":
                break
        except prpc.ClientTimeOutError:
            pass
        if time.monotonic() > deadline:
            print("soak: the servers never answered ping", file=sys.stderr)
            return 2

    print(f"soak: {args.minutes:g} min, {args.servers} servers, {args.callers} callers at "
          f"{args.rate:g} calls/s, a SIGKILL every {args.kill_every:g} s; logs in {work}")
    print(f"{'min':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'wrong':>5} "
          f"{'kills':>5}  RSS MiB (servers | client | redis)")
    traffic = Traffic(client, args.callers, args.rate, args.timeout)
    start = time.monotonic()
    next_kill = start + args.kill_every
    minute = 0
    totals = {"calls": 0, "errors": 0, "wrong": 0}
    client_rss: list[tuple[int, int]] = []
    try:
        while time.monotonic() - start < args.minutes * 60:
            next_report = start + (minute + 1) * 60
            while time.monotonic() < min(next_report, start + args.minutes * 60):
                if time.monotonic() >= next_kill:
                    servers.kill_one()
                    next_kill += args.kill_every
                time.sleep(0.2)
            minute += 1
            lat, errors, wrong, total = traffic.take()
            totals["calls"] += total
            totals["errors"] += errors
            totals["wrong"] += wrong
            mine = rss_kib(os.getpid())
            client_rss.append((minute, mine))
            server_rss = " ".join(f"{rss_kib(p.pid) / 1024:.0f}" for p in servers.procs)
            print(f"{minute:>4} {total / 60:>8.1f} {pct(lat, 0.5) * 1000:>7.1f} "
                  f"{pct(lat, 0.99) * 1000:>7.1f} {errors:>6} {wrong:>5} {servers.kills:>5}  "
                  f"{server_rss} | {mine / 1024:.0f} | {rss_kib(redis.pid) / 1024:.0f}",
                  flush=True)
    finally:
        traffic.stop.set()
        for t in traffic.threads:
            t.join(args.timeout + 5)
        lat, errors, wrong, total = traffic.take()
        totals["calls"] += total
        totals["errors"] += errors
        totals["wrong"] += wrong
        client.close()
        servers.stop()
        redis.terminate()
        redis.wait(10)

    warm = [(m, r) for m, r in client_rss if m > 2]
    slope = 0.0
    if len(warm) >= 2:
        n = len(warm)
        mx = sum(m for m, _ in warm) / n
        my = sum(r for _, r in warm) / n
        den = sum((m - mx) ** 2 for m, _ in warm)
        slope = sum((m - mx) * (r - my) for m, r in warm) / den if den else 0.0
    print(f"soak: {totals['calls']} calls, {totals['errors']} errors, {totals['wrong']} wrong, "
          f"{servers.kills} server kills; client RSS slope after minute 2: {slope:+.1f} KiB/min")
    return 1 if totals["errors"] or totals["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
