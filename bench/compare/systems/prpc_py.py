"""PRPC with a Python server (prpc.AppServer) on thread, async or process workers, called through
prpc.Client (every reply is pushed to the client process's one listener)."""

from __future__ import annotations

import sys

from ..workloads import ASYNC_BODIES, SYNC_BODIES, args_for
from . import Caller, Context

def _broker(ctx: Context, variant: str) -> tuple[str, str]:
    if "-kafka" in variant:
        if not ctx.kafka_bootstrap:
            raise RuntimeError("the harness started no Kafka broker")
        return "kafka", ctx.kafka_bootstrap
    return "redis", ctx.redis_url


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    worker = variant.split("-")[0]
    slots = {"thread": ctx.threads, "async": ctx.async_slots, "process": ctx.processes}[worker]
    broker, url = _broker(ctx, variant)
    return [ctx.python, "-m", __name__, broker, url, worker, str(slots), ctx.queue]


def client(ctx: Context, variant: str, workload: str, raw: bool = False,
           func: str | None = None, args: tuple | None = None) -> Caller:
    """The seed's synchronous API (`task.sync_wait_result_task`) driven by threads, or with a
    variant ending in "-aio", `await task` driven by asyncio. "-kafka" in the variant: over the
    harness's Kafka broker instead of Redis."""
    import prpc

    broker, url = _broker(ctx, variant)
    c = prpc.Client(broker, url, ctx.queue, raw=raw)
    name = func or workload
    args = args_for(workload) if args is None else args
    if variant.endswith("-aio"):
        async def acall(timeout: float = 30.0) -> object:
            return await c.call_with(name, args, timeout=timeout)

        return Caller(acall, is_async=True, close=c.close)

    def call(timeout: float = 30.0) -> object:
        return c.call_with(name, args, timeout=timeout).sync_wait_result_task(timeout)

    return Caller(call, is_async=False, close=c.close)


def serve(broker: str, url: str, variant: str, slots: int, queue: str) -> None:
    from prpc import AppServer

    app = AppServer(broker, url, variant, slots, None, queue)
    bodies = ASYNC_BODIES if variant == "async" else SYNC_BODIES
    for name, func in bodies.items():
        app.register_func(func, variant, name=name)
    app.start()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
