"""PRPC: call Python functions served by other processes through Redis Streams or Kafka.

Server::

    from prpc import AppServer
    app = AppServer("redis", "redis://localhost:6379/0")

    @app.decorator_reg_func()
    def hello_world():
        return "hello_world"

    if __name__ == "__main__":
        app.start()

Client (PRPC_TYPE_BROKER, PRPC_URL_BROKER, PRPC_QUEUE_NAME in the environment)::

    import datetime
    from prpc.app_client import AwaitableTask
    task = AwaitableTask("hello_world", (), {})
    print(task.sync_wait_result_task(datetime.timedelta(seconds=5)))   # or prpc.call(...)

The original PRPC's modules (prpc.app_server, prpc.app_client, prpc.prpcmessage,
prpc.support_module.exceptions, prpc.server_func) work unchanged; their names are the same
objects as the ones exported here.
"""

from __future__ import annotations

import os as _os

from . import _core
from .exceptions import (
    BrokerError,
    ClientTimeOutError,
    ConfigurationError,
    DecodeError,
    EncodeError,
    JSONDeserializeError,
    MessageFromStreamDataValidationError,
    NotFoundFunc,
    PluginError,
    PRPCError,
    PRPCMessageDeserializeError,
    RegistrationError,
    RemoteError,
    ResultNotReadyError,
)

# The converters raise the package's own exception types; the bundled plugins live beside us.
_core.set_error_types(DecodeError, EncodeError)
_core.set_plugin_dirs([_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "plugins")])
_core.set_log_level(_os.environ.get("PRPC_LOG_LEVEL", "warn"))

from . import _logging  # noqa: E402

_logging.start()

from .app_client import get_function_server, ping  # noqa: E402
from .app_server import AppServer  # noqa: E402
from .client import AwaitableTask, Client, call, get_client  # noqa: E402
from .metrics import client_metrics_text, serve_client_metrics  # noqa: E402
from .prpcmessage import PRPCMessage  # noqa: E402

__version__ = _core.__version__


def register_class(cls: type, name: str | None = None) -> type:
    """Lets the jsonpickle decoder rebuild instances of `cls` (usable as a decorator). Only the
    standard types and registered classes are ever instantiated from a message."""
    _core.register_allowed(cls, name or "")
    return cls


def unregister_class(cls: type, name: str | None = None) -> None:
    _core.unregister_allowed(cls, name or "")


__all__ = [
    "AppServer",
    "AwaitableTask",
    "BrokerError",
    "Client",
    "ClientTimeOutError",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "JSONDeserializeError",
    "MessageFromStreamDataValidationError",
    "NotFoundFunc",
    "PluginError",
    "PRPCError",
    "PRPCMessage",
    "PRPCMessageDeserializeError",
    "RegistrationError",
    "RemoteError",
    "ResultNotReadyError",
    "call",
    "client_metrics_text",
    "get_client",
    "get_function_server",
    "ping",
    "register_class",
    "serve_client_metrics",
    "unregister_class",
]
