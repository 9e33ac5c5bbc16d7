"""Callers under load for the failover suites, and the server they call: threads that each make
a run of calls to `tag` (it answers "<caller>:<n>") and record what came back, what failed and
how long each took."""

from __future__ import annotations

import threading
import time

import prpc

_TAG_APP = '''
from prpc import AppServer

app = AppServer("{BROKER}", "{URL}", "thread", 8, None, "{QUEUE}")

@app.decorator_reg_func()
def tag(caller, n):
    return f"{caller}:{n}"

if __name__ == "__main__":
    app.start()
'''


def tag_app(broker: str, url: str, queue: str) -> str:
    """The source of a server of `tag` (8 thread workers) on `broker` at `url` for `queue`."""
    return _TAG_APP.replace("{BROKER}", broker).replace("{URL}", url).replace("{QUEUE}", queue)


class Load:
    def __init__(self, client: prpc.Client, callers: int, calls_each: int,
                 timeout: float = 180) -> None:
        self.client = client
        self.calls_each = calls_each
        self.timeout = timeout
        self.total = callers * calls_each
        self.lock = threading.Lock()
        self.done = 0
        self.wrong: list[str] = []
        self.failed: list[str] = []
        self.latencies: list[float] = []
        self.answered_at: list[float] = []  # monotonic, one per call answered right or wrong
        self.threads = [threading.Thread(target=self.run, args=(c,)) for c in range(callers)]
        for t in self.threads:
            t.start()

    def run(self, caller: int) -> None:
        for n in range(self.calls_each):
            started = time.monotonic()
            try:
                got = self.client.call("tag", caller, n).sync_wait_result_task(self.timeout)
                now = time.monotonic()
                with self.lock:
                    self.done += 1
                    self.latencies.append(now - started)
                    self.answered_at.append(now)
                    if got != f"{caller}:{n}":
                        self.wrong.append(f"{caller}:{n} -> {got!r}")
            except Exception as e:
                with self.lock:
                    self.done += 1
                    self.failed.append(f"{caller}:{n}: {type(e).__name__}: {e}")

    def count(self) -> int:
        with self.lock:
            return self.done

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "callers still waiting"

    def check(self) -> None:
        """Every call answered, and answered right."""
        assert self.failed == [], "\n".join(self.failed[:20])
        assert self.wrong == [], "\n".join(self.wrong[:20])
        assert self.count() == self.total

    def longest_stall(self, since: float) -> float:
        """The longest time after `since` (monotonic) with no call answered: how long a
        failover held the callers up, as they saw it."""
        with self.lock:
            times = sorted(t for t in self.answered_at if t >= since)
        longest, last = 0.0, since
        for t in times:
            longest, last = max(longest, t - last), t
        return longest

    def longest_latency(self) -> float:
        with self.lock:
            return max(self.latencies, default=0.0)

    def summary(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return "no calls"
        return (f"{len(lat)} calls, {len(self.failed)} failed, {len(self.wrong)} wrong; latency "
                f"p50 {lat[len(lat) // 2] * 1e3:.1f} ms, max {lat[-1] * 1e3:.0f} ms")
