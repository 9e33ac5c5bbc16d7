"""PRPC's native path: prpc-host serving functions_example's C++ functions on a thread executor,
called through the raw JSON protocol (prpc.Client(raw=True)), so no Python runs on the server.
The client is prpc_py's, driven by threads."""

from __future__ import annotations

from ..workloads import ECHO_PAYLOAD, SLEEP_SECONDS
from . import Caller, Context, prpc_py

FUNCTIONS = {"noop": ("noop", ()), "echo": ("echo", (ECHO_PAYLOAD,)),
             "sleep": ("slow", (SLEEP_SECONDS,))}


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    host = ctx.bin_dir / "prpc-host"
    if not host.exists():
        raise FileNotFoundError(f"{host} is not built")
    settings = {
        "broker.type": "redis", "broker.url": ctx.redis_url, "queue.name": ctx.queue,
        "functions.plugins": "example", "codec.python": "none",
        "executors.thread.workers": str(ctx.threads),
    }
    argv = [str(host)]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    return argv


def client(ctx: Context, variant: str, workload: str) -> Caller:
    name, args = FUNCTIONS[workload]
    return prpc_py.client(ctx, variant, workload, raw=True, func=name, args=args)
