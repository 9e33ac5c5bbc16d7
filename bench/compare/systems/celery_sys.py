"""Celery with Redis as broker and result backend: `task.delay(...).get()`, driven by threads
(Celery's client API is synchronous). Workers: the thread pool for I/O, prefork for CPU."""

from __future__ import annotations

import os

from celery import Celery

from .. import workloads
from . import Caller, Context

_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=_url, backend=_url)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                result_expires=3600)

TASKS = {name: app.task(name=f"bench.{name}")(body)
         for name, body in workloads.SYNC_BODIES.items()}


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    pool, concurrency = ("threads", ctx.threads) if variant == "threads" else \
        ("prefork", ctx.processes)
    return [ctx.python, "-m", "celery", "-A", __name__, "worker", "-P", pool,
            "-c", str(concurrency), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    task = TASKS[workload]
    args = workloads.args_for(workload)

    def call(timeout: float = 30.0) -> object:
        return task.apply_async(args).get(timeout=timeout)

    return Caller(call, is_async=False)
