"""dramatiq with the Redis broker and the Results middleware on Redis:
`actor.send(...).get_result(block=True)`, driven by threads (dramatiq's client is synchronous).
Workers: one process with a thread pool for I/O, processes with one thread each for CPU."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from .. import workloads
from . import Caller, Context

_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=_url)
backend = RedisBackend(url=_url)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)

ACTORS = {name: dramatiq.actor(body, actor_name=name, store_results=True, max_retries=0)
          for name, body in workloads.SYNC_BODIES.items()}


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    processes, threads = (1, ctx.threads) if variant == "threads" else (ctx.processes, 1)
    return [ctx.python, "-m", "dramatiq", __name__, "--processes", str(processes),
            "--threads", str(threads)]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    actor = ACTORS[workload]
    args = workloads.args_for(workload)

    def call(timeout: float = 30.0) -> object:
        return actor.send(*args).get_result(backend=backend, block=True, timeout=int(timeout * 1000))

    return Caller(call, is_async=False)
