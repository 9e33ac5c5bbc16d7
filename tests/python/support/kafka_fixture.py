"""Kafka services for pytest: librdkafka's mock cluster (the ``prpc-kafka-mock`` helper) and a
real Apache Kafka 3.9.1 broker in KRaft combined mode (from the jars ``scripts/deps.sh kafka``
fetches).

Both listen on free loopback ports and are ready when started: readiness is a metadata answer,
polled with a bound, never a sleep.

    from support.kafka_fixture import kafka_mock, kafka_server   # pytest fixtures

    def test_something(kafka_mock):
        kafka_mock.create_queue_topics("task_prpc", partitions=4)
        url = kafka_mock.bootstrap            # "127.0.0.1:40123"
        kafka_mock.broker_down(); kafka_mock.broker_up()

The helper binary is found through ``PRPC_KAFKA_MOCK`` or the build trees under ``build/``.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SUPPORT = ROOT / "tests" / "support" / "kafka"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queue_topics(queue: str) -> list[str]:
    return [f"prpc_{queue}", f"prpc_raw_{queue}", f"prpc_feedback_{queue}",
            f"prpc_feedback_raw_{queue}", f"prpc_dead_{queue}"]


def wait_for_kafka(bootstrap: str, timeout: float = 60.0,
                   alive: Callable[[], bool] | None = None, *,
                   config_file: pathlib.Path | None = None, min_brokers: int = 1) -> bool:
    """Polls the cluster's metadata (``kcat -L``, librdkafka like the broker plugin) until at
    least ``min_brokers`` brokers are listed. ``config_file`` holds more librdkafka options
    (security settings), so that no secret goes on a command line."""
    deadline = time.monotonic() + timeout
    extra = ["-F", str(config_file)] if config_file is not None else []
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        probe = subprocess.run(["kcat", *extra, "-L", "-J", "-b", bootstrap, "-m", "2"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            try:
                if len(json.loads(probe.stdout).get("brokers", [])) >= min_brokers:
                    return True
            except ValueError:
                pass
        time.sleep(0.1)  # a bounded poll interval, not a readiness guess
    return False


def find_mock_binary() -> pathlib.Path:
    env = os.environ.get("PRPC_KAFKA_MOCK")
    if env:
        return pathlib.Path(env)
    for preset in ("dev", "ci", "asan"):
        candidate = ROOT / "build" / preset / "tests" / "support" / "kafka" / "prpc-kafka-mock"
        if candidate.exists():
            return candidate
    found = shutil.which("prpc-kafka-mock")
    if found:
        return pathlib.Path(found)
    raise FileNotFoundError("prpc-kafka-mock is not built (set PRPC_KAFKA_MOCK)")


class KafkaMockCluster:
    """prpc-kafka-mock in a child process; fault injection through its stdin."""

    def __init__(self, brokers: int = 1) -> None:
        self._proc = subprocess.Popen([str(find_mock_binary()), "--brokers", str(brokers)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      bufsize=1)
        assert self._proc.stdin is not None and self._proc.stdout is not None  # both pipes
        self._stdin: IO[str] = self._proc.stdin
        self._stdout: IO[str] = self._proc.stdout
        line = self._stdout.readline().strip()
        if not line.startswith("BOOTSTRAP "):
            self.close()
            raise RuntimeError(f"prpc-kafka-mock did not start: {line!r}")
        self.bootstrap = line.split(" ", 1)[1]
        if not wait_for_kafka(self.bootstrap, 20, alive=lambda: self._proc.poll() is None):
            self.close()
            raise RuntimeError(f"the mock cluster at {self.bootstrap} does not answer")

    def command(self, line: str) -> str:
        self._stdin.write(line + "\n")
        self._stdin.flush()
        return self._stdout.readline().strip()

    def _ok(self, line: str) -> None:
        answer = self.command(line)
        if answer != "ok":
            raise RuntimeError(f"prpc-kafka-mock: {line}: {answer}")

    def create_topic(self, name: str, partitions: int = 4) -> None:
        self._ok(f"topic {name} {partitions}")

    def create_queue_topics(self, queue: str, partitions: int = 4) -> None:
        for t in queue_topics(queue):
            self.create_topic(t, partitions)

    def broker_down(self, broker: int = -1) -> None:
        self._ok(f"down {broker}")

    def broker_up(self, broker: int = -1) -> None:
        self._ok(f"up {broker}")

    def set_rtt(self, broker: int, ms: int) -> None:
        self._ok(f"rtt {broker} {ms}")

    def push_errors(self, api: str, error: str, count: int = 1) -> None:
        self._ok(f"error {api} {error} {count}")

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._stdin.close()
                self._proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                self._proc.kill()
                self._proc.wait()


def kafka_classpath() -> str:
    env = os.environ.get("PRPC_KAFKA_CLASSPATH")
    if env:
        return env
    out = subprocess.run([str(SUPPORT / "kafka-classpath.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


class KafkaServer:
    """A real Apache Kafka broker (KRaft, broker and controller in one JVM), restartable in
    place on the same ports and data."""

    def __init__(self) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="prpc-kafka-"))
        self.classpath = kafka_classpath()
        port, controller = free_port(), free_port()
        while controller == port:
            controller = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        self.log_file = self.dir / "kafka.log"
        (self.dir / "server.properties").write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
            "num.network.threads=2",
            "num.io.threads=2",
            "background.threads=2",
            "log.segment.bytes=16777216",
        ]) + "\n")
        (self.dir / "log4j.properties").write_text("\n".join([
            "log4j.rootLogger=WARN, file",
            "log4j.appender.file=org.apache.log4j.FileAppender",
            f"log4j.appender.file.File={self.log_file}",
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
        ]) + "\n")
        cluster_id = _cluster_id()
        subprocess.run(["java", "-cp", self.classpath, "kafka.tools.StorageTool", "format",
                        "-t", cluster_id, "-c", str(self.dir / "server.properties")],
                       check=True, capture_output=True, timeout=120)
        self._proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        out = open(self.dir / "stdout.log", "ab")
        proc = self._proc = subprocess.Popen(
            ["java", "-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
             f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
             f"-Dkafka.logs.dir={self.dir / 'logs'}", "-cp", self.classpath, "kafka.Kafka",
             str(self.dir / "server.properties")],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        if not wait_for_kafka(self.bootstrap, 120, alive=lambda: proc.poll() is None):
            tail = self.log_file.read_text()[-4000:] if self.log_file.exists() else ""
            self.stop()
            raise RuntimeError(f"Apache Kafka did not start at {self.bootstrap}:\n{tail}")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def kafka_mock() -> Iterator[KafkaMockCluster]:
    cluster = KafkaMockCluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[KafkaServer]:
    server = KafkaServer()
    try:
        yield server
    finally:
        server.close()


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, never starting
    with '-' (the format tool would take it for an option: 1 start in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
