"""pytest fixture: Redis Sentinel on free loopback ports: a master, a replica and three
sentinels (``redis-server --sentinel``) watching it under one master name.

The Python counterpart of tests/support/redis_sentinel.{hpp,cpp}:

    from redis_sentinel_fixture import redis_sentinel  # noqa: F401

    def test_something(redis_sentinel):
        url = redis_sentinel.url()          # redis+sentinel://127.0.0.1:s1,.../mymaster/0
        old = redis_sentinel.master_port()
        new = redis_sentinel.kill_master()  # SIGKILL, wait until every sentinel names `new`
        redis_sentinel.restart(old)         # the sentinels make it a replica of `new`

Sentinels run with ``down-after-milliseconds 1000`` and ``failover-timeout 2000``: a failover
takes 2-3 s. A restarted former master is turned into a replica by the sentinels once they
look at it again, which takes up to 10 s (their INFO period).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence

import pytest
import redis
import redis.sentinel
from service_process import (
    file_tail,
    free_port,
    kill_process,
    remove_unless_failed,
    start_process,
    wait_until,
)


class _Process:
    def __init__(self, directory: pathlib.Path, sentinel: bool, replica_of: int = 0) -> None:
        self.dir = directory
        self.sentinel = sentinel
        self.replica_of = replica_of
        self.port = 0
        self.proc: subprocess.Popen | None = None


class RedisSentinel:
    """Data nodes and sentinels as child processes; started by the constructor, killed by
    close()."""

    def __init__(self, directory: pathlib.Path, *, master_name: str = "mymaster",
                 replicas: int = 1, sentinels: int = 3, quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 2000,
                 extra_config: Sequence[str] = ()) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.master_name = master_name
        self._replicas = replicas
        self._sentinel_count = sentinels
        self._quorum = quorum
        self._down_after_ms = down_after_ms
        self._failover_timeout_ms = failover_timeout_ms
        self._extra = list(extra_config)
        self._data: list[_Process] = []
        self._sentinels: list[_Process] = []
        self._initial_master = 0
        try:
            taken: set[int] = set()
            self._data.append(self._start(_Process(self.dir / "node0", False), taken))
            self._initial_master = self._data[0].port
            for i in range(1, replicas + 1):
                node = _Process(self.dir / f"node{i}", False, self._initial_master)
                self._data.append(self._start(node, taken))
            for i in range(sentinels):
                self._sentinels.append(self._start(_Process(self.dir / f"sentinel{i}", True),
                                                   taken))
            if not wait_until(lambda: not self.readiness_problem(), 60):
                raise RuntimeError("Redis Sentinel is not ready: " + self.readiness_problem())
        except BaseException:
            self.close()
            raise

    # ---- addresses -----------------------------------------------------------------------

    @property
    def sentinel_ports(self) -> list[int]:
        return [s.port for s in self._sentinels]

    @property
    def data_ports(self) -> list[int]:
        """The data nodes' ports; the first started as the master."""
        return [d.port for d in self._data]

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.sentinel_ports]

    def url(self, db: int = 0) -> str:
        seeds = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{seeds}/{self.master_name}/{db}"

    def client(self, port: int, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                           socket_timeout=10, **kwargs)

    def sentinel(self, **kwargs) -> redis.sentinel.Sentinel:
        """redis-py's Sentinel client over every sentinel (``.master_for(name)``)."""
        return redis.sentinel.Sentinel(self.sentinel_addresses(), socket_timeout=5, **kwargs)

    def master_port_per_sentinel(self) -> list[int | None]:
        out: list[int | None] = []
        for s in self._sentinels:
            port = None
            if s.proc is not None and s.proc.poll() is None:
                try:
                    with self.client(s.port) as c:
                        addr = c.sentinel_get_master_addr_by_name(self.master_name)
                    port = int(addr[1]) if addr else None
                except redis.RedisError:
                    port = None
            out.append(port)
        return out

    def master_port(self) -> int:
        """The master's port as the first answering sentinel names it."""
        for p in self.master_port_per_sentinel():
            if p is not None:
                return p
        raise RuntimeError(f"no sentinel names a master for {self.master_name}")

    # ---- faults --------------------------------------------------------------------------

    def _find(self, port: int) -> _Process:
        for p in self._data + self._sentinels:
            if p.port == port:
                return p
        raise ValueError(f"no Redis process on port {port}")

    def running(self, port: int) -> bool:
        proc = self._find(port).proc
        return proc is not None and proc.poll() is None

    def kill(self, port: int) -> None:
        kill_process(self._find(port).proc)

    def kill_master(self, timeout: float = 30) -> int:
        """SIGKILLs the master; waits until every running sentinel names the same other node
        and that node says role:master. Returns its port."""
        old = self.master_port()
        self.kill(old)
        promoted: list[int] = []

        def replaced() -> bool:
            ports = self.master_port_per_sentinel()
            named = {p for s, p in zip(self._sentinels, ports, strict=False)
                     if s.proc is not None and s.proc.poll() is None}
            if len(named) != 1:
                return False
            (port,) = named
            if port is None or port == old:
                return False
            try:
                with self.client(port) as c:
                    if c.info("replication").get("role") != "master":
                        return False
            except redis.RedisError:
                return False
            promoted[:] = [port]
            return True

        if not wait_until(replaced, timeout):
            raise RuntimeError(f"the sentinels did not replace the master on port {old}: "
                               + self.readiness_problem())
        return promoted[0]

    def restart(self, port: int, timeout: float = 30) -> None:
        """Starts a killed data node again (with the config Redis may have rewritten); waits
        until it replicates the current master and every sentinel lists it as a replica."""
        node = self._find(port)
        if self.running(port):
            return
        if not self._launch(node):
            raise RuntimeError(f"port {port} is taken now")
        if node.sentinel:
            return

        def rejoined() -> bool:
            try:
                master = self.master_port()
                if master == port:
                    return True  # it was never replaced
                with self.client(port) as c:
                    repl = c.info("replication")
                if (repl.get("role") != "slave" or repl.get("master_port") != master
                        or repl.get("master_link_status") != "up"):
                    return False
                for s in self._sentinels:
                    with self.client(s.port) as c:
                        listed = [r for r in c.sentinel_slaves(self.master_name)
                                  if int(r["port"]) == port and r["flags"] == "slave"]
                    if not listed:
                        return False
                return True
            except (redis.RedisError, RuntimeError):  # RuntimeError: no sentinel answered
                return False

        if not wait_until(rejoined, timeout):
            raise RuntimeError(f"the node on port {port} did not rejoin as a replica:\n"
                               + self.log(port))

    def readiness_problem(self) -> str:
        """Why a failover could not happen now, or "": every sentinel sees the master as up,
        knows the other sentinels and at least the configured number of healthy replicas."""
        for s in self._sentinels:
            who = f"sentinel {s.port}: "
            try:
                with self.client(s.port) as c:
                    master = c.sentinel_master(self.master_name)
                    replicas = c.sentinel_slaves(self.master_name)
            except redis.RedisError as e:
                return who + str(e)
            if not master.get("is_master") or master.get("is_sdown") or master.get("is_odown"):
                return who + f"master flags are {master.get('flags')}"
            if master.get("num-other-sentinels") != self._sentinel_count - 1:
                return who + f"knows {master.get('num-other-sentinels')} other sentinels"
            healthy = [r for r in replicas
                       if r.get("flags") == "slave" and r.get("master-link-status") == "ok"]
            if len(healthy) < self._replicas:
                return who + f"sees {len(healthy)} healthy replicas"
        return ""

    def log(self, port: int) -> str:
        return file_tail(self._find(port).dir / "redis.log", 1 << 20)

    def close(self) -> None:
        for p in self._sentinels + self._data:
            kill_process(p.proc)

    # ---- internals -----------------------------------------------------------------------

    def _start(self, p: _Process, taken: set[int]) -> _Process:
        p.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # a free port may be taken again before Redis binds it
            p.port = free_port(taken)
            self._write_config(p)
            if self._launch(p):
                taken.add(p.port)
                return p
        raise RuntimeError("Redis Sentinel: no free port in 20 attempts")

    def _write_config(self, p: _Process) -> None:
        lines = [f"port {p.port}", "bind 127.0.0.1", f"dir {p.dir}", "daemonize no",
                 'logfile ""']
        if p.sentinel:
            name = self.master_name
            lines += [
                f"sentinel monitor {name} 127.0.0.1 {self._initial_master} {self._quorum}",
                f"sentinel down-after-milliseconds {name} {self._down_after_ms}",
                f"sentinel failover-timeout {name} {self._failover_timeout_ms}",
                f"sentinel parallel-syncs {name} 1",
            ]
        else:
            lines += ['save ""', "appendonly no",
                      "repl-diskless-sync-delay 0"]  # replicas sync at once, not after 5 s
            if p.replica_of:
                lines.append(f"replicaof 127.0.0.1 {p.replica_of}")
            lines += self._extra
        (p.dir / "redis.conf").write_text("\n".join(lines) + "\n")

    def _launch(self, p: _Process) -> bool:
        # The config is written once: sentinels rewrite theirs, and CONFIG REWRITE a data
        # node's when they make it a replica; a restart keeps what they wrote.
        argv = ["redis-server", str(p.dir / "redis.conf")] + (["--sentinel"] if p.sentinel else [])
        log_path = p.dir / "redis.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = p.proc = start_process(argv, log_path)

        def answers() -> bool:
            if proc.poll() is not None:
                return True
            try:
                with self.client(p.port) as c:
                    return bool(c.ping())
            except redis.RedisError:
                return False

        if wait_until(answers, 15) and proc.poll() is None:
            return True
        kill_process(proc)
        output = log_path.read_text(errors="replace")[offset:]
        if "Address already in use" in output:
            return False
        raise RuntimeError(f"redis-server on port {p.port} did not start:\n{output}")


@pytest.fixture
def redis_sentinel(tmp_path: pathlib.Path,
                   request: pytest.FixtureRequest) -> Iterator[RedisSentinel]:
    """A fresh master, replica and three sentinels (master name ``mymaster``) for one test."""
    failed_before = request.session.testsfailed
    setup = RedisSentinel(tmp_path / "redis-sentinel")
    try:
        yield setup
    finally:
        setup.close()
        remove_unless_failed(request.session, setup.dir, failed_before)
