"""The original PRPC's exception module: the same classes as prpc.exceptions, not copies."""

from ..exceptions import (
    ClientTimeOutError,
    JSONDeserializeError,
    MessageFromStreamDataValidationError,
    NotFoundFunc,
    PRPCMessageDeserializeError,
)

__all__ = [
    "NotFoundFunc",
    "PRPCMessageDeserializeError",
    "MessageFromStreamDataValidationError",
    "JSONDeserializeError",
    "ClientTimeOutError",
]
