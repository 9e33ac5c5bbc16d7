"""Support for the stubs `python -m prpc.create_server_func` writes."""

from __future__ import annotations

import functools
import inspect
import os
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from .client import AwaitableTask, get_client

__all__ = ["remote_function", "RemoteDefault", "stubs_path"]

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


def stubs_path(queue: str) -> str:
    """Where create_server_func keeps a copy of a queue's stubs for ``prpc.server_func``:
    $PRPC_STUBS_DIR, else $XDG_DATA_HOME/prpc/stubs, else ~/.local/share/prpc/stubs."""
    root = os.environ.get("PRPC_STUBS_DIR")
    if not root:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                                "share")
        root = os.path.join(data, "prpc", "stubs")
    return os.path.join(root, urllib.parse.quote(queue, safe="") + ".py")
