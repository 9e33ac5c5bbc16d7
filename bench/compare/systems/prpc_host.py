"""PRPC's native path: prpc-host serving functions_example's C++ functions on a thread executor,
called through the raw JSON protocol (prpc.Client(raw=True)), so no Python runs on the server."""

from __future__ import annotations

from ..workloads import ECHO_PAYLOAD, SLEEP_SECONDS
from . import Caller, Context

QUEUE = "bench"
FUNCTIONS = {"noop": ("noop", ()), "echo": ("echo", (ECHO_PAYLOAD,)),
             "sleep": ("slow", (SLEEP_SECONDS,))}


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    host = ctx.bin_dir / "prpc-host"
    if not host.exists():
        raise FileNotFoundError(f"{host} is not built")
    settings = {
        "broker.type": "redis", "broker.url": ctx.redis_url, "queue.name": QUEUE,
        "functions.plugins": "example", "codec.python": "none",
        "executors.thread.workers": str(ctx.threads),
    }
    argv = [str(host)]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    return argv


def client(ctx: Context, variant: str, workload: str) -> Caller:
    import prpc

    c = prpc.Client("redis", ctx.redis_url, QUEUE, raw=True)
    name, args = FUNCTIONS[workload]

    async def call(timeout: float = 30.0) -> object:
        return await c.call_with(name, args, timeout=timeout)

    return Caller(call, is_async=True, close=c.close)
