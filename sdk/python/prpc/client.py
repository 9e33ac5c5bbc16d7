"""Calling a PRPC server: Client (one per queue and process) and AwaitableTask (one per call)."""

from __future__ import annotations

import asyncio
import atexit
import datetime
import os
import threading
import uuid
from typing import Any, Generator, Mapping, Sequence

from . import _core
from .exceptions import (
    BrokerError,
    ClientTimeOutError,
    ConfigurationError,
    DecodeError,
    PRPCError,
    RemoteError,
)
from .prpcmessage import PRPCMessage

__all__ = ["Client", "AwaitableTask", "get_client", "call", "close_shared_clients"]

_NOT_SET: Any = object()


def _raise_for(status: str, value: Any, func_name: str) -> None:
    if status == "remote":
        remote_type, message, traceback = value
        raise RemoteError(remote_type, message, traceback)
    if status == "Timeout":
        raise ClientTimeOutError(f"{func_name}: {value}")
    if status in ("Unavailable", "Cancelled"):
        raise BrokerError(f"{func_name}: {value}")
    if status == "DecodeError":
        raise DecodeError(f"{func_name}: the reply cannot be decoded: {value}")
    raise PRPCError(f"{func_name}: {status}: {value}")


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AwaitableTask:
    """One call in progress. Wait for it with the original API (sync_wait_result_task,
    async_wait_result_task, is_done_task, get_result) or the idiomatic one (``await task``,
    ``task.result(timeout=...)``). A remote failure raises RemoteError; no reply in time raises
    ClientTimeOutError."""

    __slots__ = ("_handle", "_request")

    def __init__(self, handle: _core.CallHandle, request: PRPCMessage) -> None:
        self._handle = handle
        self._request = request

    def __repr__(self) -> str:
        state = "done" if self._handle.done() else "pending"
        return f"<AwaitableTask {self._handle.func_name} {self._handle.message_id} {state}>"

    @property
    def message_id(self) -> str:
        return self._handle.message_id

    @property
    def message(self) -> PRPCMessage:
        """The reply once it arrived (result, exception_info, dates), else the request."""
        if self._handle.done():
            fields = self._handle.reply_fields()
            if fields:
                return PRPCMessage._from_fields(fields)
        return self._request

    @property
    def time_execution(self) -> float | None:
        """Seconds from sending the request to receiving its reply, once done."""
        return self._handle.elapsed() if self._handle.done() else None

    def is_done_task(self) -> bool:
        return self._handle.done()

    def done(self) -> bool:
        return self._handle.done()

    def get_result(self) -> Any:
        """The result if the reply arrived (raising RemoteError for a remote failure), else None."""
        if not self._handle.done():
            return None
        return self._value()

    def sync_wait_result_task(self, timeout: float | None = None) -> Any:
        """Blocks until the reply arrives (at most `timeout` seconds) and returns the result."""
        if not self._handle.wait(-1.0 if timeout is None else max(0.0, float(timeout))):
            raise ClientTimeOutError(
                f"{self._handle.func_name}: no reply within {timeout} s "
                f"(message_id {self._handle.message_id})"
            )
        return self._value()

    def result(self, timeout: float | None = None) -> Any:
        return self.sync_wait_result_task(timeout)

    async def async_wait_result_task(self, timeout: float | None = None) -> Any:
        """Waits without blocking the event loop (at most `timeout` seconds)."""
        try:
            return await asyncio.wait_for(self._wait(), timeout)
        except asyncio.TimeoutError:
            raise ClientTimeOutError(
                f"{self._handle.func_name}: no reply within {timeout} s "
                f"(message_id {self._handle.message_id})"
            ) from None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        if not self._handle.done():
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()

            def wake() -> None:  # on the thread that received the reply, with the GIL
                try:
                    loop.call_soon_threadsafe(_wake, future)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass

            self._handle.add_done_callback(wake)
            await future
        return self._value()

    def _value(self) -> Any:
        status, value = self._handle.outcome()
        if status == "ok":
            return value
        _raise_for(status, value, self._handle.func_name)


