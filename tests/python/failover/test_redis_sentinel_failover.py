"""Redis Sentinel under load: a master, a replica and three sentinels; two Python servers and 16
callers making two thousand calls through redis+sentinel:// while the master is SIGKILLed and
the replica promoted, then the old master restarted (it comes back as a replica)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from load import Load, tag_app
from redis_sentinel_fixture import redis_sentinel  # noqa: F401 - a fixture
from sdk_fixtures import ServerProcess, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.failover, pytest.mark.slow]

CALLERS = 16
CALLS_EACH = 125  # 2000 calls


def test_the_master_killed_under_load(redis_sentinel, tmp_path, queue, monkeypatch):
    servers: list[ServerProcess] = []
    client = None
    url = redis_sentinel.url()
    try:
        env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue,
               "PRPC_LOG_LEVEL": "error"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        for name in ("a.py", "b.py"):
            path = tmp_path / name
            path.write_text(tag_app("redis", url, queue))
            servers.append(ServerProcess(path, env))
        client = prpc.Client()
        wait_until(lambda: client.ping(timeout=5) == "pong", 120, "a server to answer")
        load = Load(client, CALLERS, CALLS_EACH, timeout=60)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")
        old = redis_sentinel.master_port()
        killed_at = time.monotonic()
        new = redis_sentinel.kill_master()
        promoted_after = time.monotonic() - killed_at
        wait_until(lambda: load.count() >= 1200, 240, "1200 calls")
        redis_sentinel.restart(old)
        load.join(400)
        print(f"master {old} killed, {new} promoted after {promoted_after:.1f} s; {load.summary()}")
        for line in load.failed[:10]:
            print("  failed:", line)
        load.check()
        for s in servers:
            assert s.proc.poll() is None, s.output()
    finally:
        if client is not None:
            client.close()
        prpc.client.close_shared_clients()
        for s in servers:
            s.terminate()
