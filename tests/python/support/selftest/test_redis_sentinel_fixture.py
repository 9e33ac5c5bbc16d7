"""The Sentinel fixture: the sentinels agree on the master, replace it with its replica when it
is SIGKILLed, the new master takes writes, and the old one rejoins as a replica."""

from __future__ import annotations

import pytest
import redis
from redis_sentinel_fixture import RedisSentinel
from service_process import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.failover]


def test_sentinels_name_the_replica_after_the_master_is_killed(
        redis_sentinel: RedisSentinel) -> None:
    assert len(redis_sentinel.sentinel_addresses()) == 3
    assert redis_sentinel.url(2).endswith("/mymaster/2")
    first, second = redis_sentinel.data_ports
    assert redis_sentinel.master_port_per_sentinel() == [first] * 3
    with redis_sentinel.client(first) as c:
        c.set("prpc_k", "before")
        assert c.execute_command("WAIT", 1, 5000) == 1
    with redis_sentinel.client(second) as c, pytest.raises(redis.ReadOnlyError):
        c.set("prpc_k", "x")

    promoted = redis_sentinel.kill_master()
    assert promoted == second
    assert not redis_sentinel.running(first)
    assert redis_sentinel.master_port_per_sentinel() == [second] * 3
    # A Sentinel-aware client finds the new master and writes to it.
    master = redis_sentinel.sentinel(decode_responses=True).master_for(
        "mymaster", socket_timeout=5, decode_responses=True)
    assert master.get("prpc_k") == "before"
    assert master.set("prpc_k", "after")
    master.close()

    redis_sentinel.restart(first)
    with redis_sentinel.client(first) as c:
        repl = c.info("replication")
        assert repl["role"] == "slave"
        assert repl["master_port"] == second
        assert wait_until(lambda: c.get("prpc_k") == "after", 10)
