"""A replicated Kafka cluster under load: three brokers (replication factor 3,
min.insync.replicas=2; PRPC's producers use acks=all and idempotence), two Python servers and
16 callers making two thousand calls while the broker that leads the queue's request partition
is SIGKILLed and, later, started again. Every call must be answered, and answered right."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from kafka_cluster_fixture import kafka_cluster  # noqa: F401 - a fixture
from load import Load, tag_app
from sdk_fixtures import ServerProcess, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.cluster, pytest.mark.failover, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CALLERS = 16
CALLS_EACH = 125  # 2000 calls


def test_a_broker_killed_and_restarted_under_load_loses_nothing(kafka_cluster, tmp_path,
                                                                 queue, monkeypatch):
    servers: list[ServerProcess] = []
    client = None
    try:
        kafka_cluster.create_queue_topics(queue)
        env = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka_cluster.bootstrap,
               "PRPC_QUEUE_NAME": queue, "PRPC_LOG_LEVEL": "error"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        for name in ("a.py", "b.py"):
            path = tmp_path / name
            path.write_text(tag_app("kafka", kafka_cluster.bootstrap, queue))
            servers.append(ServerProcess(path, env))
        client = prpc.Client()
        wait_until(lambda: client.ping(timeout=5) == "pong", 120, "a server to answer")
        load = Load(client, CALLERS, CALLS_EACH)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")
        victim = kafka_cluster.leader_of(f"prpc_{queue}", 0)
        kafka_cluster.kill(victim)
        killed_at = time.monotonic()
        wait_until(lambda: load.count() >= 1200, 240, "1200 calls with a broker down")
        kafka_cluster.start(victim)
        load.join(400)
        print(f"broker {victim} down for {time.monotonic() - killed_at:.1f} s; {load.summary()}")
        load.check()
        for s in servers:
            assert s.proc.poll() is None, s.output()
        kafka_cluster.wait_for_full_isr(f"prpc_{queue}")
    finally:
        if client is not None:
            client.close()
        prpc.client.close_shared_clients()
        for s in servers:
            s.terminate()
