"""The one load driver every Python client goes through: N sequential calls, then C concurrent
callers for a fixed time at each concurrency level. Sync clients are driven by threads, async
clients by asyncio tasks on one loop; the measuring code is otherwise the same."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable



class RemoteFailure(Exception):
    """The server answered with a failure: it is up, so waiting for readiness is pointless."""


SyncCall = Callable[[], Any]
AsyncCall = Callable[[], Awaitable[Any]]


@dataclass
class Plan:
    sequential: int
    warmup_calls: int
    levels: tuple[int, ...]
    level_seconds: float
    level_warmup_seconds: float
    call_timeout: float = 30.0
    ready_timeout: float = 60.0
    # The sequential calls stop early after this long: a peer at 8 ms a call would otherwise
    # spend most of the run on them.
    sequential_seconds: float | None = None


@dataclass
class Level:
    callers: int
    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    calls_per_s: float = 0.0
    p50_us: float | None = None
    p99_us: float | None = None


@dataclass
class Outcome:
    p50_us: float | None = None
    p99_us: float | None = None
    mean_us: float | None = None
    sequential_calls: int = 0
    sequential_errors: int = 0
    levels: list[Level] = field(default_factory=list)
    first_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def _summarise_sequential(out: Outcome, samples_ns: list[int]) -> None:
    if not samples_ns:
        return
    samples = sorted(s / 1000.0 for s in samples_ns)
    out.p50_us = percentile(samples, 50)
    out.p99_us = percentile(samples, 99)
    out.mean_us = sum(samples) / len(samples)
    out.sequential_calls = len(samples)


def _summarise_level(level: Level, window_s: float, latencies_ns: list[int]) -> None:
    level.seconds = window_s
    level.calls = len(latencies_ns)
    level.calls_per_s = level.calls / window_s if window_s > 0 else 0.0
    if latencies_ns:
        samples = sorted(s / 1000.0 for s in latencies_ns)
        level.p50_us = percentile(samples, 50)
        level.p99_us = percentile(samples, 99)


def _sequential_stop(plan: Plan) -> float:
    if plan.sequential_seconds is None:
        return float("inf")
    return time.perf_counter_ns() + plan.sequential_seconds * 1e9


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


# ---- readiness ------------------------------------------------------------------------------


def wait_ready_sync(call: SyncCall, check: Callable[[Any], None], timeout: float) -> None:
    """Calls until one call succeeds (the server may still be starting); bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            check(call())
            return
        except (AssertionError, RemoteFailure):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"no successful call within {timeout:.0f} s: {last and _describe(last)}")


