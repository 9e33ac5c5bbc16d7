"""The four workloads, and the Python bodies every Python server runs for them, so that each
system does exactly the same work per call."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

ECHO_PAYLOAD = "x" * 1024
SLEEP_SECONDS = 0.010
CPU_SECONDS = 0.005


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    # Calls measured one after the other (full run, quick run).
    sequential: tuple[int, int]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("noop", "no-op", (1000, 100)),
        Workload("echo", "1 KB echo", (1000, 100)),
        Workload("sleep", "10 ms sleep (I/O)", (150, 20)),
        Workload("cpu", "5 ms CPU", (150, 20)),
    )
}


def args_for(workload: str) -> tuple:
    """The positional arguments a client sends for `workload`."""
    return (ECHO_PAYLOAD,) if workload == "echo" else ()


def check_result(workload: str, value: object) -> None:
    """Warm-up calls go through this, so a system that answers the wrong thing is caught."""
    if workload == "echo":
        if isinstance(value, bytes):
            value = value.decode()
        if value != ECHO_PAYLOAD:
            raise AssertionError(f"echo returned {str(value)[:60]!r}, not the 1 KB payload")


def noop() -> None:
    return None


def echo(value: str) -> str:
    return value


def sleep() -> None:
    time.sleep(SLEEP_SECONDS)


def cpu() -> int:
    # Thread CPU time, not wall time: the call costs 5 ms of CPU even when it is preempted.
    end = time.thread_time() + CPU_SECONDS
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


async def async_noop() -> None:
    return None


async def async_echo(value: str) -> str:
    return value


async def async_sleep() -> None:
    await asyncio.sleep(SLEEP_SECONDS)


SYNC_BODIES = {"noop": noop, "echo": echo, "sleep": sleep, "cpu": cpu}
ASYNC_BODIES = {"noop": async_noop, "echo": async_echo, "sleep": async_sleep}
