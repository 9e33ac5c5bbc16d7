"""Redis Cluster under load: 3 masters and 3 replicas, two Python servers and 16 callers making
thousands of calls through redis+cluster:// while (a) the master that holds the queue's request
stream is SIGKILLed, its replica takes over and the old master comes back as a replica, (b) the
request stream's slot moves to another master twice (by hand, then with `redis-cli --cluster
reshard`), and (c) with the queue spread over 3 stream shards (`?shards=3`), one shard's master
is SIGKILLed. Every call must be answered, and answered right. Each test prints one `RESULT:`
line: the longest call, how long the failover or migration took, and how long the callers saw
no answer at all."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from load import Load, tag_app
from redis_cluster_fixture import RedisCluster, key_slot, redis_cluster  # noqa: F401 - a fixture
from sdk_fixtures import ServerProcess, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.failover, pytest.mark.slow]

CALLERS = 16
CALLS_EACH = 250  # 4000 calls
# The slot moves need traffic before, during and after each of two moves, however fast the calls.
CALLS_EACH_MOVING = 500  # 8000 calls
CALL_TIMEOUT = 60  # a call caught by the failover may wait for the 30 s visibility timeout


@contextlib.contextmanager
def serving(url: str, queue: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[prpc.Client]:
    """Two Python servers of `tag` on `url`, and a client that one of them has answered."""
    servers: list[ServerProcess] = []
    client = None
    try:
        env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue,
               "PRPC_LOG_LEVEL": "warn"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        for name in ("a.py", "b.py"):
            path = tmp_path / name
            path.write_text(tag_app("redis", url, queue))
            servers.append(ServerProcess(path, env))
        client = prpc.Client()

        def answered() -> bool:
            for s in servers:
                assert s.proc.poll() is None, s.output()
            try:
                return client.ping(timeout=5) == "pong"
            except prpc.exceptions.ClientTimeOutError:
                return False

        wait_until(answered, 120, "a server to answer")
        yield client
        for s in servers:
            assert s.proc.poll() is None, s.output()
    finally:
        if client is not None:
            client.close()
        prpc.client.close_shared_clients()
        for s in servers:
            s.terminate()


def streams_on_masters(cluster: RedisCluster, prefix: str) -> dict[str, int]:
    """The streams named `prefix` or `prefix:...`, each with the port of the master that holds
    it, found by scanning every master."""
    found: dict[str, int] = {}
    for port in cluster.masters():
        with cluster.client(port) as c:
            for key in c.scan_iter(match=f"{prefix}*", _type="stream"):
                if key == prefix or key.startswith(f"{prefix}:"):
                    found[key] = port
    return found


def request_streams(cluster: RedisCluster, queue: str) -> dict[str, int]:
    """The Python request stream of `queue` and its shards (`prpc_{q}`, `prpc_{q}:{tag}`)."""
    return streams_on_masters(cluster, f"prpc_{queue}")


def reply_stream_master(cluster: RedisCluster, queue: str) -> int:
    """The master holding the test client's reply stream (`prpc_feedback_{q}:{client}`)."""
    found = streams_on_masters(cluster, f"prpc_feedback_{queue}")
    assert len(found) == 1, found
    return next(iter(found.values()))


def entries_added(cluster: RedisCluster, key: str) -> int:
    """How many entries were ever added to a stream (trimming and XDEL do not lower it)."""
    with cluster.client(cluster.owner_of_key(key)) as c:
        return int(c.xinfo_stream(key)["entries-added"])


def report(what: str, load: Load, **timings: float) -> None:
    lost = load.total - (load.count() - len(load.failed))
    parts = [f"{load.count()} calls", f"{lost} lost", f"{len(load.wrong)} wrong",
             f"longest call {load.longest_latency():.2f} s"]
    parts += [f"{name.replace('_', ' ')} {value:.2f} s" for name, value in timings.items()]
    print(f"\nRESULT: redis cluster, {what}: " + ", ".join(parts))
    for line in load.failed[:10]:
        print("  failed:", line)


def test_the_request_streams_master_killed_and_restarted(redis_cluster, tmp_path, queue,
                                                         monkeypatch):
    with serving(redis_cluster.url(), queue, tmp_path, monkeypatch) as client:
        load = Load(client, CALLERS, CALLS_EACH, timeout=CALL_TIMEOUT)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")
        victim = redis_cluster.owner_of_key(f"prpc_{queue}")
        replies = reply_stream_master(redis_cluster, queue)
        killed_at = time.monotonic()
        promoted = redis_cluster.kill_master(victim)
        promoted_after = time.monotonic() - killed_at
        assert redis_cluster.owner_of_key(f"prpc_{queue}") == promoted
        wait_until(lambda: load.count() >= 1200, 240, "1200 calls")
        redis_cluster.restart(victim)
        assert victim in redis_cluster.replicas_of(promoted)
        load.join(400)
        report(f"master {victim} SIGKILLed after 400 calls, replica {promoted} took over and "
               f"{victim} came back as its replica (the reply stream "
               f"{'on it too' if replies == victim else 'elsewhere'})", load,
               replica_promoted_after=promoted_after,
               callers_without_any_answer=load.longest_stall(killed_at))
        load.check()


