"""Fixtures shared by the Python suites: a real redis-server per session on a free port, and
PRPC servers run as separate processes (python app.py), the way users run them. A suite's
conftest.py imports them (`from sdk_fixtures import *`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import prpc

__all__ = ["RedisServer", "ServerProcess", "wait_until", "redis_server", "queue", "env",
           "client", "start_app"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.log = open(workdir / "redis.log", "w")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port)

        def up() -> bool:
            try:
                return bool(self.client.ping())
            except redis.ConnectionError:
                return False

        wait_until(up, 10, "redis-server to answer PING")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def queue() -> str:
    return "q_" + uuid.uuid4().hex[:12]


@pytest.fixture
def env(redis_server: RedisServer, queue: str,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The client environment of the seed's README, for this test's queue."""
    values = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": redis_server.url,
              "PRPC_QUEUE_NAME": queue}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    prpc.client.close_shared_clients()


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[prpc.Client]:
    c = prpc.Client()
    yield c
    c.close()


class ServerProcess:
    """`python app.py` in a temporary directory, stopped with SIGTERM."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.log_path = path.with_suffix(".log")
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        full_env.update(env)
        self.proc = subprocess.Popen([sys.executable, str(path)], cwd=path.parent,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=full_env)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def start_app(tmp_path: Path, env: dict[str, str], redis_server: RedisServer):
    """Writes an application file (with {URL} and {QUEUE} filled in), runs it and waits until it
    answers ping."""
    started: list[ServerProcess] = []

    def start(source: str, name: str = "app.py", wait: bool = True) -> ServerProcess:
        code = textwrap.dedent(source).replace("{URL}", redis_server.url).replace(
            "{QUEUE}", env["PRPC_QUEUE_NAME"])
        path = tmp_path / name
        path.write_text(code)
        server = ServerProcess(path, env)
        started.append(server)
        if wait:
            probe = prpc.Client()
            try:
                def answers() -> bool:
                    if server.proc.poll() is not None:
                        raise AssertionError("the server exited:\n" + server.output())
                    try:
                        return probe.call("ping").sync_wait_result_task(0.5) == "pong"
                    except prpc.ClientTimeOutError:
                        return False
                wait_until(answers, 60, "the server to answer ping")
            finally:
                probe.close()
        return server

    yield start
    for server in started:
        server.terminate()
