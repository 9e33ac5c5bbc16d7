"""The seed README's server and client, verbatim but for the broker's address."""

from __future__ import annotations

import datetime
import importlib
import subprocess
import sys

import pytest

import prpc

SEED_SERVER = '''
from prpc.app_server import AppServer
import time
import datetime

app = AppServer("redis", "{URL}", "thread", 4, datetime.timedelta(seconds=100))


@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z


@app.decorator_reg_func()
def hello_world():
    time.sleep(0.5)
    return "hello_world"


if __name__ == "__main__":  # Обязательно использовать точку входа (особенно если используется worker типа `process`)
    app.start()
'''  # noqa: E501 - the seed's text, verbatim


@pytest.fixture
def seed_queue(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    # The seed passes no queue name: its server and client use the default, task_prpc.
    monkeypatch.setenv("PRPC_QUEUE_NAME", "task_prpc")
    env["PRPC_QUEUE_NAME"] = "task_prpc"


def test_seed_server_and_generated_client(seed_queue, start_app, tmp_path, monkeypatch):
    start_app(SEED_SERVER)
    # 2. "python -m prpc.create_server_func" writes server_func.py in the current directory.
    done = subprocess.run([sys.executable, "-m", "prpc.create_server_func"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "server_func.py").exists()
    monkeypatch.syspath_prepend(str(tmp_path))
    server_func = importlib.import_module("server_func")

    task = server_func.summ(1, 2)
    assert isinstance(task, prpc.AwaitableTask)
    assert task.sync_wait_result_task(30) == 3.5
    assert server_func.summ(1, 2, z=10).sync_wait_result_task(30) == 13
    assert server_func.summ(a=1.5, b=2).sync_wait_result_task(30) == 4.0
    hello = server_func.hello_world()
    assert hello.sync_wait_result_task(30) == "hello_world"
    assert hello.is_done_task()
    assert hello.get_result() == "hello_world"
    assert hello.message.result == "hello_world"
    assert hello.time_execution >= datetime.timedelta(seconds=0.5)
