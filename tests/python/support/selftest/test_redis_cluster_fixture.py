"""The Redis Cluster fixture serves keys from their slot's owner, redirects everyone else, and
keeps serving while slots move and after a master is SIGKILLed."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import redis
from redis_cluster_fixture import SLOTS, RedisCluster, key_slot

pytestmark = pytest.mark.cluster


class IncrTraffic:
    """INCR on one key through redis-py's cluster client (it follows MOVED and ASK) until
    stopped; the final value must equal the successful calls."""

    def __init__(self, cluster: RedisCluster, key: str) -> None:
        self.key = key
        self.done = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._client = cluster.cluster_client()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._client.incr(self.key)
                self.done += 1
        except BaseException as e:  # reported by the test
            self.error = e

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.done < count and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.error is None, self.error
        assert self.done >= count

    def finish(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()


def test_three_masters_three_replicas_cover_every_slot(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.ports) == 6
    assert redis_cluster.url().startswith("redis+cluster://127.0.0.1:")
    assert len(redis_cluster.url().split(",")) == 6
    masters = redis_cluster.masters()
    assert len(masters) == 3
    assert sum(n.slot_count() for n in redis_cluster.nodes() if n.master) == SLOTS
    for m in masters:
        replicas = redis_cluster.replicas_of(m)
        assert len(replicas) == 1
        with redis_cluster.client(replicas[0]) as c:
            repl = c.info("replication")
        assert repl["role"] == "slave"
        assert repl["master_port"] == m
        assert repl["master_link_status"] == "up"
    for port in redis_cluster.ports:
        with redis_cluster.client(port) as c:
            info = c.execute_command("CLUSTER", "INFO")
        assert "cluster_state:ok" in info
        assert f"cluster_slots_ok:{SLOTS}" in info


def test_key_slot_matches_the_server(redis_cluster: RedisCluster) -> None:
    assert key_slot("123456789") == 0x31C3  # CRC16/XMODEM check value
    keys: list[str | bytes] = ["", "a", "foo", "prpc_raw_task_prpc", "{user1000}.following",
            "foo{}{bar}",
            "foo{{bar}}zap", "foo{bar}{zap}", "{bar", "bar}", b"\xff\x00\x80 binary"]
    keys += [f"k{i * 7919}" for i in range(200)]
    with redis_cluster.client(redis_cluster.ports[0]) as c:
        for key in keys:
            assert key_slot(key) == c.execute_command("CLUSTER", "KEYSLOT", key), key
    for key in keys[:50]:
        with redis_cluster.client(redis_cluster.owner_of_key(key)) as c:
            assert c.set(key, "x")  # the owner accepts it: no MOVED


def test_owner_serves_the_key_and_others_redirect(redis_cluster: RedisCluster) -> None:
    key = "prpc_raw_selftest"
    owner = redis_cluster.owner_of_key(key)
    with redis_cluster.client(owner) as c:
        assert c.set(key, "v1")
    others = [m for m in redis_cluster.masters() if m != owner]
    for m in others:
        with redis_cluster.client(m) as c, pytest.raises(redis.ResponseError) as moved:
            c.get(key)
        assert f"{key_slot(key)} 127.0.0.1:{owner}" in str(moved.value)
    cli = subprocess.run(["redis-cli", "-c", "-p", str(others[0]), "GET", key],
                         capture_output=True, text=True, timeout=30)
    assert cli.stdout == "v1\n"
    with redis_cluster.cluster_client() as cc:
        assert cc.get(key) == "v1"
        assert cc.set(key, "v2")
    with redis_cluster.client(owner) as c:
        assert c.get(key) == "v2"


def test_migrate_slot_while_traffic_runs(redis_cluster: RedisCluster) -> None:
    counter = "prpc_{moving}_counter"
    slot = key_slot(counter)
    source = redis_cluster.owner_of_slot(slot)
    target = next(m for m in redis_cluster.masters() if m != source)
    with redis_cluster.client(source) as c:
        for i in range(200):
            c.set(f"prpc_{{moving}}_{i}", i)
    traffic = IncrTraffic(redis_cluster, counter)
    try:
        traffic.wait_for(50)
        redis_cluster.migrate_slot(slot, target)
        traffic.wait_for(traffic.done + 50)
    finally:
        traffic.finish()
    assert traffic.error is None, traffic.error
    assert redis_cluster.owner_of_slot(slot) == target
    with redis_cluster.client(target) as c:
        assert int(c.get(counter)) == traffic.done, "an INCR was lost or doubled"
        assert [c.get(f"prpc_{{moving}}_{i}") for i in range(200)] == [str(i) for i in range(200)]
    assert redis_cluster.healthy()


def test_reshard_with_redis_cli_while_traffic_runs(redis_cluster: RedisCluster) -> None:
    masters = [n for n in redis_cluster.nodes() if n.master and n.slots]
    source, target = masters[0], masters[1]
    lowest = source.slots[0][0]  # redis-cli moves the source's lowest slots first
    counter = next(k for k in (f"prpc_counter_{i}" for i in range(10**6)) if key_slot(k) == lowest)
    traffic = IncrTraffic(redis_cluster, counter)
    try:
        traffic.wait_for(50)
        redis_cluster.reshard(source.port, target.port, 10)
        traffic.wait_for(traffic.done + 50)
    finally:
        traffic.finish()
    assert traffic.error is None, traffic.error
    assert redis_cluster.owner_of_slot(lowest) == target.port
    with redis_cluster.client(target.port) as c:
        assert int(c.get(counter)) == traffic.done
    counts = {n.port: n.slot_count() for n in redis_cluster.nodes()}
    assert counts[source.port] == source.slot_count() - 10
    assert counts[target.port] == target.slot_count() + 10


@pytest.mark.failover
def test_killed_master_is_replaced_by_its_replica_and_rejoins(redis_cluster: RedisCluster) -> None:
    key = "prpc_raw_failover"
    owner = redis_cluster.owner_of_key(key)
    (replica,) = redis_cluster.replicas_of(owner)
    with redis_cluster.client(owner) as c:
        c.set(key, "before")
        assert c.execute_command("WAIT", 1, 5000) == 1
    promoted = redis_cluster.kill_master(owner)
    assert not redis_cluster.running(owner)
    assert promoted == replica
    assert redis_cluster.owner_of_key(key) == promoted
    with redis_cluster.client(promoted) as c:
        assert c.info("replication")["role"] == "master"
        assert c.get(key) == "before"
        assert c.set(key, "after")
    with redis_cluster.cluster_client() as cc:
        assert cc.get(key) == "after"

    redis_cluster.restart(owner)
    with redis_cluster.client(owner) as c:
        repl = c.info("replication")
        assert repl["role"] == "slave"
        assert repl["master_port"] == promoted
        assert repl["master_link_status"] == "up"
        c.execute_command("READONLY")
        assert c.get(key) == "after"
    assert len(redis_cluster.masters()) == 3
