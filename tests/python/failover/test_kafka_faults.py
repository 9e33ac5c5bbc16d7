"""Kafka faults under load: 32 callers make two thousand calls to two Python servers on a real
Apache Kafka broker of the test's own while one server is SIGKILLed and restarted and then the
broker itself is restarted. Every call must be answered, and answered right."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import pytest

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from kafka_fixture import KafkaServer
from sdk_fixtures import ServerProcess, wait_until

# kafka-python itself uses deprecated importlib APIs.
pytestmark = [pytest.mark.kafka, pytest.mark.failover, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

APP = '''
from prpc import AppServer

app = AppServer("kafka", "{URL}", "thread", 8, None, "{QUEUE}")

@app.decorator_reg_func()
def tag(caller, n):
    return f"{caller}:{n}"

if __name__ == "__main__":
    app.start()
'''

CALLERS = 32
CALLS_EACH = 63  # 2016 calls


class Load:
    def __init__(self, client: prpc.Client) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.done = 0
        self.wrong: list[str] = []
        self.failed: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(c,)) for c in range(CALLERS)]
        for t in self.threads:
            t.start()

    def run(self, caller: int) -> None:
        for n in range(CALLS_EACH):
            try:
                got = self.client.call("tag", caller, n).sync_wait_result_task(180)
                with self.lock:
                    self.done += 1
                    if got != f"{caller}:{n}":
                        self.wrong.append(f"{caller}:{n} -> {got!r}")
            except Exception as e:
                with self.lock:
                    self.done += 1
                    self.failed.append(f"{caller}:{n}: {type(e).__name__}: {e}")

    def count(self) -> int:
        with self.lock:
            return self.done


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
            path.write_text(APP.replace("{URL}", kafka.bootstrap).replace("{QUEUE}", queue))
            server = ServerProcess(path, env)
            servers.append(server)
            return server

        first, second = start("a.py"), start("b.py")
        client = prpc.Client()
        wait_until(lambda: client.ping(timeout=5) == "pong", 120, "a server to answer")
        load = Load(client)
        wait_until(lambda: load.count() >= 400, 120, "400 calls")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        start("a2.py")
        wait_until(lambda: load.count() >= 1000, 180, "1000 calls")
        kafka.stop()
        kafka.start()
        for t in load.threads:
            t.join(400)
        assert not any(t.is_alive() for t in load.threads), "callers still waiting"
        assert load.failed == [], "\n".join(load.failed[:20])
        assert load.wrong == [], "\n".join(load.wrong[:20])
        assert load.count() == CALLERS * CALLS_EACH
        assert second.proc.poll() is None, second.output()
    finally:
        if client is not None:
            client.close()
        prpc.client.close_shared_clients()
        for s in servers:
            s.terminate()
        kafka.close()
