"""PRPC's C++ log lines reach Python's `logging` (logger ``prpc`` and its children), handed over
in batches by the package's log thread."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sdk_fixtures import RedisServer, wait_until

import prpc
from prpc import _core, _logging


def test_runtime_lines_go_through_logging(redis_server, queue, caplog):
    caplog.set_level(logging.INFO, logger="prpc")
    _core.set_log_level("info")
    try:
        app = prpc.AppServer("redis", redis_server.url, name_queue=queue)

        @app.decorator_reg_func()
        def one() -> int:
            return 1

        thread = threading.Thread(target=app.start)
        thread.start()
        client = prpc.Client("redis", redis_server.url, queue)
        try:
            assert client.call("one").result(20) == 1
        finally:
            client.close()
            app.stop()
            thread.join(30)
        _logging.flush()
    finally:
        _core.set_log_level("warn")
    served = [r for r in caplog.records
              if r.name == "prpc.server" and r.getMessage().startswith(f"serving queue '{queue}'")]
    assert len(served) == 1
    assert served[0].levelno == logging.INFO


def test_a_lost_broker_is_a_warning_of_its_logger(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING, logger="prpc")
    server = RedisServer(tmp_path)
    client = prpc.Client("redis", server.url, "q_lost")
    try:
        server.stop()

        def warned():
            _logging.flush()
            return [r for r in caplog.records
                    if r.name == "prpc.redis" and r.levelno == logging.WARNING
                    and "lost the connection" in r.getMessage()]

        assert wait_until(warned, 30, "the lost-connection warning in logging")
    finally:
        client.close()
