"""A 'process' worker: imports the application the way multiprocessing's spawn does, then serves
calls from its parent (the server) over the socket in PRPC_WORKER_FD, one at a time.

    python -m prpc._worker [--main-path FILE | --main-module NAME] --functions JSON

--functions lists [name, module, qualname] for each function registered on process workers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import signal
import sys
import types
from typing import Any

from . import _core, _tracing


def _load_main(path: str | None, module: str | None) -> None:
    """Runs the application's main module as __mp_main__, so its `if __name__ == "__main__"`
    block (app.start()) does not run, and aliases it as __main__ for the functions it defines."""
    if not path and not module:
        return
    main = types.ModuleType("__mp_main__")
    if path:
        main.__file__ = path
        sys.path.insert(0, os.path.dirname(path))
        main.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
    elif module:
        main.__dict__.update(runpy.run_module(module, run_name="__mp_main__", alter_sys=True))
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main


def _resolve(module: str, qualname: str) -> Any:
    if module == "__main__":
        obj: Any = sys.modules["__mp_main__"]
    else:
        obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prpc._worker")
    parser.add_argument("--main-path")
    parser.add_argument("--main-module")
    parser.add_argument("--functions", required=True)
    args = parser.parse_args(argv)
    # Ctrl-C in a terminal reaches the whole process group: the server drains, its workers
    # finish their calls; the server stops them afterwards.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(os.environ["PRPC_WORKER_FD"])
    _load_main(args.main_path, args.main_module)
    table = _core.FunctionTable()
    for name, module, qualname in json.loads(args.functions):
        table.add(name, _resolve(module, qualname), "process", False, "{}", "")
    table.set_tracer(_tracing.tracer_hook())
    _core.serve_worker(fd, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
