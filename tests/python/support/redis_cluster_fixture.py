"""pytest fixture: a real Redis Cluster (3 masters, 3 replicas of Debian's redis-server, joined
by ``redis-cli --cluster create``) on free loopback ports, with the faults failover tests need.

The Python counterpart of tests/support/redis_cluster.{hpp,cpp}:

    from redis_cluster_fixture import redis_cluster  # noqa: F401  (or list it in conftest.py)

    def test_something(redis_cluster):
        url = redis_cluster.url()                   # redis+cluster://127.0.0.1:p1,...
        owner = redis_cluster.owner_of_key("prpc_raw_q")
        promoted = redis_cluster.kill_master(owner)  # SIGKILL, wait for the replica
        redis_cluster.restart(owner)                 # rejoins as a replica
        redis_cluster.migrate_slot(key_slot("prpc_raw_q"), other_master)
        redis_cluster.reshard(from_port, to_port, 10)

Every node runs ``cluster-node-timeout 1000`` (a failover takes 2-3 s) and
``cluster-replica-validity-factor 0`` (a replica may always take over).
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence

import pytest
import redis
import redis.cluster
from service_process import (
    file_tail,
    free_port,
    kill_process,
    remove_unless_failed,
    run_program,
    start_process,
    wait_until,
)

SLOTS = 16384


def key_slot(key: str | bytes) -> int:
    """The cluster hash slot of a key: CRC16/XMODEM of the key (or of its non-empty ``{tag}``)
    modulo 16384."""
    data = key.encode() if isinstance(key, str) else bytes(key)
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc % SLOTS


@dataclasses.dataclass
class ClusterNode:
    """One line of CLUSTER NODES."""
    id: str
    port: int
    master: bool
    failed: bool  # fail or pfail, as the node asked sees it
    master_id: str | None
    slots: list[tuple[int, int]]  # inclusive ranges

    def owns(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)

    def slot_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        address = f[1].split("@")[0]
        flags = f[2].split(",")
        slots = []
        for s in f[8:]:
            if s.startswith("["):
                continue  # a slot being imported or migrated
            lo, _, hi = s.partition("-")
            slots.append((int(lo), int(hi or lo)))
        out.append(ClusterNode(id=f[0], port=int(address.rsplit(":", 1)[1]),
                               master="master" in flags,
                               failed="fail" in flags or "fail?" in flags,
                               master_id=None if f[3] == "-" else f[3], slots=slots))
    return out


class _Node:
    def __init__(self, directory: pathlib.Path) -> None:
        self.dir = directory
        self.port = 0
        self.bus_port = 0
        self.proc: subprocess.Popen | None = None
        self.slots_at_kill: list[tuple[int, int]] = []
        self.replicas_at_kill: list[int] = []


class RedisCluster:
    """A Redis Cluster of child processes; started by the constructor, killed by close()."""

    def __init__(self, directory: pathlib.Path, *, masters: int = 3,
                 replicas_per_master: int = 1, node_timeout_ms: int = 1000,
                 password: str | None = None, extra_config: Sequence[str] = ()) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            pytest.skip("redis-server or redis-cli is not installed")
        if masters < 3:
            raise ValueError("a Redis Cluster needs 3 masters")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self._node_timeout_ms = node_timeout_ms
        self._extra = list(extra_config)
        self._nodes: list[_Node] = []
        try:
            taken: set[int] = set()
            for i in range(masters * (1 + replicas_per_master)):
                node = _Node(self.dir / f"node{i}")
                node.dir.mkdir(exist_ok=True)
                # A free port may be taken again before Redis binds it (its bus port too).
                for _ in range(20):
                    node.port = free_port(taken)
                    node.bus_port = free_port(taken | {node.port})
                    if self._launch(node):
                        taken |= {node.port, node.bus_port}
                        break
                else:
                    raise RuntimeError("Redis Cluster: no free ports in 20 attempts")
                self._nodes.append(node)
            run_program(["redis-cli", *self._cli_auth(), "--cluster", "create", *self.seeds(),
                         "--cluster-replicas", str(replicas_per_master), "--cluster-yes"])
            # redis-cli returns once the masters agree; the replicas' roles spread after that.
            expected = (masters, masters * replicas_per_master)

            def formed() -> bool:
                if not self.healthy():
                    return False
                view = self.nodes()
                return (sum(1 for n in view if n.master and n.slots),
                        sum(1 for n in view if not n.master)) == expected

            if not wait_until(formed, 60):
                raise RuntimeError("the Redis Cluster did not form: " + self.health_problem())
        except BaseException:
            self.close()
            raise

    # ---- addresses and clients -----------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self._nodes]

    def seeds(self) -> list[str]:
        return [f"127.0.0.1:{n.port}" for n in self._nodes]

    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return "redis+cluster://" + auth + ",".join(self.seeds())

    def client(self, port: int, **kwargs) -> redis.Redis:
        """A plain connection to one node (no redirections followed)."""
        return redis.Redis(host="127.0.0.1", port=port, password=self.password,
                           decode_responses=True, socket_timeout=10, **kwargs)

    def cluster_client(self, **kwargs) -> redis.cluster.RedisCluster:
        """redis-py's cluster client, seeded with every node."""
        nodes = [redis.cluster.ClusterNode("127.0.0.1", p) for p in self.ports]
        return redis.cluster.RedisCluster(startup_nodes=nodes, password=self.password,
                                          decode_responses=True, **kwargs)

    # ---- topology ------------------------------------------------------------------------

    def _nodes_text(self, port: int) -> str:
        # Two arguments, so redis-py hands back the text instead of its own parse.
        with self.client(port) as c:
            return c.execute_command("CLUSTER", "NODES")

    def _live_port(self) -> int:
        for n in self._nodes:
            if n.proc is not None and n.proc.poll() is None:
                return n.port
        raise RuntimeError("no cluster node is running")

    def nodes(self) -> list[ClusterNode]:
        """The topology as a live node sees it."""
        return parse_cluster_nodes(self._nodes_text(self._live_port()))

    def node_id(self, port: int) -> str:
        with self.client(port) as c:
            return c.execute_command("CLUSTER", "MYID")

    def masters(self) -> list[int]:
        """Ports of the live masters that serve slots."""
        return [n.port for n in self.nodes()
                if n.master and not n.failed and n.slots and self.running(n.port)]

    def replicas_of(self, master_port: int) -> list[int]:
        view = self.nodes()
        ids = [n.id for n in view if n.port == master_port]
        return [n.port for n in view if ids and n.master_id == ids[0]]

    def owner_of_slot(self, slot: int) -> int:
        for n in self.nodes():
            if n.master and not n.failed and n.owns(slot):
                return n.port
        raise RuntimeError(f"no live master serves slot {slot}")

    def owner_of_key(self, key: str | bytes) -> int:
        return self.owner_of_slot(key_slot(key))

    # ---- faults --------------------------------------------------------------------------

    def _node(self, port: int) -> _Node:
        for n in self._nodes:
            if n.port == port:
                return n
        raise ValueError(f"no cluster node on port {port}")

    def running(self, port: int) -> bool:
        proc = self._node(port).proc
        return proc is not None and proc.poll() is None

    def kill(self, port: int) -> None:
        """SIGKILL one node (its slots and replicas are remembered for wait_for_failover)."""
        node = self._node(port)
        node.slots_at_kill, node.replicas_at_kill = [], []
        for n in self.nodes():
            if n.port == port and n.master:
                node.slots_at_kill = n.slots
        if node.slots_at_kill:
            node.replicas_at_kill = self.replicas_of(port)
        kill_process(node.proc)

    def wait_for_failover(self, killed_port: int, timeout: float = 30) -> int:
        """Waits until one of the killed master's replicas serves its slots and the cluster is
        healthy; returns that replica's port."""
        killed = self._node(killed_port)
        if not killed.slots_at_kill:
            raise RuntimeError(f"the node on port {killed_port} served no slots when killed")
        slot = killed.slots_at_kill[0][0]
        promoted: list[int] = []

        def taken_over() -> bool:
            try:
                for p in killed.replicas_at_kill:
                    if not self.running(p):
                        continue
                    for n in parse_cluster_nodes(self._nodes_text(p)):
                        if n.port == p and n.master and n.owns(slot):
                            promoted[:] = [p]
                return bool(promoted) and not self.health_problem()
            except redis.RedisError:
                return False

        if not wait_until(taken_over, timeout):
            raise RuntimeError(f"no replica of node {killed_port} took over slot {slot}: "
                               f"{self.health_problem()}")
        return promoted[0]

    def kill_master(self, port: int, timeout: float = 30) -> int:
        """SIGKILL a master and wait for its replica's promotion; returns the replica's port."""
        self.kill(port)
        return self.wait_for_failover(port, timeout)

    def restart(self, port: int, timeout: float = 30) -> None:
        """Starts a killed node again with its nodes.conf; a former master rejoins as a replica
        of whoever took its slots. Waits until the cluster is healthy."""
        node = self._node(port)
        if self.running(port):
            return
        if not self._launch(node):
            raise RuntimeError(f"port {port} is taken now")
        self.wait_healthy(timeout)

    # ---- slots ---------------------------------------------------------------------------

    def migrate_slot(self, slot: int, to_port: int) -> None:
        """Moves one slot and its keys to another master by hand (SETSLOT IMPORTING/MIGRATING,
        MIGRATE ... REPLACE KEYS, SETSLOT NODE); clients see ASK meanwhile."""
        from_port = self.owner_of_slot(slot)
        if from_port == to_port:
            return
        from_id, to_id = self.node_id(from_port), self.node_id(to_port)
        with self.client(from_port) as src, self.client(to_port) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", from_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", to_id)
            while True:
                keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
                if not keys:
                    break
                auth = ["AUTH", self.password] if self.password else []
                # REPLACE: a key still here is the current one, whatever the target holds.
                src.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 10000, "REPLACE",
                                    *auth, "KEYS", *keys)
            # The target first, so the slot always has an owner that accepts it.
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to_id)
        for p in self.masters():
            if p not in (from_port, to_port):
                with self.client(p) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", to_id)
        self.wait_healthy()

    def reshard(self, from_port: int, to_port: int, slots: int) -> None:
        """``redis-cli --cluster reshard``: moves ``slots`` slots (the source's lowest) from one
        master to another, then waits until every node agrees."""
        run_program(["redis-cli", *self._cli_auth(), "--cluster", "reshard",
                     f"127.0.0.1:{from_port}", "--cluster-from", self.node_id(from_port),
                     "--cluster-to", self.node_id(to_port), "--cluster-slots", str(slots),
                     "--cluster-yes"], timeout=120)
        self.wait_healthy()

    # ---- health --------------------------------------------------------------------------

    def health_problem(self) -> str:
        """Why the cluster is not healthy, or "": every live node says cluster_state:ok with
        all slots ok and knows every node, sees no running node as failed and the same slot
        owners and roles as the others, and every live replica's link is up."""
        agreed = None
        for n in self._nodes:
            if not self.running(n.port):
                continue
            who = f"node {n.port}: "
            try:
                with self.client(n.port) as c:
                    info = c.execute_command("CLUSTER", "INFO")
                    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
                    if fields.get("cluster_state") != "ok":
                        return who + "cluster_state is not ok"
                    if fields.get("cluster_slots_ok") != str(SLOTS):
                        return who + f"cluster_slots_ok is {fields.get('cluster_slots_ok')}"
                    if fields.get("cluster_known_nodes") != str(len(self._nodes)):
                        return who + f"knows {fields.get('cluster_known_nodes')} nodes"
                    repl = c.info("replication")
                # Who serves which slots and who replicates whom, as this node sees it.
                owners = []
                for v in parse_cluster_nodes(self._nodes_text(n.port)):
                    if v.failed and self.running(v.port):
                        return who + f"still sees the running node {v.port} as failed"
                    if not v.failed:
                        owners.append((v.id, v.master, v.master_id or "", tuple(v.slots)))
                owners.sort()
                if agreed is None:
                    agreed = owners
                elif owners != agreed:
                    return who + "sees other slot owners or roles than the first node"
                if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                    return who + "replica whose link to its master is down"
            except redis.RedisError as e:
                return who + str(e)
        return "no node is running" if agreed is None else ""

    def healthy(self) -> bool:
        return not self.health_problem()

    def wait_healthy(self, timeout: float = 30) -> None:
        if not wait_until(self.healthy, timeout):
            raise RuntimeError("the Redis Cluster is not healthy: " + self.health_problem())

    def log(self, port: int) -> str:
        return file_tail(self._node(port).dir / "redis.log", 1 << 20)

    def close(self) -> None:
        for n in self._nodes:
            kill_process(n.proc)

    # ---- internals -----------------------------------------------------------------------

    def _cli_auth(self) -> list[str]:
        return ["-a", self.password, "--no-auth-warning"] if self.password else []

    def _write_config(self, node: _Node) -> pathlib.Path:
        lines = [
            f"port {node.port}",
            f"cluster-port {node.bus_port}",  # not port+10000, which may be taken or > 65535
            "bind 127.0.0.1",
            f"dir {node.dir}",
            'save ""',
            "appendonly no",
            "daemonize no",
            'logfile ""',
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {self._node_timeout_ms}",
            "cluster-replica-validity-factor 0",  # a replica may always take over
            "repl-diskless-sync-delay 0",  # replicas sync at once, not after 5 s
        ]
        if self.password:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        lines += self._extra
        path = node.dir / "redis.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _launch(self, node: _Node) -> bool:
        config = self._write_config(node)
        log_path = node.dir / "redis.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = node.proc = start_process(["redis-server", str(config)], log_path)

        def answers() -> bool:
            if proc.poll() is not None:
                return True
            try:
                with self.client(node.port) as c:
                    return bool(c.ping())
            except redis.RedisError:
                return False

        if wait_until(answers, 15) and proc.poll() is None:
            return True
        kill_process(proc)
        output = log_path.read_text(errors="replace")[offset:]
        if "Address already in use" in output:
            return False
        raise RuntimeError(f"redis-server (cluster node {node.port}) did not start:\n{output}")


@pytest.fixture
def redis_cluster(tmp_path: pathlib.Path,
                  request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    """A fresh 3-master, 3-replica Redis Cluster for one test."""
    failed_before = request.session.testsfailed
    cluster = RedisCluster(tmp_path / "redis-cluster")
    try:
        yield cluster
    finally:
        cluster.close()
        remove_unless_failed(request.session, cluster.dir, failed_before)
