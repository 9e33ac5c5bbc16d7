"""gRPC Python, unary calls on loopback: the brokerless peer. grpc.aio on both sides, one
HTTP/2 channel for all callers, raw bytes messages through generic handlers (no protobuf
codegen: the payloads are already bytes). CPU work: handlers hand it to a ProcessPoolExecutor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
from pathlib import Path

from .. import workloads
from . import Caller, Context

SERVICE = "bench.Bench"


def _port_file(ctx: Context) -> Path:
    return Path(ctx.workdir) / "grpc.port"


def server(ctx: Context, variant: str, workload: str) -> list[str]:
    _port_file(ctx).unlink(missing_ok=True)
    return [ctx.python, "-m", __name__, variant, str(ctx.processes), str(_port_file(ctx))]


def client(ctx: Context, variant: str, workload: str) -> Caller:
    import grpc

    payload = workloads.ECHO_PAYLOAD.encode() if workload == "echo" else b""
    state: dict[str, object] = {}

    async def call(timeout: float = 30.0) -> bytes:
        stub = state.get("stub")
        if stub is None:
            # The server writes its port once it listens; until then the probe fails.
            port = int(_port_file(ctx).read_text())
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            stub = state["stub"] = channel.unary_unary(f"/{SERVICE}/{workload}")
            state["channel"] = channel
        return await stub(payload, timeout=timeout)  # type: ignore[operator]

    async def close() -> None:
        if "channel" in state:
            await state["channel"].close()  # type: ignore[attr-defined]

    return Caller(call, is_async=True, close=close)


async def serve(variant: str, processes: int, port_file: str) -> None:
    import grpc

    pool = None
    if variant == "procpool":
        # Forking after gRPC has started its threads breaks the children: start the workers
        # first, and by spawning.
        pool = concurrent.futures.ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"))
        for f in [pool.submit(workloads.noop) for _ in range(processes)]:
            f.result()

    def handler(name: str):
        async def handle(request: bytes, context: object) -> bytes:
            if pool is not None:
                await asyncio.get_running_loop().run_in_executor(pool, workloads.SYNC_BODIES[name])
                return b""
            if name == "echo":
                return await workloads.async_echo(request)  # type: ignore[arg-type]
            await workloads.ASYNC_BODIES[name]()
            return b""
        return grpc.unary_unary_rpc_method_handler(handle)

    names = ("noop", "cpu") if pool is not None else tuple(workloads.ASYNC_BODIES)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {n: handler(n) for n in names}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    tmp = port_file + ".tmp"
    Path(tmp).write_text(str(port))
    os.replace(tmp, port_file)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