async def wait_ready_async(call: AsyncCall, check: Callable[[Any], None], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            check(await call())
            return
        except (AssertionError, RemoteFailure):
            raise
        except Exception as exc:  # noqa: BLE001
            last = exc
            await asyncio.sleep(0.05)
    raise TimeoutError(f"no successful call within {timeout:.0f} s: {last and _describe(last)}")


# ---- threads ---------------------------------------------------------------------------------


def run_sync(call: SyncCall, plan: Plan) -> Outcome:
    out = Outcome()
    clock = time.perf_counter_ns
    for _ in range(plan.warmup_calls):
        call()
    samples: list[int] = []
    stop = _sequential_stop(plan)
    for _ in range(plan.sequential):
        t0 = clock()
        if t0 > stop:
            break
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - failures are counted, not fatal
            out.sequential_errors += 1
            out.first_error = out.first_error or _describe(exc)
            continue
        samples.append(clock() - t0)
    _summarise_sequential(out, samples)
    for callers in plan.levels:
        out.levels.append(_level_sync(call, callers, plan, out))
    return out


class _Window:
    """The measured window of one level. It opens `warmup` after every caller has finished its
    first call (so connection setup and pool growth stay out of it), or at `patience` if some
    caller never succeeds; calls completing inside it count."""

    def __init__(self, callers: int, plan: Plan) -> None:
        self._waiting = callers
        self._warmup = int(plan.level_warmup_seconds * 1e9)
        self._length = int(plan.level_seconds * 1e9)
        self._patience = time.perf_counter_ns() + int(plan.call_timeout * 1e9)
        self._lock = threading.Lock()
        self.begin: int | None = None
        self.end: int | None = None

    def _open(self, now: int) -> None:
        if self.begin is None:
            self.begin = now + self._warmup
            self.end = self.begin + self._length

    def first_call_done(self, now: int) -> None:
        with self._lock:
            self._waiting -= 1
            if self._waiting == 0:
                self._open(now)

    def over(self, now: int) -> bool:
        if self.begin is None and now >= self._patience:
            with self._lock:
                self._open(now)
        return self.end is not None and now >= self.end

    def counts(self, t1: int) -> bool:
        return self.begin is not None and self.begin <= t1 <= self.end  # type: ignore[operator]

    @staticmethod
    def bound(plan: Plan) -> float:
        """How long a level can take at most."""
        return 2 * plan.call_timeout + plan.level_warmup_seconds + plan.level_seconds + 5


def _level_sync(call: SyncCall, callers: int, plan: Plan, out: Outcome) -> Level:
    clock = time.perf_counter_ns
    level = Level(callers)
    window = _Window(callers, plan)
    per_thread: list[list[int]] = [[] for _ in range(callers)]
    errors = [0] * callers
    first_errors: list[str] = []

    def caller(i: int) -> None:
        lat = per_thread[i]
        first = True
        while True:
            t0 = clock()
            if window.over(t0):
                return
            try:
                call()
            except Exception as exc:  # noqa: BLE001
                errors[i] += 1
                if not first_errors:
                    first_errors.append(_describe(exc))
                continue
            t1 = clock()
            if first:
                window.first_call_done(t1)
                first = False
            # Throughput counts the calls that complete inside the window, whenever they began
            # (a call may take longer than a short window under load).
            if window.counts(t1):
                lat.append(t1 - t0)

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(_Window.bound(plan))
    level.errors = sum(errors)
    if first_errors and not out.first_error:
        out.first_error = first_errors[0]
    _summarise_level(level, plan.level_seconds, [x for lat in per_thread for x in lat])
    return level


# ---- asyncio ---------------------------------------------------------------------------------


async def run_async(call: AsyncCall, plan: Plan) -> Outcome:
    out = Outcome()
    clock = time.perf_counter_ns
    for _ in range(plan.warmup_calls):
        await call()
    samples: list[int] = []
    stop = _sequential_stop(plan)
    for _ in range(plan.sequential):
        t0 = clock()
        if t0 > stop:
            break
        try:
            await call()
        except Exception as exc:  # noqa: BLE001
            out.sequential_errors += 1
            out.first_error = out.first_error or _describe(exc)
            continue
        samples.append(clock() - t0)
    _summarise_sequential(out, samples)
    for callers in plan.levels:
        out.levels.append(await _level_async(call, callers, plan, out))
    return out


async def _level_async(call: AsyncCall, callers: int, plan: Plan, out: Outcome) -> Level:
    clock = time.perf_counter_ns
    level = Level(callers)
    window = _Window(callers, plan)
    latencies: list[int] = []
    errors = 0
    first_errors: list[str] = []

    async def caller() -> None:
        nonlocal errors
        first = True
        while True:
            t0 = clock()
            if window.over(t0):
                return
            try:
                await call()
            except Exception as exc:  # noqa: BLE001
                errors += 1
                if not first_errors:
                    first_errors.append(_describe(exc))
                continue
            t1 = clock()
            if first:
                window.first_call_done(t1)
                first = False
            if window.counts(t1):
                latencies.append(t1 - t0)

    await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(callers))),
                           _Window.bound(plan))
    level.errors = errors
    if first_errors and not out.first_error:
        out.first_error = first_errors[0]
    _summarise_level(level, plan.level_seconds, latencies)
    return level
