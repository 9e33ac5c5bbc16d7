"""NATS core request/reply with nats-py: the anchor of broker RPC without durability. The harness
runs a private nats-server (no JetStream); a queue-group subscriber in a process of its own
answers, the client sends `nc.request()` over one connection shared by all its callers. The
messages are raw bytes, as with gRPC: no serialisation on either side.

I/O workloads: one subscriber process on asyncio; each request runs in a task of its own, at most
ASYNC_SLOTS at a time (the subscription stops reading while all are taken). CPU work: PROCESSES
subscriber processes in the same queue group, each running the body inline, one call at a time:
the group is NATS's own way to spread work over processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from .. import workloads
from . import Caller, Context

GROUP = "workers"
# The module's importable name, also when it runs as __main__.
MODULE = __spec__.name if __spec__ else __name__


def _subject(ctx: Context) -> str:
    # ctx.queue is new for each measurement: no reply of an earlier one can reach this one.
    return f"prpc_bench.{ctx.queue}"


def _ready_file(ctx: Context) -> Path:
    return Path(ctx.workdir) / f"nats.{ctx.queue}.ready"


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    _ready_file(ctx).unlink(missing_ok=True)
    members = ctx.processes if workload == "cpu" else 1
    return [ctx.python, "-m", MODULE, "group", ctx.nats_url, _subject(ctx), workload,
            str(members), str(ctx.async_slots), str(_ready_file(ctx))]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    import nats

    payload = workloads.ECHO_PAYLOAD.encode() if workload == "echo" else b""
    subject = _subject(ctx)
    ready = _ready_file(ctx)
    state: dict[str, object] = {}

    async def call(timeout: float = 30.0) -> bytes:
        nc = state.get("nc")
        if nc is None:
            # A request before every member has subscribed would see "no responders", or load
            # one member only: the server writes the file once the whole group listens.
            if not ready.exists():
                raise ConnectionError("the queue group is not subscribed yet")
            nc = state["nc"] = await nats.connect(ctx.nats_url, allow_reconnect=False)
        reply = await nc.request(subject, payload, timeout=timeout)  # type: ignore[attr-defined]
        return reply.data

    async def close() -> None:
        if "nc" in state:
            await state["nc"].close()  # type: ignore[attr-defined]

    return Caller(call, is_async=True, close=close)


async def member(url: str, subject: str, workload: str, slots: int) -> None:
    """One member of the queue group; prints `subscribed` once the server has the subscription."""
    import nats

    loop = asyncio.get_running_loop()
    stopped = loop.create_future()

    async def on_closed() -> None:
        # The server went away: a member without a connection has nothing left to do.
        if not stopped.done():
            stopped.set_result(None)

    nc = await nats.connect(url, allow_reconnect=False, closed_cb=on_closed)

    if workload == "cpu":
        body = workloads.SYNC_BODIES[workload]

        async def on_request(msg) -> None:  # type: ignore[no-untyped-def]
            body()
            await msg.respond(b"")
            # respond() only queues the reply for nats-py's flusher task, and the next queued
            # request runs without yielding to it: yield, or replies wait for the queue to drain.
            await asyncio.sleep(0)
    else:
        run = workloads.ASYNC_BODIES[workload]
        free = asyncio.Semaphore(slots)
        tasks: set[asyncio.Task[None]] = set()

        async def answer(msg) -> None:  # type: ignore[no-untyped-def]
            try:
                if workload == "echo":
                    await msg.respond(await workloads.async_echo(msg.data))
                else:
                    await run()
                    await msg.respond(b"")
            finally:
                free.release()

        async def on_request(msg) -> None:  # type: ignore[no-untyped-def]
            # nats-py awaits this callback before it hands over the next message: waiting for
            # a slot here is the back-pressure.
            await free.acquire()
            task = loop.create_task(answer(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    await nc.subscribe(subject, queue=GROUP, cb=on_request)
    await nc.flush()  # the server has the subscription once the flush's PONG is back
    print("subscribed", flush=True)
    await stopped


def group(url: str, subject: str, workload: str, members: int, slots: int,
          ready_file: str) -> None:
    """Starts the group's members as processes and writes `ready_file` once all subscribed.
    SIGTERM stops the members too (the harness also kills the whole process group)."""
    argv = [sys.executable, "-m", MODULE, "member", url, subject, workload, str(slots)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(members)]

    def stop(signo: int, frame: object) -> None:
        for p in procs:
            p.terminate()
        raise SystemExit(128 + signo)

    signal.signal(signal.SIGTERM, stop)
    for p in procs:
        line = p.stdout.readline() if p.stdout else ""
        if line.strip() != "subscribed":
            raise SystemExit(f"a member of the queue group exited before subscribing: {line!r}")
    tmp = ready_file + ".tmp"
    Path(tmp).write_text("ready")
    os.replace(tmp, ready_file)
    codes = [p.wait() for p in procs]
    raise SystemExit(f"the queue group's members exited: {codes}")


if __name__ == "__main__":
    if sys.argv[1] == "member":
        asyncio.run(member(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        group(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
              sys.argv[7])
