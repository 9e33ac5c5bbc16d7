"""The systems under comparison. The registry holds only metadata; each adapter module (imported
only by the client process that drives it) provides:

    server(ctx, variant, workload) -> list[str] | None   the server's command line
    client(ctx, variant, workload) -> Caller            what one call is
    available(ctx, variant) -> True | str               instead of both, for programs that
    external(ctx, variant, workload, plan) -> [argv]     measure themselves (the C++ floor): run
    parse(variant, outputs, plan) -> dict                them one after the other, read reports

Every server gets the same budget of worker slots on this 2-core machine: THREADS threads for
thread pools, ASYNC_SLOTS concurrent calls for asyncio workers, PROCESSES worker processes for
CPU-bound work.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..driver import RemoteFailure  # noqa: F401 - adapters raise it for a failed remote call

THREADS = 8
ASYNC_SLOTS = 64
PROCESSES = 2


@dataclass
class Context:
    """What an adapter needs to know, passed from the orchestrator to the client process."""

    repo: str
    build_dir: str
    python: str
    redis_url: str
    workdir: str
    quick: bool = False
    # Set for the systems that need Kafka, while the harness's Kafka broker runs.
    kafka_bootstrap: str = ""
    # Set for the NATS system, while the harness's nats-server runs.
    nats_url: str = ""
    # A fresh queue name per measurement: Kafka topics outlive a FLUSHALL.
    queue: str = "bench"
    threads: int = THREADS
    async_slots: int = ASYNC_SLOTS
    processes: int = PROCESSES

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Context:
        return cls(**json.loads(text))

    @property
    def bin_dir(self) -> Path:
        return Path(self.build_dir) / "bin"

    def python_env(self) -> dict[str, str]:
        """The environment of every Python process: the harness and the PRPC package importable."""
        env = dict(os.environ)
        paths = [self.repo, str(Path(self.build_dir) / "python")]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["BENCH_REDIS_URL"] = self.redis_url
        env.setdefault("PRPC_LOG_LEVEL", "warn")
        env["PYTHONUNBUFFERED"] = "1"
        return env


@dataclass
class Caller:
    """One call of the workload: `call(timeout=30.0)` returns the result (or an awaitable when
    `is_async`); readiness probes call it with a short timeout."""

    call: Callable[[], Any] | Callable[[], Awaitable[Any]]
    is_async: bool
    close: Callable[[], Any] = lambda: None


@dataclass(frozen=True)
class System:
    name: str
    module: str
    label: str
    # "floor", "prpc", "peer", or "anchor": NATS, a peer with a ratio of its own, outside "best
    # other peer"
    family: str
    driver: str  # how callers are driven: "asyncio", "threads" or the program's own
    config: str  # the server's configuration, one line for the table
    workloads: dict[str, str | None]  # workload -> None when it runs, else why it cannot
    variant: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


IO = {"noop": None, "echo": None, "sleep": None,
      "cpu": "I/O configuration: CPU work runs on the process configuration below"}
PROC = {"noop": None, "cpu": None,
        "echo": "process configuration: measured on the I/O configuration above",
        "sleep": "process configuration: measured on the I/O configuration above"}

NATIVE_NOOP = {"noop": None, "echo": "the C++ benchmark programs measure a no-op only",
               "sleep": "the C++ benchmark programs measure a no-op only",
               "cpu": "the C++ benchmark programs measure a no-op only"}

SYSTEMS: list[System] = [
    System("floor", "native", "floor (hiredis, C++)", "floor", "C++ threads (its own)",
           "redis_call_bench's floor: XADD -> XREADGROUP -> LPUSH -> BLPOP on hiredis, a server "
           "thread in the same program", NATIVE_NOOP, variant="floor"),
    System("floor-py", "floor_py", "floor (redis-py)", "floor", "asyncio",
           "the floor's protocol in Python: asyncio server, XREADGROUP COUNT 64, pipelined LPUSH",
           {"noop": None, "echo": None,
            "sleep": "a transport reference: it runs no function",
            "cpu": "a transport reference: it runs no function"}),
    System("prpc-host", "prpc_host", "PRPC prpc-host, C++ functions", "prpc", "threads",
           f"prpc-host, functions_example, thread executor x{THREADS}; raw JSON protocol client",
           {"noop": None, "echo": None, "sleep": None,
            "cpu": "functions_example has no CPU-bound function"}, variant="thread"),
    System("prpc-host-cpp", "native", "PRPC prpc-host, C++ client", "prpc",
           "C++ threads (its own)",
           f"redis_call_bench: prpc::Client (raw JSON) -> prpc-host, functions_example, thread "
           f"executor x{THREADS}", NATIVE_NOOP, variant="prpc"),
    System("prpc-py-thread", "prpc_py", "PRPC Python, thread workers", "prpc", "threads",
           f"AppServer redis, thread x{THREADS}; task.sync_wait_result_task()", IO,
           variant="thread"),
    System("prpc-py-thread-aio", "prpc_py", "PRPC Python, thread workers, awaited", "prpc",
           "asyncio", f"AppServer redis, thread x{THREADS}; await task", IO,
           variant="thread-aio"),
    System("prpc-py-async", "prpc_py", "PRPC Python, async workers", "prpc", "threads",
           f"AppServer redis, async x{ASYNC_SLOTS}; task.sync_wait_result_task()", IO,
           variant="async"),
    System("prpc-py-process", "prpc_py", "PRPC Python, process workers", "prpc", "threads",
           f"AppServer redis, process x{PROCESSES}; task.sync_wait_result_task()", PROC,
           variant="process"),
    System("prpc-py-thread-kafka", "prpc_py", "PRPC Python, thread workers, Kafka", "prpc",
           "threads", f"AppServer kafka, thread x{THREADS}; task.sync_wait_result_task()", IO,
           variant="thread-kafka", extra={"needs": "kafka"}),
    System("prpc-py-async-kafka", "prpc_py", "PRPC Python, async workers, Kafka", "prpc",
           "threads", f"AppServer kafka, async x{ASYNC_SLOTS}; task.sync_wait_result_task()", IO,
           variant="async-kafka", extra={"needs": "kafka"}),
    System("prpc-py-process-kafka", "prpc_py", "PRPC Python, process workers, Kafka", "prpc",
           "threads", f"AppServer kafka, process x{PROCESSES}; task.sync_wait_result_task()",
           PROC, variant="process-kafka", extra={"needs": "kafka"}),
    System("celery-threads", "celery_sys", "Celery, thread pool", "peer", "threads",
           f"celery worker -P threads -c {THREADS}, Redis broker + result backend", IO,
           variant="threads"),
    System("celery-prefork", "celery_sys", "Celery, prefork", "peer", "threads",
           f"celery worker -P prefork -c {PROCESSES}, Redis broker + result backend", PROC,
           variant="prefork"),
    System("arq", "arq_sys", "arq", "peer", "asyncio",
           f"arq worker, max_jobs {ASYNC_SLOTS}, poll_delay 5 ms (worker and job.result)", IO,
           variant="io"),
    System("arq-procpool", "arq_sys", "arq + ProcessPoolExecutor", "peer", "asyncio",
           f"arq worker, jobs run_in_executor(ProcessPoolExecutor({PROCESSES}))", PROC,
           variant="procpool"),
    System("taskiq", "taskiq_sys", "taskiq + taskiq-redis", "peer", "asyncio",
           f"taskiq worker --workers 1 --max-async-tasks {ASYNC_SLOTS}, RedisStreamBroker, "
           "result backend polled every 5 ms", IO, variant="io"),
    System("taskiq-procs", "taskiq_sys", "taskiq, worker processes", "peer", "asyncio",
           f"taskiq worker --workers {PROCESSES}, sync tasks, RedisStreamBroker", PROC,
           variant="procs"),
    System("dramatiq-threads", "dramatiq_sys", "dramatiq, threads", "peer", "threads",
           f"dramatiq --processes 1 --threads {THREADS}, Redis broker + Redis results", IO,
           variant="threads"),
    System("dramatiq-procs", "dramatiq_sys", "dramatiq, processes", "peer", "threads",
           f"dramatiq --processes {PROCESSES} --threads 1, Redis broker + Redis results", PROC,
           variant="procs"),
    System("faststream", "faststream_sys", "FastStream RPC (Redis)", "peer", "asyncio",
           f"faststream run, stream subscriber with a group, max_workers {ASYNC_SLOTS}; "
           "broker.request()", IO, variant="io"),
    System("faststream-procs", "faststream_sys", "FastStream RPC, worker processes", "peer",
           "asyncio", f"faststream run --workers {PROCESSES}, sync handler; broker.request()",
           PROC, variant="procs"),
    System("grpc", "grpc_sys", "gRPC Python unary (no broker)", "peer", "asyncio",
           "grpc.aio server on loopback, async handlers, bytes messages", IO, variant="io"),
    System("grpc-procpool", "grpc_sys", "gRPC + ProcessPoolExecutor (no broker)", "peer",
           "asyncio", f"grpc.aio server, handlers run_in_executor(ProcessPoolExecutor({PROCESSES}))",
           PROC, variant="procpool"),
    System("nats", "nats_sys", "NATS request/reply, nats-py (no durability)", "anchor", "asyncio",
           f"nats-server, no JetStream; a queue-group subscriber process on asyncio, "
           f"{ASYNC_SLOTS} calls in flight; cpu: {PROCESSES} subscriber processes in the group; "
           "nc.request()", {"noop": None, "echo": None, "sleep": None, "cpu": None},
           extra={"needs": "nats"}),
]

BY_NAME = {s.name: s for s in SYSTEMS}
