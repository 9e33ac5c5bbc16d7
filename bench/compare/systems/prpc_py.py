"""PRPC with a Python server (prpc.AppServer) on thread, async or process workers, and the
Python client awaiting each call (the reply is pushed to the client's one listener)."""

from __future__ import annotations

import sys

from ..workloads import ASYNC_BODIES, SYNC_BODIES, args_for
from . import Caller, Context

QUEUE = "bench"


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    slots = {"thread": ctx.threads, "async": ctx.async_slots, "process": ctx.processes}[variant]
    return [ctx.python, "-m", __name__, "redis", ctx.redis_url, variant, str(slots)]


def client(ctx: Context, variant: str, workload: str, broker: str = "redis",
           url: str | None = None) -> Caller:
    import prpc

    c = prpc.Client(broker, url or ctx.redis_url, QUEUE)
    args = args_for(workload)

    async def call(timeout: float = 30.0) -> object:
        return await c.call_with(workload, args, timeout=timeout)

    return Caller(call, is_async=True, close=c.close)


def serve(broker: str, url: str, variant: str, slots: int) -> None:
    from prpc import AppServer

    app = AppServer(broker, url, variant, slots, None, QUEUE)
    bodies = ASYNC_BODIES if variant == "async" else SYNC_BODIES
    for name, func in bodies.items():
        app.register_func(func, variant, name=name)
    app.start()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
