"""``from prpc.server_func import summ``: the functions of the server on PRPC_QUEUE_NAME.

The original PRPC wrote its generated stubs into the package itself. Here
`python -m prpc.create_server_func` keeps a copy per queue outside the installed package (see
prpc._stubs.stubs_path), and this module loads the one of the queue in PRPC_QUEUE_NAME (default
task_prpc), so the original's clients import their functions unchanged.
"""

from __future__ import annotations

import importlib.util
import os

from ._stubs import stubs_path

_queue = os.environ.get("PRPC_QUEUE_NAME") or "task_prpc"
_path = stubs_path(_queue)
if not os.path.exists(_path):
    raise ImportError(
        f"no functions were generated for queue {_queue!r}: run `python -m "
        f"prpc.create_server_func` with PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME "
        f"set (expected {_path})",
        name=__name__,
    )
_spec = importlib.util.spec_from_file_location(f"prpc._generated_{abs(hash(_path))}", _path)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
__all__ = list(getattr(_module, "__all__", ()))
globals().update({name: getattr(_module, name) for name in __all__})
