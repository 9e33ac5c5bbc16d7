"""PRPC's exceptions: one hierarchy under PRPCError, each also a matching builtin.

The original PRPC's names (prpc.support_module.exceptions) are these same classes: code that
catches ClientTimeOutError, NotFoundFunc or JSONDeserializeError from the original catches ours.
"""

from __future__ import annotations

import datetime
from typing import Any

__all__ = [
    "PRPCError",
    "ClientTimeOutError",
    "ResultNotReadyError",
    "RemoteError",
    "NotFoundFunc",
    "BrokerError",
    "ConfigurationError",
    "PluginError",
    "RegistrationError",
    "DecodeError",
    "EncodeError",
    "JSONDeserializeError",
    "PRPCMessageDeserializeError",
    "MessageFromStreamDataValidationError",
]


class PRPCError(Exception):
    """Base class of every error PRPC raises."""


def _as_timedelta(timeout: Any) -> datetime.timedelta | None:
    if timeout is None or isinstance(timeout, datetime.timedelta):
        return timeout
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return datetime.timedelta(seconds=timeout)
    raise TypeError(f"timeout must be a datetime.timedelta or seconds, not {timeout!r}")


class ClientTimeOutError(PRPCError, TimeoutError):
    """No reply arrived within the time the caller waited.

    ``ClientTimeOutError(timeout)`` as in the original PRPC: ``.timeout`` is that
    datetime.timedelta (seconds are accepted too) and the text is the original's. ``detail``
    says which call it was and what may be wrong (for instance that the queue's servers look
    like the original PRPC's); str() appends it after the original's text.
    """

    def __init__(self, timeout: datetime.timedelta | float | str | None = None,
                 detail: str = "") -> None:
        if isinstance(timeout, str):  # raised with only a message (by the runtime)
            detail = timeout
            timeout = None
        self.timeout = _as_timedelta(timeout)
        self.detail = detail
        super().__init__(self.timeout, detail)

    def __str__(self) -> str:
        if self.timeout is None:
            return self.detail or "the task was completed by wait timeout"
        text = f"the task was completed by wait timeout {self.timeout.total_seconds()} secs."
        return f"{text} ({self.detail})" if self.detail else text


class ResultNotReadyError(PRPCError, RuntimeError):
    """get_result() was called before the reply arrived (the original's "task in process")."""

    def __init__(self, message: str = "task in process") -> None:
        super().__init__(message)


class RemoteError(PRPCError):
    """The remote function raised. Carries the remote type name, message and traceback; the
    text is the reply's exception_info ("ValueError: bad input")."""

    def __init__(self, remote_type: str, remote_message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {remote_message}")
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback

    def __reduce__(self):  # keeps the three fields through pickling
        return (type(self), (self.remote_type, self.remote_message, self.remote_traceback))


class NotFoundFunc(RemoteError, LookupError):
    """The server serves no function of that name (the original's name).

    ``NotFoundFunc(func_name)`` as in the original; raised by the client for a reply whose type
    is UnknownFunctionError."""

    def __init__(self, func_name: str, remote_message: str | None = None,
                 remote_traceback: str = "") -> None:
        self.func_name = func_name
        super().__init__("UnknownFunctionError",
                         remote_message or f"func name '{func_name}' not found in server",
                         remote_traceback)

    def __reduce__(self):
        return (type(self), (self.func_name, self.remote_message, self.remote_traceback))


class BrokerError(PRPCError, ConnectionError):
    """The broker could not be reached, or refused a request."""


class ConfigurationError(PRPCError, ValueError):
    """A setting is missing or has a wrong value."""


class PluginError(PRPCError, RuntimeError):
    """A plugin is missing, incompatible with this runtime, or failed to start."""


class RegistrationError(PRPCError, TypeError):
    """A function cannot be registered as asked (worker type, duplicate name, ...)."""


class DecodeError(PRPCError, ValueError):
    """A message or value could not be decoded, or was refused by the decoder's allow-list."""


class EncodeError(PRPCError, TypeError):
    """A value cannot be encoded by the queue's codec."""


class JSONDeserializeError(DecodeError):
    """The text is not a message at all (invalid JSON, or refused by the decoder)."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return "json error" + (f": {self.reason}" if self.reason else "")


class PRPCMessageDeserializeError(DecodeError):
    """The text decodes, but not to a PRPCMessage (wrong shape, missing or invalid fields)."""

    def __init__(self, serialize_message: Any, reason: str = "") -> None:
        self.serialize_message = serialize_message
        self.reason = reason
        super().__init__(serialize_message, reason)

    def __str__(self) -> str:
        text = (f"the message {self.serialize_message} has the wrong format for deserialize "
                "prpc message")
        return text + (f" ({self.reason})" if self.reason else "")


class MessageFromStreamDataValidationError(DecodeError):
    """A stream entry without the field `message`."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return "the message from stream does not have an attribute `message`"


# The one table from a status code (by its name, prpc::status_code_name) to the exception raised
# for it. The extension (raise_status in hosts/python/src/py_runtime.cpp) and the client read it.
STATUS_EXCEPTIONS: dict[str, type[PRPCError]] = {
    "Unavailable": BrokerError,
    "Cancelled": BrokerError,  # the client or the broker was closed under the call
    "Timeout": ClientTimeOutError,
    "InvalidArgument": ConfigurationError,
    "NotFound": PluginError,
    "FailedPrecondition": PluginError,
    "AlreadyExists": PluginError,
    "DecodeError": DecodeError,
    "EncodeError": EncodeError,
}


def exception_for(status: str) -> type[PRPCError]:
    """The exception class for a status code's name; PRPCError for any other."""
    return STATUS_EXCEPTIONS.get(status, PRPCError)
