"""Serving Python functions: AppServer, with the original PRPC's API."""

from __future__ import annotations

import datetime
import inspect
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import _core, _tracing
from ._async import AsyncRunner
from ._signature import spec_json
from ._signing import signing_options
from .exceptions import ConfigurationError, RegistrationError

__all__ = ["AppServer", "FuncData", "WORKER_TYPES"]

WORKER_TYPES = ("thread", "process", "async")
_RESERVED = ("ping", "get_function_server", "prpc.info", "prpc.stats")

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("prpc")


def _seconds(value: datetime.timedelta | float | int | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{what} must be a datetime.timedelta or None, not {value!r}")
    if seconds <= 0:
        raise ConfigurationError(f"{what} must be positive, not {value!r}")
    return seconds


# The original PRPC's server settings (environment variables, in seconds or counts), as
# configuration keys of the broker they apply to.
_ORIGINAL_SETTINGS = {
    "redis": (
        ("PRPC_REDIS_EXPIRE_MESSAGE_FEEDBACK_SEC", "broker.options.result_ttl", "s"),
        ("PRPC_REDIS_RECOVER_INTERVAL_SEC", "server.visibility_timeout", "s"),
    ),
    "kafka": (
        ("PRPC_KAFKA_FEEDBACK_TOPIC_NUMBER_PARTITIONS", "broker.options.partitions", ""),
        ("PRPC_KAFKA_QUEUE_TOPIC_NUMBER_PARTITIONS", "broker.options.partitions", ""),
        ("PRPC_KAFKA_REPLICATION_FACTOR", "broker.options.replication_factor", ""),
    ),
}


def _original_settings(type_broker: str) -> dict[str, str]:
    """The original's environment variables that are set, as our configuration. Later entries
    win (the queue topics' partition count over the feedback topics': ours share one count)."""
    out: dict[str, str] = {}
    instance = os.environ.get("PRPC_INSTANCE_NAME")
    if instance:
        out["server.consumer"] = instance
    for env, key, unit in _ORIGINAL_SETTINGS.get(type_broker, ()):
        value = os.environ.get(env)
        if value is None or value == "":
            continue
        try:
            number = int(value)
        except ValueError:
            raise ConfigurationError(f"{env} must be a whole number, not {value!r}") from None
        out[key] = f"{number}{unit}"
    return out


class FuncData:
    """A registered function as the original's AppServer.func_data listed it."""

    def __init__(self, func: Callable[..., Any], worker_type: str, func_name: str) -> None:
        self.func = func
        self.worker_type = worker_type
        self.func_name = func_name
        self.is_coroutine = inspect.iscoroutinefunction(func)
        try:
            parameters = inspect.signature(func).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        empty = inspect.Parameter.empty
        self.func_args = {n: p for n, p in parameters.items() if p.default is empty}
        self.func_kwargs = {n: p for n, p in parameters.items() if p.default is not empty}

    def __repr__(self) -> str:
        return f"FuncData: func_name={self.func_name}, worker_type={self.worker_type}"


def _main_module_args() -> list[str]:
    """How a worker process finds the application's __main__, as multiprocessing's spawn does."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in (None, "__main__"):
        return ["--main-module", spec.name]
    path = getattr(main, "__file__", None)
    if path:
        return ["--main-path", os.path.abspath(path)]
    return []


class AppServer:
    """A server of Python functions on one queue.

    >>> app = AppServer("redis", "redis://localhost:6379/0", "thread", 4,
    ...                 datetime.timedelta(seconds=100))
    >>> @app.decorator_reg_func("process")
    ... def summ(a, b, z=0.5): return a + b + z

    `default_type_worker` is the worker type of functions registered without one
    ("thread", "process" or "async"); `max_number_worker` is the number of workers of each type;
    `timeout_worker` limits one call (a timedelta, or None for no limit).

    With `signing_key` (or PRPC_SIGNING_KEY) the server runs only requests signed with it or one
    of `previous_signing_keys` (others are dead-lettered) and signs its replies
    (docs/security.md). `options` sets any other configuration key ("server.max_message_bytes").
    """

    _instance: AppServer | None = None

    @classmethod
    def get_instance(cls) -> AppServer:
        """The AppServer this process made last (the original allowed only one)."""
        if cls._instance is None:
            raise ConfigurationError("no AppServer was created in this process")
        return cls._instance

    def __init__(
        self,
        type_broker: str,
        broker_url: str,
        default_type_worker: str = "thread",
        max_number_worker: int = 4,
        timeout_worker: datetime.timedelta | None = None,
        name_queue: str = "task_prpc",
        *,
        group_name: str = "prpc_group_consumers",
        drain_grace: datetime.timedelta | float = 30.0,
        metrics_listen: str | None = None,
        options: dict[str, Any] | None = None,
        signing_key: str | None = None,
        previous_signing_keys: Sequence[str] = (),
    ) -> None:
        if not isinstance(type_broker, str) or not type_broker:
            raise ConfigurationError("type_broker must be a broker name such as 'redis' or 'kafka'")
        if not isinstance(broker_url, str) or not broker_url:
            raise ConfigurationError("broker_url must be the broker's URL")
        if default_type_worker not in WORKER_TYPES:
            raise ConfigurationError(
                f"unknown worker type {default_type_worker!r}; use one of {', '.join(WORKER_TYPES)}"
            )
        if (isinstance(max_number_worker, bool) or not isinstance(max_number_worker, int)
                or max_number_worker < 1):
            raise ConfigurationError(
                f"max_number_worker must be a positive int, not {max_number_worker!r}")
        if not isinstance(name_queue, str) or not name_queue:
            raise ConfigurationError("name_queue must be a non-empty string")
        self.type_broker = type_broker
        self.broker_url = broker_url
        self.default_type_worker = default_type_worker
        self.max_number_worker = max_number_worker
        self.timeout_worker = timeout_worker
        self.name_queue = name_queue
        self.group_name = group_name
        self._timeout_s = _seconds(timeout_worker, "timeout_worker")
        self._grace_s = _seconds(drain_grace, "drain_grace") or 30.0
        self._options = dict(options or {})
        self._options.update(signing_options(signing_key, previous_signing_keys))
        if metrics_listen is not None:
            if not isinstance(metrics_listen, str) or ":" not in metrics_listen:
                raise ConfigurationError(
                    f"metrics_listen must be 'host:port', not {metrics_listen!r}")
            self._options.setdefault("metrics.listen", metrics_listen)
        self._table = _core.FunctionTable()
        self._functions: dict[str, tuple[Callable[..., Any], str]] = {}
        self._stop = threading.Event()
        self._server: _core.Server | None = None
        AppServer._instance = self

    def __repr__(self) -> str:
        return (f"<AppServer {self.type_broker} queue={self.name_queue!r} "
                f"functions={list(self._functions)}>")

    # ---- registration ---------------------------------------------------------------------

    def decorator_reg_func(self, worker_type: str | None = None) -> Callable[[F], F]:
        """Registers the decorated function; `worker_type` defaults to the server's."""
        if callable(worker_type) and not isinstance(worker_type, str):
            raise RegistrationError(
                "use @app.decorator_reg_func() with parentheses (or name a worker type)"
            )

        def register(func: F) -> F:
            self.register_func(func, worker_type)
            return func

        return register

    def register_func(
        self, func: Callable[..., Any], worker_type: str | None = None, *, name: str | None = None
    ) -> None:
        """Registers `func` under its __name__ (or `name`) to run on `worker_type` workers."""
        if not callable(func):
            raise RegistrationError(f"{func!r} is not callable")
        worker = worker_type or self.default_type_worker
        fname = name or getattr(func, "__name__", None)
        if not fname or not isinstance(fname, str):
            raise RegistrationError(f"{func!r} has no __name__: pass name=")
        if worker not in WORKER_TYPES:
            raise RegistrationError(
                f"{fname}: unknown worker type {worker!r}; use one of {', '.join(WORKER_TYPES)}"
            )
        if fname in _RESERVED or fname.startswith("prpc."):
            raise RegistrationError(f"{fname}: the name is reserved by PRPC")
        if fname in self._functions:
            raise RegistrationError(f"{fname}: a function of that name is already registered")
        coroutine = inspect.iscoroutinefunction(func)
        if coroutine and worker != "async":
            raise RegistrationError(
                f"{fname} is a coroutine function: register it with worker type 'async', "
                f"not {worker!r}"
            )
        if not coroutine and worker == "async":
            raise RegistrationError(
                f"{fname} is not a coroutine function: 'async' workers run `async def` functions"
            )
        if worker == "process":
            qualname = getattr(func, "__qualname__", "")
            if "<" in qualname or not getattr(func, "__module__", None):
                raise RegistrationError(
                    f"{fname}: process workers import functions by name, so define it at module "
                    f"level (not {qualname or 'a lambda'})"
                )
        doc = inspect.getdoc(func) or ""
        self._table.add(fname, func, worker, coroutine, spec_json(func), doc)
        self._functions[fname] = (func, worker)

    def register_funcs(self, *funcs: Callable[..., Any], worker_type: str | None = None) -> None:
        for func in funcs:
            self.register_func(func, worker_type)

    @property
    def functions(self) -> dict[str, str]:
        """Registered function names and their worker types."""
        return {name: worker for name, (_, worker) in self._functions.items()}

    @property
    def func_data(self) -> list[FuncData]:
        """The registered functions, as the original's AppServer listed them."""
        return [FuncData(func, worker, name) for name, (func, worker) in self._functions.items()]

    # ---- serving --------------------------------------------------------------------------

    def _config(self) -> dict[str, str]:
        config = {
            "broker.type": self.type_broker,
            "broker.url": self.broker_url,
            "queue.name": self.name_queue,
            "queue.group": self.group_name,
            "server.default_worker": self.default_type_worker,
            "server.call_timeout": str(int(self._timeout_s * 1000)) if self._timeout_s else "0",
            "server.drain_grace": str(int(self._grace_s * 1000)),
        }
        config.update(_original_settings(self.type_broker))
        workers = {w for _, w in self._functions.values()} | {self.default_type_worker}
        for worker in sorted(workers):
            config[f"executors.{worker}.plugin"] = worker
            config[f"executors.{worker}.workers"] = str(self.max_number_worker)
        if "process" in workers:
            config["executors.process.worker_command"] = json.dumps(self._worker_command())
        for key, value in self._options.items():
            config[key] = value if isinstance(value, str) else str(value)
        return config

    def _worker_command(self) -> list[str]:
        main_args = _main_module_args()
        table = []
        for name, (func, worker) in self._functions.items():
            if worker == "process":
                table.append([name, func.__module__, func.__qualname__])
        if any(module == "__main__" for _, module, _ in table) and not main_args:
            raise ConfigurationError(
                "process workers import the application like multiprocessing's spawn does: run "
                "it from a file (python app.py) or a module (python -m app)"
            )
        return [sys.executable, "-m", "prpc._worker", *main_args, "--functions", json.dumps(table)]

    def start(self) -> None:
        """Serves until SIGINT or SIGTERM (or stop()); then lets calls in flight finish within
        the drain grace period and leaves the rest to other servers."""
        runner = None
        if any(inspect.iscoroutinefunction(f) for f, _ in self._functions.values()):
            runner = AsyncRunner()
            self._table.set_async_runner(runner)
        self._stop.clear()
        self._table.set_tracer(_tracing.tracer_hook())
        self._server = _core.Server(self._config(), self._table)
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signo in (signal.SIGINT, signal.SIGTERM):
                previous[signo] = signal.signal(signo, self._on_signal)
        try:
            self._server.start()
            log.info("serving %d functions on queue %r", len(self._functions), self.name_queue)
            self._stop.wait()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self._server.stop(self._grace_s)
            if runner is not None:
                runner.stop()

    def stop(self) -> None:
        """Makes start() return after draining. Safe from any thread."""
        self._stop.set()

    def stats(self) -> dict[str, int]:
        return self._server.stats() if self._server is not None else {}

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics is served on while serving (metrics_listen, metrics.listen or
        PRPC_METRICS_LISTEN; port 0 picks a free one), else None."""
        port = self._server.metrics_port if self._server is not None else 0
        return port or None

    def metrics_text(self) -> str:
        """The Prometheus text format of the server's metrics, as /metrics serves it."""
        return self._server.metrics_text() if self._server is not None else ""

    def _on_signal(self, signo: int, frame: Any) -> None:
        log.info("received %s, draining", signal.Signals(signo).name)
        self._stop.set()
