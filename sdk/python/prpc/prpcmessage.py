"""The message PRPC sends: PRPCMessage, exactly as the original PRPC defined it on the wire."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

__all__ = ["PRPCMessage"]


class PRPCMessage:
    """A request or a reply. jsonpickle encodes instances as the Python flavour of the protocol.

    The attribute order is part of the wire format: the eight fields of the protocol are set in
    this order, extension fields (reply_to, deadline, ...) only when they have a value.
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
        self.func_name = func_name
        self.func_args = list(func_args) if func_args is not None else []
        self.func_kwargs = dict(func_kwargs) if func_kwargs is not None else {}
        self.message_id = message_id if message_id is not None else uuid.uuid4()
        self.result = result
        self.exception_info = exception_info
        self.date_create_message = (
            date_create_message
            if date_create_message is not None
            else datetime.datetime.now(datetime.timezone.utc)
        )
        self.date_done_message = date_done_message
        # Extensions (PROTOCOL.md section 2): attributes only when they have a value.
        for name, value in (("reply_to", reply_to), ("deadline", deadline), ("attempt", attempt),
                            ("exception_type", exception_type), ("traceback", traceback),
                            ("traceparent", traceparent)):
            if value is not None:
                setattr(self, name, value)

    def __repr__(self) -> str:
        state = "failed" if self.exception_info else ("done" if self.date_done_message else "sent")
        return f"<PRPCMessage {self.func_name} {self.message_id} {state}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PRPCMessage) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> PRPCMessage:
        """Builds a message from the runtime's reply fields (ISO dates, textual id)."""

        def when(text: str) -> datetime.datetime | None:
            return datetime.datetime.fromisoformat(text) if text else None

        try:
            message_id = uuid.UUID(fields["message_id"])
        except (ValueError, TypeError):
            message_id = fields["message_id"]
        return cls(
            fields["func_name"],
            fields["func_args"],
            fields["func_kwargs"],
            message_id,
            fields["result"],
            fields["exception_info"],
            when(fields["date_create_message"]),
            when(fields["date_done_message"]),
            exception_type=fields.get("exception_type") or None,
            traceback=fields.get("traceback") or None,
        )
