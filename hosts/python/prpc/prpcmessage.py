"""The message PRPC sends: PRPCMessage, with the original PRPC's API and wire form."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from .exceptions import JSONDeserializeError, PRPCMessageDeserializeError

__all__ = ["PRPCMessage"]

_EXTENSIONS = ("reply_to", "deadline", "attempt", "exception_type", "traceback", "traceparent")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _check(func_name: Any, func_args: Any, func_kwargs: Any, message_id: Any) -> None:
    """The original's validation of the four caller fields (it used pydantic)."""
    if not isinstance(func_name, str):
        raise TypeError(f"func_name must be a str, not {type(func_name).__name__}")
    if not isinstance(func_args, (list, tuple)):
        raise TypeError(f"func_args must be a list or tuple, not {type(func_args).__name__}")
    if not isinstance(func_kwargs, dict):
        raise TypeError(f"func_kwargs must be a dict, not {type(func_kwargs).__name__}")
    if not isinstance(message_id, uuid.UUID):
        uuid.UUID(str(message_id))  # ValueError when it is not one


class PRPCMessage:
    """A request or a reply. jsonpickle encodes instances as the Python flavour of the protocol.

    ``PRPCMessage(func_name, func_args, func_kwargs, message_id=None)`` as in the original PRPC.
    The attribute order is part of the wire form and is the original's: the eight fields of the
    protocol, then the extensions (reply_to, deadline, ...) only when they have a value.
    """

    def __init__(
        self,
        func_name: str,
        func_args: list[Any] | tuple[Any, ...] | None = None,
        func_kwargs: dict[str, Any] | None = None,
        message_id: uuid.UUID | None = None,
        result: Any = None,
        exception_info: str | None = None,
        date_create_message: datetime.datetime | None = None,
        date_done_message: datetime.datetime | None = None,
        *,
        reply_to: str | None = None,
        deadline: datetime.datetime | None = None,
        attempt: int | None = None,
        exception_type: str | None = None,
        traceback: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        func_args = func_args if func_args is not None else []
        func_kwargs = func_kwargs if func_kwargs is not None else {}
        message_id = message_id if message_id is not None else uuid.uuid4()
        _check(func_name, func_args, func_kwargs, message_id)
        self.func_name = func_name
        self.func_args = func_args
        self.func_kwargs = func_kwargs
        self.message_id = message_id
        self.date_create_message: datetime.datetime | None = (
            date_create_message if date_create_message is not None else _now()
        )
        self.result = result
        self.exception_info = exception_info
        self.date_done_message = date_done_message
        for name, value in zip(_EXTENSIONS, (reply_to, deadline, attempt, exception_type,
                                             traceback, traceparent), strict=True):
            if value is not None:
                setattr(self, name, value)

    # ---- the original's API ---------------------------------------------------------------

    def message_to_done(self, exception_info: str | None = None, result: Any = None) -> None:
        """Marks the message done with a result or an error text. A result of None is a
        result (the original refused it and stopped its server)."""
        self.result = result
        self.exception_info = exception_info
        self.date_done_message = _now()

    def is_message_done(self) -> bool:
        return self.date_done_message is not None

    def serialize(self, serialize_raw: bool = False) -> str:
        """The Python flavour (jsonpickle), or with `serialize_raw` the raw JSON of the
        protocol (message_id as its string, dates as ISO 8601)."""
        if serialize_raw:
            return json.dumps(self._raw_fields())
        from . import _core

        return _core.encode_value(self)

    @classmethod
    def deserialize(cls, serialize_message: str | bytes) -> PRPCMessage:
        """Decodes the Python flavour. Raises JSONDeserializeError for text that does not
        decode (invalid JSON, or a class outside the decoder's allow-list) and
        PRPCMessageDeserializeError for anything that is not a PRPCMessage."""
        from . import _core
        from .exceptions import DecodeError

        text = _text(serialize_message)
        try:
            message = _core.decode_value(text)
        except (DecodeError, ValueError, RecursionError) as e:
            raise JSONDeserializeError(str(e)) from None
        if not isinstance(message, PRPCMessage):
            raise PRPCMessageDeserializeError(serialize_message)
        return message

    @classmethod
    def deserialize_raw(cls, serialize_message: str | bytes) -> PRPCMessage:
        """Decodes a raw request: a JSON object with func_name and message_id (a UUID string),
        func_args (a list) and func_kwargs (an object) optional. Its creation time is now, as
        the original took the time the server received it."""
        try:
            data = json.loads(_text(serialize_message))
        except (ValueError, RecursionError) as e:
            raise JSONDeserializeError(str(e)) from None
        if not isinstance(data, dict):
            raise PRPCMessageDeserializeError(data, "not a JSON object")
        func_name = data.get("func_name")
        func_args = data.get("func_args", [])
        func_kwargs = data.get("func_kwargs", {})
        message_id = data.get("message_id")
        if not isinstance(func_name, str):
            raise PRPCMessageDeserializeError(data, "func_name must be a string")
        if not isinstance(func_args, list):
            raise PRPCMessageDeserializeError(data, "func_args must be a list")
        if not isinstance(func_kwargs, dict):
            raise PRPCMessageDeserializeError(data, "func_kwargs must be an object")
        if not isinstance(message_id, str):
            raise PRPCMessageDeserializeError(data, "message_id must be a UUID string")
        try:
            parsed_id = uuid.UUID(message_id)
        except ValueError:
            raise PRPCMessageDeserializeError(data, "message_id is not a UUID") from None
        return cls(func_name, func_args, func_kwargs, parsed_id)

    def __str__(self) -> str:
        if self.is_message_done():
            return (f"'Object PRPCMessage done - task_id={self.message_id}, "
                    f"func_name='{self.func_name}', result={self.result}, "
                    f"exception_info={self.exception_info}'")
        return (f"'Object PRPCMessage - task_id={self.message_id}, func_name='{self.func_name}', "
                f"func_args={self.func_args}, func_kwargs={self.func_kwargs}'")

    # ---- ours -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "failed" if self.exception_info else ("done" if self.date_done_message else "sent")
        return f"<PRPCMessage {self.func_name} {self.message_id} {state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PRPCMessage) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    def _raw_fields(self) -> dict[str, Any]:
        def when(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime.datetime) else value

        out = {
            "func_name": self.func_name,
            "func_args": list(self.func_args),
            "func_kwargs": self.func_kwargs,
            "message_id": str(self.message_id),
            "result": self.result,
            "exception_info": self.exception_info,
            "date_create_message": when(self.date_create_message),
            "date_done_message": when(self.date_done_message),
        }
        for name in _EXTENSIONS:
            if hasattr(self, name):
                out[name] = when(getattr(self, name))
        return out

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> PRPCMessage:
        """Builds a message from the runtime's reply fields (ISO dates, textual id)."""

        def when(text: str) -> datetime.datetime | None:
            return datetime.datetime.fromisoformat(text) if text else None

        message = cls.__new__(cls)
        try:
            message_id: Any = uuid.UUID(fields["message_id"])
        except (ValueError, TypeError):
            message_id = fields["message_id"]
        args = fields["func_args"]
        kwargs = fields["func_kwargs"]
        message.func_name = fields["func_name"]
        message.func_args = args if isinstance(args, (list, tuple)) else []
        message.func_kwargs = kwargs if isinstance(kwargs, dict) else {}
        message.message_id = message_id
        message.date_create_message = when(fields["date_create_message"])
        message.result = fields["result"]
        message.exception_info = fields["exception_info"]
        message.date_done_message = when(fields["date_done_message"])
        for name in ("exception_type", "traceback"):
            if fields.get(name):
                setattr(message, name, fields[name])
        return message


def _text(value: str | bytes) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONDeserializeError(str(e)) from None
    if not isinstance(value, str):
        raise JSONDeserializeError(f"expected str or bytes, not {type(value).__name__}")
    return value
