"""Calling a PRPC server: Client (one per queue and process) and AwaitableTask (one per call)."""

from __future__ import annotations

import asyncio
import atexit
import datetime
import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from . import _core, _tracing
from . import metrics as _metrics
from ._signing import signing_options
from .exceptions import (
    ClientTimeOutError,
    ConfigurationError,
    DecodeError,
    NotFoundFunc,
    PRPCError,
    RemoteError,
    ResultNotReadyError,
    exception_for,
)
from .prpcmessage import PRPCMessage

__all__ = ["Client", "AwaitableTask", "get_client", "call", "close_shared_clients"]

_NOT_SET: Any = object()


_UNKNOWN_FUNCTION = "UnknownFunctionError"


def _seconds(timeout: datetime.timedelta | float | None) -> float | None:
    """A wait limit as seconds: the original's timedelta, or seconds as a number, or None."""
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        return max(0.0, timeout.total_seconds())
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return max(0.0, float(timeout))
    raise TypeError(f"timeout must be a datetime.timedelta, seconds or None, not {timeout!r}")


def _raise_for(status: str, value: Any, func_name: str, message_id: str,
               limit: datetime.timedelta | float | None) -> None:
    if status == "remote":
        remote_type, message, traceback = value
        if remote_type == _UNKNOWN_FUNCTION:
            raise NotFoundFunc(func_name, message, traceback)
        raise RemoteError(remote_type, message, traceback)
    if status == "Timeout":
        raise ClientTimeOutError(limit, f"{func_name} (message_id {message_id}): {value}")
    error = exception_for(status)  # the one table, shared with the extension
    if error is DecodeError:
        raise DecodeError(f"{func_name}: the reply cannot be decoded: {value}")
    if error is PRPCError:
        raise PRPCError(f"{func_name}: {status}: {value}")
    raise error(f"{func_name}: {value}")


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _LoopWaker:
    """Wakes one event loop's awaiting calls. The thread that receives a reply queues its handle
    in C++ without taking the GIL (_core.Waker), and the loop, woken through an eventfd it
    watches, resolves the futures of every reply that came in together in one pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._core = _core.Waker()
        self._waiting: dict[_core.CallHandle, list[asyncio.Future[None]]] = {}
        loop.add_reader(self._core.fd, self._ready)  # no reference back to the loop

    def future(self, handle: _core.CallHandle,
               loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        waiting = self._waiting.get(handle)
        if waiting:
            waiting.append(future)
        else:
            self._waiting[handle] = [future]
            handle.notify(self._core)
        return future

    def forget(self, handle: _core.CallHandle, future: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(handle)
        if waiting and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiting[handle]

    def _ready(self) -> None:
        for handle in self._core.drain():
            for future in self._waiting.pop(handle, ()):
                if not future.done():
                    future.set_result(None)


_loop_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker | None] = \
    weakref.WeakKeyDictionary()
_loop_wakers_lock = threading.Lock()


def _waker_for(loop: asyncio.AbstractEventLoop) -> _LoopWaker | None:
    """The loop's waker; None for a loop that cannot watch a descriptor (then each reply wakes
    the loop through call_soon_threadsafe)."""
    try:
        return _loop_wakers[loop]
    except KeyError:
        pass
    with _loop_wakers_lock:
        if loop not in _loop_wakers:
            try:
                _loop_wakers[loop] = _LoopWaker(loop)
            except (NotImplementedError, OSError):
                _loop_wakers[loop] = None
        return _loop_wakers[loop]


class AwaitableTask:
    """One call in progress.

    ``AwaitableTask(func_name, args, kwargs)`` sends the call at once through the process's
    shared client (configured by PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME), as in
    the original PRPC. Wait for it with the original API (sync_wait_result_task,
    async_wait_result_task, is_done_task, get_result; timeouts as datetime.timedelta or seconds)
    or the idiomatic one (``await task``, ``task.result(timeout=...)``). A remote failure raises
    RemoteError (NotFoundFunc for an unknown function); no reply in time raises
    ClientTimeOutError, and the task can be waited on again.
    """

    __slots__ = ("_handle", "_request", "_reply", "_client", "_limit", "_breakdown")
    _handle: _core.CallHandle
    # The request as a PRPCMessage, built when first asked for: until then its parts and the
    # time it was sent (building it costs more than a no-op call's Python work on the client).
    _request: PRPCMessage | tuple[str, list[Any] | tuple[Any, ...], dict[str, Any], float]
    _reply: PRPCMessage | None
    _client: _core.Client
    _limit: datetime.timedelta | float | None
    _breakdown: dict[str, Any] | None

    def __init__(self, func_name: str, args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None) -> None:
        if not isinstance(func_name, str):
            raise TypeError(f"func_name must be a str, not {type(func_name).__name__}")
        if not isinstance(args, (list, tuple)):
            raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
        task = get_client().call_with(func_name, args, kwargs)
        self._handle = task._handle
        self._request = task._request
        self._reply = None
        self._client = task._client
        self._limit = task._limit
        self._breakdown = None

    @classmethod
    def _attach(cls, handle: _core.CallHandle,
                request: PRPCMessage | tuple[str, list[Any] | tuple[Any, ...], dict[str, Any],
                                             float],
                client: _core.Client,
                limit: datetime.timedelta | float | None = None) -> AwaitableTask:
        task = cls.__new__(cls)
        task._handle = handle
        task._request = request
        task._reply = None
        task._client = client
        task._limit = limit  # the call's own timeout (call_with), if it has one
        task._breakdown = None
        return task

    def __repr__(self) -> str:
        state = "done" if self._handle.done() else "pending"
        return f"<AwaitableTask {self._handle.func_name} {self._handle.message_id} {state}>"

    @property
    def message_id(self) -> str:
        return self._handle.message_id

    @property
    def message(self) -> PRPCMessage:
        """The reply once it arrived (result, exception_info, dates), else the request."""
        if self._reply is None and self._handle.done():
            fields = self._handle.reply_fields()
            if fields:
                self._reply = PRPCMessage._from_fields(fields)
        if self._reply is not None:
            return self._reply
        if isinstance(self._request, tuple):
            func_name, args, kwargs, sent = self._request
            self._request = PRPCMessage(
                func_name, args, kwargs, uuid.UUID(self._handle.message_id),
                date_create_message=datetime.datetime.fromtimestamp(sent, datetime.timezone.utc))
        return self._request

    @property
    def time_execution(self) -> datetime.timedelta | None:
        """From sending the request to receiving its reply, once done (a timedelta)."""
        if not self._handle.done():
            return None
        return datetime.timedelta(seconds=self._handle.elapsed())

    @property
    def breakdown(self) -> dict[str, Any]:
        """Where the call's time went, from its reply (docs/protocol.md): ``server`` (the id of
        the server that answered), ``time_queued`` (seconds from the request's creation to the
        start of its execution) and ``time_executing`` (seconds the function ran), each present
        when the server sent it. Empty until the reply arrives, and from servers that send none
        (an original PRPC server)."""
        if self._breakdown is None:
            if not self._handle.done():
                return {}
            text = self._handle.reply_fields().get("extensions") or ""
            try:
                fields = json.loads(text) if text else {}
            except ValueError:
                fields = {}
            if not isinstance(fields, dict):
                fields = {}
            self._breakdown = {k: fields[k] for k in ("server", "time_queued", "time_executing")
                               if k in fields}
        return dict(self._breakdown)

    def is_done_task(self, *, update_status: bool = False) -> bool:
        """Whether the reply arrived. Replies are pushed, so `update_status` (the original
        polled the broker with it) changes nothing."""
        return self._handle.done()

    def done(self) -> bool:
        return self._handle.done()

    def get_result(self) -> Any:
        """The result. Raises ResultNotReadyError ("task in process") before the reply came,
        RemoteError when the remote function failed."""
        if not self._handle.done():
            raise ResultNotReadyError()
        return self._value()

    def sync_wait_result_task(self, timeout: datetime.timedelta | float | None = None) -> Any:
        """Blocks until the reply arrives and returns the result; `timeout` (a timedelta or
        seconds; None waits for ever) raises ClientTimeOutError when it passes first."""
        seconds = _seconds(timeout)
        if not self._handle.wait(-1.0 if seconds is None else seconds):
            raise self._timed_out(timeout)
        return self._value()

    def result(self, timeout: datetime.timedelta | float | None = None) -> Any:
        return self.sync_wait_result_task(timeout)

    async def async_wait_result_task(
        self, timeout: datetime.timedelta | float | None = None
    ) -> Any:
        """Waits without blocking the event loop; `timeout` as in sync_wait_result_task."""
        try:
            return await asyncio.wait_for(self._wait(), _seconds(timeout))
        except asyncio.TimeoutError:
            raise self._timed_out(timeout) from None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        if not self._handle.done():
            loop = asyncio.get_running_loop()
            waker = _waker_for(loop)
            if waker is None:
                future: asyncio.Future[None] = loop.create_future()

                def wake() -> None:  # on the thread that received the reply, with the GIL
                    try:
                        loop.call_soon_threadsafe(_wake, future)
                    except RuntimeError:  # the loop is closed: nobody waits any more
                        pass

                self._handle.add_done_callback(wake)
                await future
            else:
                future = waker.future(self._handle, loop)
                try:
                    await future
                except BaseException:  # cancelled (a timeout around the await): stop waiting
                    waker.forget(self._handle, future)
                    raise
        return self._value()

    def _timed_out(self, timeout: datetime.timedelta | float | None) -> ClientTimeOutError:
        if _metrics.enabled:
            _metrics.record_timeout(self._client.queue, self._handle.func_name)
        detail = f"{self._handle.func_name}: no reply (message_id {self._handle.message_id})"
        why = self._client.diagnosis
        return ClientTimeOutError(timeout, f"{detail}; {why}" if why else detail)

    def _value(self) -> Any:
        status, value = self._handle.outcome()
        if status == "ok":
            return value
        _raise_for(status, value, self._handle.func_name, self._handle.message_id, self._limit)


class Client:
    """The client of one queue. Every call of the process, from any thread or event loop, goes
    through its one set of broker connections and one reply listener; nothing polls.

    Without arguments it reads PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME. ``raw=True``
    speaks the raw JSON protocol (prpc_raw_{queue}) instead of jsonpickle. With `signing_key` (or
    PRPC_SIGNING_KEY) requests are signed, and a reply not signed with it or one of
    `previous_signing_keys` fails its call with DecodeError (docs/security.md).
    """

    def __init__(
        self,
        type_broker: str | None = None,
        broker_url: str | None = None,
        queue_name: str | None = None,
        *,
        raw: bool = False,
        options: Mapping[str, Any] | None = None,
        signing_key: str | None = None,
        previous_signing_keys: Sequence[str] = (),
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
        config.update(signing_options(signing_key, previous_signing_keys))
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
        timeout: datetime.timedelta | float | None = None,
        deadline: datetime.datetime | None = None,
    ) -> AwaitableTask:
        """Calls with explicit argument containers. `timeout` (seconds or a timedelta) fails the
        call locally when no reply came in time; `deadline` also tells the server not to start
        it after then."""
        kwargs = dict(kwargs) if kwargs else {}
        positional: list[Any] | tuple[Any, ...] = \
            args if isinstance(args, (list, tuple)) else list(args)
        deadline_text = ""
        if deadline is not None:
            if deadline.tzinfo is None:
                deadline = deadline.astimezone()
            deadline_text = deadline.isoformat()
        traced = _tracing.start_client_span(func_name, self._core.queue) \
            if _tracing.available else None
        if traced is None:
            handle = self._core.call(
                func_name, list(positional), kwargs, _seconds(timeout) or 0.0, deadline_text
            )
        else:
            span, traceparent, tracestate = traced
            try:
                handle = self._core.call(func_name, list(positional), kwargs,
                                         _seconds(timeout) or 0.0,
                                         deadline_text, traceparent, tracestate)
            except BaseException:
                span.end()
                raise
            handle.add_done_callback(lambda: _tracing.end_client_span(span, handle))
        if _metrics.enabled:
            _metrics.record_call(self._core.queue, func_name, handle)
        return AwaitableTask._attach(handle, (func_name, positional, kwargs, time.time()),
                                     self._core, timeout)

    def ping(self, timeout: datetime.timedelta | float = 10.0) -> str:
        return self.call("ping").sync_wait_result_task(timeout)

    def get_function_server(self, timeout: datetime.timedelta | float = 10.0) -> dict[str, Any]:
        """The server's manifest: its functions with their signatures and worker types."""
        return self.call_with("get_function_server", (), {"format": "manifest"}).result(timeout)


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
