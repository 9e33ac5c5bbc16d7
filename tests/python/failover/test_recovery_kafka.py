"""Crash recovery on a real Apache Kafka broker: the group's session timeout is the liveness
signal. Executions are counted through a side effect, never through replies."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from executions import app_source, lines
from kafka_fixture import kafka_server  # noqa: F401 - a session fixture
from sdk_fixtures import ServerProcess, wait_until

# kafka-python itself uses deprecated importlib APIs.
pytestmark = [pytest.mark.kafka, pytest.mark.failover, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

APP = app_source("kafka")


@pytest.fixture
def kafka_env(kafka_server, monkeypatch, queue):
    values = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka_server.bootstrap,
              "PRPC_QUEUE_NAME": queue}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    prpc.client.close_shared_clients()


def start_server(kafka_env, tmp_path: Path, name: str, wait: bool) -> ServerProcess:
    path = tmp_path / name
    path.write_text(APP.replace("{URL}", kafka_env["PRPC_URL_BROKER"])
                       .replace("{QUEUE}", kafka_env["PRPC_QUEUE_NAME"]))
    server = ServerProcess(path, kafka_env)
    if wait:
        probe = prpc.Client()
        try:
            def answers() -> bool:
                assert server.proc.poll() is None, server.output()
                try:
                    return probe.ping(timeout=2) == "pong"
                except prpc.ClientTimeOutError:
                    return False
            wait_until(answers, 120, "the Kafka server to answer ping")
        finally:
            probe.close()
    return server


def test_a_killed_servers_calls_finish_on_another_kafka(kafka_env, tmp_path):
    log = tmp_path / "executions.log"
    first = start_server(kafka_env, tmp_path, "first.py", wait=True)
    second = None
    client = prpc.Client()
    try:
        sent = time.monotonic()
        tasks = [client.call("work", 3, str(log), f"call{i}") for i in range(4)]
        wait_until(lambda: len(lines(log, "start")) == 4, 30, "the four calls to start")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        second = start_server(kafka_env, tmp_path, "second.py", wait=False)
        results = [t.sync_wait_result_task(60) for t in tasks]
        took = time.monotonic() - sent
        assert results == [f"call{i}" for i in range(4)]
        ends = lines(log, "end")
        assert sorted(tag for _, tag, _, _ in ends) == [f"call{i}" for i in range(4)]
        assert {int(p) for _, _, p, _ in ends} == {second.proc.pid}
        print(f"\nKafka: four 3 s calls of a SIGKILLed server answered {took:.1f} s after "
              "they were sent")
        # The 6 s session timeout, a rebalance and the 3 s calls (librdkafka's default 45 s
        # session would take about 50 s).
        assert took < 15, f"recovery took {took:.1f} s"  # measured: 9.7 s
    finally:
        client.close()
        first.terminate()
        if second is not None:
            second.terminate()


def test_a_long_call_beside_two_live_kafka_servers_runs_exactly_once(kafka_env, tmp_path):
    log = tmp_path / "executions.log"
    servers = [start_server(kafka_env, tmp_path, "a.py", wait=True),
               start_server(kafka_env, tmp_path, "b.py", wait=True)]
    client = prpc.Client()
    try:
        # Both servers in a settled group: each has answered from partitions of its own. (A
        # server that joins while a call runs may move that call's partition, under librdkafka's
        # eager protocol before 2.3, and its new owner runs it again: at least once.)
        seen: set[int] = set()

        def both_serve() -> bool:
            seen.add(client.call("pid").sync_wait_result_task(30))
            return seen == {s.proc.pid for s in servers}
        wait_until(both_serve, 120, "both servers to own partitions")
        # 45 s: seven session timeouts; heartbeats come from librdkafka's thread meanwhile.
        assert client.call("work", 45, str(log), "long").sync_wait_result_task(90) == "long"
        assert len(lines(log, "start")) == 1, log.read_text()
        assert len(lines(log, "end")) == 1
        assert all(s.proc.poll() is None for s in servers)
    finally:
        client.close()
        for s in servers:
            s.terminate()
