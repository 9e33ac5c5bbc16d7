"""The floor's protocol (XADD -> XREADGROUP -> LPUSH -> BLPOP) written with redis-py and driven
by the harness's own driver: what the transport costs a Python client and server with nothing
else in the way. A reference beside the hiredis floor, not a replacement for it."""

from __future__ import annotations

import asyncio
import sys
import uuid

from ..workloads import args_for
from . import Caller, Context

STREAM = "floorpy_requests"
GROUP = "floorpy"


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    return [ctx.python, "-m", __name__, ctx.redis_url]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    import redis.asyncio as aredis

    payload = args_for(workload)[0] if args_for(workload) else ""
    # BLPOP holds its connection until the reply: one connection per caller in flight.
    pool = aredis.ConnectionPool.from_url(ctx.redis_url, max_connections=256)
    r = aredis.Redis(connection_pool=pool)

    async def call(timeout: float = 30.0) -> str:
        key = "floorpy_reply_" + uuid.uuid4().hex
        await r.xadd(STREAM, {"reply": key, "message": payload})
        reply = await r.blpop([key], timeout=timeout)
        if reply is None:
            raise TimeoutError(f"no reply within {timeout} s")
        return reply[1].decode()

    async def close() -> None:
        await r.aclose()
        await pool.aclose()

    return Caller(call, is_async=True, close=close)


async def serve(url: str) -> None:
    import redis.asyncio as aredis
    from redis.exceptions import ResponseError

    r = aredis.from_url(url)
    try:
        await r.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
    except ResponseError:  # the group exists: a previous run on the same database
        pass
    while True:
        batches = await r.xreadgroup(GROUP, "server", {STREAM: ">"}, count=128, block=100,
                                     noack=True)
        if not batches:
            continue
        pipe = r.pipeline(transaction=False)
        for _stream, entries in batches:
            for _id, fields in entries:
                pipe.lpush(fields[b"reply"], fields[b"message"])
        await pipe.execute()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
