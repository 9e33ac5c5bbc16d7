"""FastStream's RPC over Redis: `await broker.request(body, stream=...)`; the handler's return
value comes back on a reply channel (pub/sub). Requests go through a stream with a consumer
group. I/O: async handlers, up to ASYNC_SLOTS at once; CPU: `faststream run --workers N` with
plain handlers."""

from __future__ import annotations

import os

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub

from .. import workloads
from . import Caller, Context

_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
VARIANT = os.environ.get("BENCH_FS_VARIANT", "io")
SLOTS = int(os.environ.get("BENCH_FS_SLOTS", "1"))

broker = RedisBroker(_url, logger=None)
app = FastStream(broker, logger=None)


def _stream(name: str) -> StreamSub:
    return StreamSub(f"fs_{name}", group="bench", consumer=f"c{os.getpid()}")


def _subscribe(name: str) -> None:
    # FastStream hands the body to the handler: a handler takes the workload's one argument,
    # or an ignored empty body.
    if VARIANT == "io":
        body = workloads.ASYNC_BODIES[name]

        async def handler(msg: str) -> object:
            return await (body(msg) if name == "echo" else body())
    else:
        plain = workloads.SYNC_BODIES[name]

        def handler(msg: str) -> object:  # type: ignore[misc]
            return plain(msg) if name == "echo" else plain()
    handler.__name__ = f"handle_{name}"
    broker.subscriber(stream=_stream(name), max_workers=SLOTS)(handler)


for _name in (workloads.ASYNC_BODIES if VARIANT == "io" else ("noop", "cpu")):
    _subscribe(_name)


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    slots, workers = (ctx.async_slots, 1) if variant == "io" else (1, ctx.processes)
    return ["env", f"BENCH_FS_VARIANT={variant}", f"BENCH_FS_SLOTS={slots}", ctx.python, "-m",
            "faststream", "run", f"{__name__}:app", "--workers", str(workers)]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    client_broker = RedisBroker(ctx.redis_url, logger=None)
    body = workloads.args_for(workload)[0] if workload == "echo" else ""
    connected: list[bool] = []

    async def call(timeout: float = 30.0) -> object:
        if not connected:
            await client_broker.connect()
            connected.append(True)
        response = await client_broker.request(body, stream=f"fs_{workload}",
                                                  timeout=timeout)
        return await response.decode()

    async def close() -> None:
        if connected:
            await client_broker.stop()

    return Caller(call, is_async=True, close=close)
