"""Kafka faults under load: 32 callers make two thousand calls to two Python servers on a real
Apache Kafka broker of the test's own while one server is SIGKILLed and restarted and then the
broker itself is restarted. Every call must be answered, and answered right."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from kafka_fixture import KafkaServer
from load import Load, tag_app
from sdk_fixtures import ServerProcess, wait_until

# kafka-python itself uses deprecated importlib APIs.
pytestmark = [pytest.mark.kafka, pytest.mark.failover, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CALLERS = 32
CALLS_EACH = 63  # 2016 calls


def test_server_kill_and_broker_restart_under_load_lose_nothing(tmp_path, queue, monkeypatch):
    kafka = KafkaServer()
    servers: list[ServerProcess] = []
    client = None
    try:
        env = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka.bootstrap,
               "PRPC_QUEUE_NAME": queue, "PRPC_LOG_LEVEL": "error"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)

        def start(name: str) -> ServerProcess:
            path = tmp_path / name
            path.write_text(tag_app("kafka", kafka.bootstrap, queue))
            server = ServerProcess(path, env)
            servers.append(server)
            return server

        first, second = start("a.py"), start("b.py")
        client = prpc.Client()
        wait_until(lambda: client.ping(timeout=5) == "pong", 120, "a server to answer")
        load = Load(client, CALLERS, CALLS_EACH)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        start("a2.py")
        wait_until(lambda: load.count() >= 1000, 180, "1000 calls")
        kafka.stop()
        kafka.start()
        load.join(400)
        load.check()
        assert second.proc.poll() is None, second.output()
    finally:
        if client is not None:
            client.close()
        prpc.client.close_shared_clients()
        for s in servers:
            s.terminate()
        kafka.close()