class Client:
    """The client of one queue. Every call of the process, from any thread or event loop, goes
    through its one set of broker connections and one reply listener; nothing polls.

    Without arguments it reads PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME. ``raw=True``
    speaks the raw JSON protocol (prpc_raw_{queue}) instead of jsonpickle.
    """

    def __init__(
        self,
        type_broker: str | None = None,
        broker_url: str | None = None,
        queue_name: str | None = None,
        *,
        raw: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        type_broker = type_broker or os.environ.get("PRPC_TYPE_BROKER")
        broker_url = broker_url or os.environ.get("PRPC_URL_BROKER")
        queue_name = queue_name or os.environ.get("PRPC_QUEUE_NAME") or "task_prpc"
        if not type_broker:
            raise ConfigurationError(
                "no broker type: pass type_broker or set PRPC_TYPE_BROKER (redis or kafka)"
            )
        if not broker_url:
            raise ConfigurationError(
                "no broker URL: pass broker_url or set PRPC_URL_BROKER "
                "(e.g. redis://localhost:6379/0 or localhost:9092)"
            )
        config = {"broker.type": str(type_broker), "broker.url": str(broker_url),
                  "queue.name": str(queue_name)}
        for key, value in (options or {}).items():
            config[key] = value if isinstance(value, str) else str(value)
        self.type_broker = type_broker
        self.broker_url = broker_url
        self.queue_name = queue_name
        self.raw = raw
        self._core = _core.Client(config, raw)

    def __repr__(self) -> str:
        return f"<prpc.Client {self.type_broker} queue={self.queue_name!r}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops the reply listener; calls still pending fail with BrokerError."""
        self._core.close()

    def call(self, func_name: str, /, *args: Any, **kwargs: Any) -> AwaitableTask:
        """Calls ``func_name(*args, **kwargs)`` on the server; returns at once."""
        return self.call_with(func_name, args, kwargs)

    def call_with(
        self,
        func_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        deadline: datetime.datetime | None = None,
    ) -> AwaitableTask:
        """Calls with explicit argument containers. `timeout` fails the call locally when no
        reply came in time; `deadline` also tells the server not to start it after then."""
        kwargs = dict(kwargs) if kwargs else {}
        deadline_text = ""
        if deadline is not None:
            if deadline.tzinfo is None:
                deadline = deadline.astimezone()
            deadline_text = deadline.isoformat()
        handle = self._core.call(
            func_name, list(args), kwargs, float(timeout or 0.0), deadline_text
        )
        request = PRPCMessage(func_name, list(args), kwargs, uuid.UUID(handle.message_id))
        return AwaitableTask(handle, request)

    def ping(self, timeout: float = 10.0) -> str:
        return self.call("ping").sync_wait_result_task(timeout)

    def get_function_server(self, timeout: float = 10.0) -> dict[str, Any]:
        """The server's manifest: its functions with their signatures and worker types."""
        return self.call("get_function_server").sync_wait_result_task(timeout)


_clients: dict[tuple[str, str, str, bool], Client] = {}
_clients_lock = threading.Lock()


def get_client(
    type_broker: str | None = None,
    broker_url: str | None = None,
    queue_name: str | None = None,
    *,
    raw: bool = False,
) -> Client:
    """The process's shared Client for that broker and queue (from the environment by default)."""
    key = (
        type_broker or os.environ.get("PRPC_TYPE_BROKER", ""),
        broker_url or os.environ.get("PRPC_URL_BROKER", ""),
        queue_name or os.environ.get("PRPC_QUEUE_NAME", "task_prpc"),
        raw,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = Client(*key[:3], raw=raw)
            _clients[key] = client
        return client


def close_shared_clients() -> None:
    """Closes the clients get_client() made (done at interpreter exit too)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


atexit.register(close_shared_clients)


def call(func_name: str, /, *args: Any, **kwargs: Any) -> AwaitableTask:
    """Calls a function through the shared client configured by the environment."""
    return get_client().call_with(func_name, args, kwargs)
