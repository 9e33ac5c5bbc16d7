"""pytest fixtures: a real redis-server on a free port, in a temporary directory.

The Python counterpart of tests/support/redis_server.{hpp,cpp}:

    from support.redis_fixture import redis_server  # noqa: F401  (or list it in conftest.py)

    def test_something(redis_server):
        client = redis_server.client()
        client.xadd("prpc_raw_q", {"message": "{}"})
        ... redis_server.url() ...

Redis runs with no persistence (``save ""``, ``appendonly no``) except that ``stop(keep_data=True)``
and ``restart()`` save a dump first, so a restart keeps the data. The fixture logs in as an admin
user of its own, so a test may lock the default user out (``require_password``) and still inspect
the server.
"""

from __future__ import annotations

import pathlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_ADMIN_USER = "prpc-test-admin"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (never port 0: Redis needs a number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(condition, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class RedisServer:
    """A redis-server child process; started by the constructor, killed by close()."""

    def __init__(
        self,
        directory: pathlib.Path,
        *,
        unix_socket: bool = False,
        extra_config: Sequence[str] = (),
    ) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.unix_path = self.dir / "redis.sock" if unix_socket else None
        self._extra = list(extra_config)
        self._admin_password = secrets.token_hex(16)
        self._process: subprocess.Popen | None = None
        self.port = 0
        # A free port may be taken again before Redis binds it: try another one then.
        for _ in range(20):
            self.port = free_port()
            self._launch()
            if self._wait_ready(15.0):
                return
            clash = "Address already in use" in self.log()
            self.kill()
            if not clash:
                raise RuntimeError("redis-server did not start:\n" + self.log())
        raise RuntimeError("redis-server found no free port in 20 attempts")

    # ---- addresses -----------------------------------------------------------------------

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def unix_url(self, db: int = 0) -> str:
        if self.unix_path is None:
            raise RuntimeError("the server was started without a unix socket")
        return f"unix://{self.unix_path}?db={db}"

    def client(self, db: int = 0, *, retry: bool = True) -> redis.Redis:
        """A connection logged in as the fixture's admin user."""
        extra: dict[str, Any] = {} if retry else {"retry": Retry(NoBackoff(), 0)}
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            username=_ADMIN_USER,
            password=self._admin_password,
            socket_timeout=60,
            **extra,
        )

    # ---- life cycle ----------------------------------------------------------------------

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, keep_data: bool = False) -> None:
        """SHUTDOWN (SAVE when keep_data): Redis is down until start()."""
        if not self.running():
            return
        try:
            # No retry: the connection closing is the expected answer.
            self.client(retry=False).shutdown(save=keep_data, nosave=not keep_data)
        except redis.exceptions.ConnectionError:
            pass  # SHUTDOWN answers by closing the connection
        assert self._process is not None
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("redis-server did not shut down") from None

    def start(self) -> None:
        """Starts again on the same port (and socket), loading what stop(keep_data=True) saved."""
        if self.running():
            return
        self._launch()
        if not self._wait_ready(15.0):
            raise RuntimeError(f"redis-server did not restart on port {self.port}:\n" + self.log())

    def restart(self, keep_data: bool = True) -> None:
        self.stop(keep_data)
        if not keep_data:
            (self.dir / "dump.rdb").unlink(missing_ok=True)
        self.start()

    def kill(self) -> None:
        """SIGKILL: nothing saved, clients get no goodbye."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def close(self) -> None:
        self.kill()

    # ---- users ---------------------------------------------------------------------------

    def set_acl_user(
        self, name: str, password: str, rules: Sequence[str] = ("~*", "&*", "+@all")
    ) -> None:
        self.client().execute_command("ACL", "SETUSER", name, "reset", "on", ">" + password, *rules)

    def require_password(self, password: str) -> None:
        """CONFIG SET requirepass: the default user then needs AUTH <password>."""
        self.client().config_set("requirepass", password)

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- internals -----------------------------------------------------------------------

    def _write_config(self) -> pathlib.Path:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir}",
            'save ""',
            "appendonly no",
            "daemonize no",
            'logfile ""',
            f"user {_ADMIN_USER} on >{self._admin_password} ~* &* +@all",
        ]
        if self.unix_path is not None:
            lines += [f"unixsocket {self.unix_path}", "unixsocketperm 700"]
        lines += self._extra
        path = self.dir / "redis.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _launch(self) -> None:
        config = self._write_config()
        log = open(self.dir / "redis.log", "wb")  # judge each start by its own log
        try:
            self._process = subprocess.Popen(
                ["redis-server", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait_ready(self, timeout: float) -> bool:
        def answers() -> bool:
            if not self.running():
                return True  # exited: the caller reads the log
            try:
                return bool(self.client(retry=False).ping())
            except redis.exceptions.RedisError:
                return False

        return _wait_until(answers, timeout) and self.running()


@pytest.fixture
def redis_server(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_unix_server(tmp_path: pathlib.Path) -> Iterator[RedisServer]:
    """A fresh redis-server that also listens on a unix socket."""
    server = RedisServer(tmp_path / "redis", unix_socket=True)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def shared_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for a whole session; tests keep apart by using their own queue names."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.close()