def lowest_range_queue(cluster: RedisCluster, base: str) -> tuple[str, int, int]:
    """A queue name (from `base`) whose request stream's slot lies in the lowest slot range of
    some master, below every slot of another master: after `migrate_slot` to that other master,
    the slot is its lowest one, which is the slot `redis-cli --cluster reshard` moves first.
    Returns the name, its slot and the master to migrate to."""
    ranges = {n.port: min(lo for lo, _ in n.slots) for n in cluster.nodes()
              if n.master and n.slots}
    by_start = sorted(ranges, key=lambda p: ranges[p])
    for i in range(1000):
        name = f"{base}_{i}"
        slot = key_slot(f"prpc_{name}")
        owner = cluster.owner_of_slot(slot)
        above = [p for p in by_start if ranges[p] > slot and p != owner]
        if above:
            return name, slot, above[0]
    raise AssertionError("no queue name whose slot lies below another master's slots")


def test_the_request_streams_slot_migrated_twice_under_load(redis_cluster, tmp_path, queue,
                                                            monkeypatch):
    queue, slot, first_target = lowest_range_queue(redis_cluster, queue)
    origin = redis_cluster.owner_of_slot(slot)
    second_target = next(p for p in redis_cluster.masters() if p not in (origin, first_target))
    with serving(redis_cluster.url(), queue, tmp_path, monkeypatch) as client:
        load = Load(client, CALLERS, CALLS_EACH_MOVING, timeout=CALL_TIMEOUT)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")

        # By hand, with the ASK window held open: the slot is migrating and the stream already
        # on the target, its liveness hash (same slot) still on the source, so commands on the
        # stream are answered ASK and the claim script (both keys) TRYAGAIN until 200 more
        # calls are done; then migrate_slot moves the rest and gives the slot to the target.
        started = time.monotonic()
        with redis_cluster.client(origin) as src, redis_cluster.client(first_target) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                                redis_cluster.node_id(origin))
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                                redis_cluster.node_id(first_target))
            src.execute_command("MIGRATE", "127.0.0.1", first_target, "", 0, 10000, "KEYS",
                                f"prpc_{queue}")
            # The stream is gone from the source, which sends its clients to the target now.
            with pytest.raises(redis.exceptions.AskError):
                src.exists(f"prpc_{queue}")
        before = load.count()
        assert before < load.total, "the calls ended before the slot moved"
        wait_until(lambda: load.count() >= before + 200, 120, "200 calls answered through ASK")
        redis_cluster.migrate_slot(slot, first_target)
        by_hand = time.monotonic() - started
        assert redis_cluster.owner_of_slot(slot) == first_target
        with redis_cluster.client(first_target) as c:
            assert c.exists(f"prpc_{queue}") == 1
        before = load.count()
        wait_until(lambda: load.count() >= before + 200, 240, "200 calls after the first move")

        # redis-cli --cluster reshard moves the target's lowest slot: this one.
        second_started = time.monotonic()
        before = load.count()
        redis_cluster.reshard(first_target, second_target, 1)
        resharded = time.monotonic() - second_started
        assert redis_cluster.owner_of_slot(slot) == second_target
        with redis_cluster.client(second_target) as c:
            assert c.exists(f"prpc_{queue}") == 1
        after = load.count()
        assert before < after < load.total, f"calls answered {before}, {after} of {load.total}"
        wait_until(lambda: load.count() >= after + 200, 240, "200 calls after the reshard")
        load.join(400)
        report(f"slot {slot} of prpc_{queue} moved {origin} -> {first_target} by hand (ASK "
               f"for 200 calls), then "
               f"-> {second_target} by redis-cli --cluster reshard, under load", load,
               migration_by_hand_took=by_hand, reshard_took=resharded,
               callers_without_any_answer=load.longest_stall(started))
        load.check()


def test_three_shards_one_shards_master_killed(redis_cluster, tmp_path, queue, monkeypatch):
    with serving(redis_cluster.url() + "?shards=3", queue, tmp_path, monkeypatch) as client:
        streams = request_streams(redis_cluster, queue)
        assert len(streams) == 3, streams
        assert f"prpc_{queue}" in streams, streams
        assert len(set(streams.values())) == 3, f"3 shards on fewer than 3 masters: {streams}"
        load = Load(client, CALLERS, CALLS_EACH, timeout=CALL_TIMEOUT)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")
        # Every shard carries requests (clients publish round-robin).
        added = {key: entries_added(redis_cluster, key) for key in streams}
        assert all(n > 0 for n in added.values()), added
        shard = sorted(k for k in streams if k != f"prpc_{queue}")[0]
        victim = streams[shard]
        replies = reply_stream_master(redis_cluster, queue)
        killed_at = time.monotonic()
        promoted = redis_cluster.kill_master(victim)
        promoted_after = time.monotonic() - killed_at
        assert redis_cluster.owner_of_key(shard) == promoted
        at_failover = entries_added(redis_cluster, shard)
        wait_until(lambda: load.count() >= 1200, 240, "1200 calls")
        redis_cluster.restart(victim)
        load.join(400)
        # The shard on the promoted replica carried requests after the failover too.
        assert entries_added(redis_cluster, shard) > at_failover
        report(f"3 shards ({', '.join(f'{k}@{p}' for k, p in sorted(streams.items()))}), "
               f"master {victim} of {shard} SIGKILLed after 400 calls, replica {promoted} took "
               f"over (the reply stream {'on it too' if replies == victim else 'elsewhere'})", load,
               replica_promoted_after=promoted_after,
               callers_without_any_answer=load.longest_stall(killed_at))
        load.check()
