"""Fixtures of the security suite: brokers that make clients authenticate, and one log directory
for everything the suite runs, so check_logs.py can grep every log for the secrets it used.

Every secret a test uses (passwords, signing keys) is made by ``secret()`` and written to
``<log dir>/secrets``; every program the suite starts writes its output to ``<log dir>/*.log``,
and so do the fixtures' brokers and this process's own ``logging``. The log directory is
``$PRPC_SECURITY_LOG_DIR`` (CTest sets it and runs check_logs.py after the suites), else a
temporary one.
"""

from __future__ import annotations

import itertools
import logging
import os
import pathlib
import secrets as _secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator, Sequence

import pytest

SUPPORT = pathlib.Path(__file__).resolve().parent.parent / "support"
sys.path.insert(0, str(SUPPORT))

from redis_acl_fixture import RedisAclServer  # noqa: E402
from service_process import kill_process, wait_until  # noqa: E402

import prpc  # noqa: E402

BIN = pathlib.Path(os.environ.get(
    "PRPC_BIN_DIR", pathlib.Path(__file__).resolve().parents[3] / "build" / "dev" / "bin"))
LOG_DIR = pathlib.Path(os.environ.get("PRPC_SECURITY_LOG_DIR")
                       or tempfile.mkdtemp(prefix="prpc-security-"))
LOG_DIR.mkdir(parents=True, exist_ok=True)
SECRETS_FILE = LOG_DIR / "secrets"

_counter = itertools.count(1)
_lock = threading.Lock()


def secret(kind: str = "secret") -> str:
    """A new random secret, recorded for check_logs.py. Hex only, so it reads the same in a URL,
    a header or a log line."""
    value = _secrets.token_hex(16)
    with _lock, open(SECRETS_FILE, "a") as f:
        f.write(f"{kind} {value}\n")
    return value


def log_path(name: str) -> pathlib.Path:
    with _lock:
        n = next(_counter)
    return LOG_DIR / f"{os.getpid()}-{n:03d}-{name}.log"


# This process's own log lines (the prpc package routes the runtime's log to `logging`).
_handler = logging.FileHandler(LOG_DIR / f"{os.getpid()}-pytest.log")
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
logging.getLogger().addHandler(_handler)
logging.getLogger().setLevel(logging.DEBUG)


def run(argv: Sequence[str], env: dict[str, str] | None = None, *, name: str = "program",
        timeout: float = 60, cwd: pathlib.Path | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    """Runs a program to completion; its output is returned and also kept in the log directory."""
    full = dict(os.environ)
    full.update(env or {})
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=full,
                            cwd=cwd, input=stdin)
    log_path(name).write_text(f"$ {' '.join(argv)}\n[exit {result.returncode}]\n"
                              f"{result.stdout}{result.stderr}")
    return result


class Service:
    """A long-running program (prpc-host, a Python AppServer) whose output goes to the log
    directory; stopped with SIGTERM."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: pathlib.Path,
                 name: str) -> None:
        full = dict(os.environ)
        full.update(env)
        self.path = log_path(name)
        self._log = open(self.path, "w")
        self.proc = subprocess.Popen(list(argv), env=full, cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self._log.flush()
        return self.path.read_text(errors="replace")

    def stop(self, grace: float = 30) -> int:
        """One SIGTERM (a second one may find the default handler back and kill it), then
        SIGKILL after `grace` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                kill_process(self.proc)
        self._log.close()
        return self.proc.returncode


def wait_serving(client: prpc.Client, service: Service, timeout: float = 60) -> None:
    """Until the service answers ping through `client` (or fails the test if it exited)."""
    def answers() -> bool:
        assert service.proc.poll() is None, service.output()
        try:
            return client.ping(timeout=0.5) == "pong"
        except prpc.ClientTimeOutError:
            return False
    assert wait_until(answers, timeout, 0.01), "no answer to ping:\n" + service.output()


@pytest.fixture(autouse=True)
def keep_output(request: pytest.FixtureRequest,
                capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """What the test wrote to stdout and stderr, the runtime's own log lines included (they go to
    fd 2), is kept in the log directory, and handed back to pytest for its report."""
    yield
    out, err = capfd.readouterr()
    log_path(request.node.name[:60]).write_text(out + err)
    sys.stdout.write(out)
    sys.stderr.write(err)


@pytest.fixture
def queue() -> str:
    return "sec_" + uuid.uuid4().hex[:12]


@pytest.fixture
def bin_dir() -> pathlib.Path:
    assert (BIN / "prpc-host").exists(), f"prpc-host is not built in {BIN}"
    return BIN


@pytest.fixture
def acl_redis() -> Iterator[RedisAclServer]:
    """A redis-server whose only user for PRPC is `prpc`, limited to PRPC's keys and commands
    (docs/brokers/redis.md), the default user off. Its password is a recorded secret; its
    directory (and redis.log) stays in the log directory."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="redis-acl-", dir=LOG_DIR))
    server = RedisAclServer(directory, password=secret("redis-password"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test starts; stopped when it ends (and each must exit 0)."""
    started: list[Service] = []
    yield started
    codes = {s.path.name: s.stop() for s in started}
    assert all(code == 0 for code in codes.values()), codes


def write_app(directory: pathlib.Path, source: str, name: str = "app.py") -> pathlib.Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path
