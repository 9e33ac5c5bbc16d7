"""arq: asyncio jobs over Redis. arq has no pushed results: the worker polls the queue and
job.result() polls the result key; both at 5 ms here (the defaults are 0.5 s). CPU work goes to a
ProcessPoolExecutor, as arq's documentation suggests for blocking work."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
from typing import Any

from .. import workloads
from . import Caller, Context

POLL = 0.005


async def noop(ctx: dict[str, Any]) -> None:
    pool = ctx.get("pool")
    if pool is not None:
        return await asyncio.get_running_loop().run_in_executor(pool, workloads.noop)
    return None


async def echo(ctx: dict[str, Any], value: str) -> str:
    return value


async def sleep(ctx: dict[str, Any]) -> None:
    await workloads.async_sleep()


async def cpu(ctx: dict[str, Any]) -> int:
    return await asyncio.get_running_loop().run_in_executor(ctx["pool"], workloads.cpu)


def _settings(variant: str, processes: int, slots: int) -> type:
    from arq.connections import RedisSettings

    class WorkerSettings:
        functions = [noop, echo, sleep, cpu]
        redis_settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
        max_jobs = slots
        poll_delay = POLL
        keep_result = 600
        handle_signals = True

        @staticmethod
        async def on_startup(ctx: dict[str, Any]) -> None:
            if variant == "procpool":
                ctx["pool"] = concurrent.futures.ProcessPoolExecutor(processes)

        @staticmethod
        async def on_shutdown(ctx: dict[str, Any]) -> None:
            if "pool" in ctx:
                ctx["pool"].shutdown(cancel_futures=True)

    return WorkerSettings


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    return [ctx.python, "-m", __name__, variant, str(ctx.processes), str(ctx.async_slots)]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    from arq import create_pool
    from arq.connections import RedisSettings

    args = workloads.args_for(workload)
    state: dict[str, Any] = {}

    async def call(timeout: float = 30.0) -> object:
        pool = state.get("pool")
        if pool is None:
            pool = state["pool"] = await create_pool(RedisSettings.from_dsn(ctx.redis_url))
        job = await pool.enqueue_job(workload, *args)
        return await job.result(timeout=timeout, poll_delay=POLL)

    async def close() -> None:
        if "pool" in state:
            await state["pool"].aclose()

    return Caller(call, is_async=True, close=close)


if __name__ == "__main__":
    from arq import run_worker

    run_worker(_settings(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
