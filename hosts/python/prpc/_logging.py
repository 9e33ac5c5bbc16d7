"""PRPC's log lines in a Python process go through `logging`: the C++ runtime's and its plugins'
(librdkafka's included) under the logger ``prpc`` and its children ``prpc.<component>``
(``prpc.server``, ``prpc.redis``, ``prpc.kafka``, ...), so the application's logging
configuration filters, formats and ships them. The runtime queues lines without taking the GIL;
one daemon thread hands them to `logging` in batches. Lines below PRPC_LOG_LEVEL (default warn)
are not produced at all (docs/observability.md)."""

from __future__ import annotations

import atexit
import logging
import threading

from . import _core

__all__ = ["start", "stop", "flush"]

_lock = threading.Lock()
_thread: threading.Thread | None = None
_stopping = threading.Event()


def _emit(lines: list[tuple[int, str, str, float]]) -> None:
    for level, component, message, created in lines:
        logger = logging.getLogger(f"prpc.{component}" if component else "prpc")
        if not logger.isEnabledFor(level):
            continue
        record = logger.makeRecord(logger.name, level, "(prpc runtime)", 0, message, (), None)
        record.created = created
        record.msecs = (created - int(created)) * 1000
        logger.handle(record)


def _run() -> None:
    while not _stopping.is_set():
        _emit(_core.take_log_lines(0.25))


def flush() -> None:
    """Hands the lines queued so far to `logging` now."""
    _emit(_core.take_log_lines(0))


def start() -> None:
    """Routes the runtime's lines to `logging` (the package does this when imported)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _stopping.clear()
        _core.route_logs(True)
        _thread = threading.Thread(target=_run, name="prpc-log", daemon=True)
        _thread.start()


def stop() -> None:
    """Sends the runtime's lines back to stderr in PRPC's own format (prpc-host serving an
    application keeps its log format, PRPC_LOG_FORMAT included) after passing on the queued
    ones. Also runs at exit, so that the thread is gone before the interpreter finalizes."""
    global _thread
    with _lock:
        thread, _thread = _thread, None
        if thread is None:
            return
        _core.route_logs(False)
        _stopping.set()
    thread.join(timeout=5)
    flush()


atexit.register(stop)
