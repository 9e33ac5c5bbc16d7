"""PRPC's exceptions: one hierarchy under PRPCError, each also a matching builtin."""

from __future__ import annotations

__all__ = [
    "PRPCError",
    "ClientTimeOutError",
    "RemoteError",
    "BrokerError",
    "ConfigurationError",
    "PluginError",
    "RegistrationError",
    "DecodeError",
    "EncodeError",
]


class PRPCError(Exception):
    """Base class of every error PRPC raises."""


class ClientTimeOutError(PRPCError, TimeoutError):
    """No reply arrived within the time the caller waited (the seed's name)."""


class RemoteError(PRPCError):
    """The remote function raised. Carries the remote type name, message and traceback."""

    def __init__(self, remote_type: str, remote_message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {remote_message}")
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback

    def __reduce__(self):  # keeps the three fields through pickling
        return (type(self), (self.remote_type, self.remote_message, self.remote_traceback))


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
