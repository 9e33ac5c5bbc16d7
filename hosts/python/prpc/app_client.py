"""The original PRPC's client module: AwaitableTask and the two system functions.

Configured by PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME, as in the original::

    from prpc.app_client import AwaitableTask
    task = AwaitableTask("summ", (1, 2), {})        # sends the call
    task.sync_wait_result_task(datetime.timedelta(seconds=20))
"""

from __future__ import annotations

from .client import AwaitableTask

__all__ = ["AwaitableTask", "ping", "get_function_server"]


def ping() -> AwaitableTask:
    """Asks a server of the queue for "pong"."""
    return AwaitableTask("ping", (), {})


def get_function_server() -> AwaitableTask:
    """Asks a server of the queue for its functions, in the original PRPC's format: a list of
    {"func_name", "func_args": [{"name", "annotation"?}], "func_kwargs": [{"name", "default",
    "annotation"?}]} (parameters without defaults, then with)."""
    return AwaitableTask("get_function_server", (), {})
