"""taskiq with taskiq-redis: RedisStreamBroker (consumer group, acks) and the Redis result
backend. `await (await task.kiq()).wait_result()` polls the result key; here every 5 ms (the
default is 0.2 s). CPU work: sync tasks in taskiq's own process pool."""

from __future__ import annotations

import os

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from .. import workloads
from . import Caller, Context, RemoteFailure

POLL = 0.005
_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisStreamBroker(_url).with_result_backend(
    RedisAsyncResultBackend(_url, result_ex_time=600))

# The I/O configuration runs coroutines on the worker's loop, the process configuration plain
# functions.
TASKS = {
    "io": {name: broker.register_task(body, task_name=f"io_{name}")
           for name, body in workloads.ASYNC_BODIES.items()},
    "procs": {name: broker.register_task(workloads.SYNC_BODIES[name], task_name=f"procs_{name}")
              for name in ("noop", "cpu")},
}


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    argv = [ctx.python, "-m", "taskiq", "worker", f"{__name__}:broker", "--log-level", "WARNING"]
    if variant == "io":
        return argv + ["--workers", "1", "--max-async-tasks", str(ctx.async_slots)]
    # --use-process-pool fails in this taskiq ("cannot pickle '_contextvars.Context'"): worker
    # processes instead, each running the plain functions in its thread pool.
    return argv + ["--workers", str(ctx.processes)]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    task = TASKS[variant][workload]
    args = workloads.args_for(workload)
    started: list[bool] = []

    async def call(timeout: float = 30.0) -> object:
        if not started:
            await broker.startup()
            started.append(True)
        kicked = await task.kiq(*args)
        result = await kicked.wait_result(check_interval=POLL, timeout=timeout)
        if result.is_err:
            raise RemoteFailure(f"task failed: {result.error!r}")
        return result.return_value

    async def close() -> None:
        if started:
            await broker.shutdown()

    return Caller(call, is_async=True, close=close)
