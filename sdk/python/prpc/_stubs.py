"""Support for the stubs `python -m prpc.create_server_func` writes."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

from .client import AwaitableTask, get_client

__all__ = ["remote_function", "RemoteDefault"]

F = TypeVar("F", bound=Callable[..., Any])


class RemoteDefault:
    """A server-side default that is not a literal: shown as the server wrote it, never sent."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def remote_function(queue: str, name: str) -> Callable[[F], F]:
    """Turns a stub with the server function's exact signature into a remote call. Arguments are
    bound like a local call (so mistakes raise TypeError here), and only the arguments the
    caller passed are sent: the server applies its own defaults."""

    def wrap(stub: F) -> F:
        signature = inspect.signature(stub)

        @functools.wraps(stub)
        def call(*args: Any, **kwargs: Any) -> AwaitableTask:
            bound = signature.bind(*args, **kwargs)
            return get_client(queue_name=queue).call_with(name, bound.args, bound.kwargs)

        return call  # type: ignore[return-value]

    return wrap
