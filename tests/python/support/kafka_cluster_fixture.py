"""pytest fixture: a replicated Apache Kafka 3.9.1 cluster: three KRaft nodes, each broker and
controller in one JVM (a 3-voter quorum that survives the loss of one node), on free loopback
ports, with replication factor 3 and ``min.insync.replicas=2`` for every topic by default.

The Python counterpart of tests/support/kafka/kafka_cluster.{hpp,cpp}:

    from kafka_cluster_fixture import kafka_cluster  # noqa: F401

    def test_something(kafka_cluster):
        kafka_cluster.create_topic("t")                  # 3 partitions, RF 3, min ISR 2
        leader = kafka_cluster.leader_of("t", 0)         # a node id, 1..3
        kafka_cluster.kill(leader)                       # SIGKILL
        kafka_cluster.wait_for_leaders("t", min_isr=2)
        kafka_cluster.start(leader)
        kafka_cluster.wait_for_full_isr("t")

Metadata comes from kcat (librdkafka, like the broker plugin); topics are created with
kafka-python's admin client.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence

import pytest

with warnings.catch_warnings():
    # kafka-python reads its protocol schemas with importlib.resources.read_text, which warns
    # (DeprecationWarning) on import; pytest turns warnings into errors. Later imports of
    # kafka find it loaded.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import errors as kafka_errors
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError

from kafka_fixture import _cluster_id, kafka_classpath, queue_topics, wait_for_kafka
from service_process import (
    file_tail,
    free_port,
    kill_process,
    remove_unless_failed,
    start_process,
    stop_process,
    wait_until,
)

# Small heaps: the test machine has 2 cores and other builds; a test broker holds little.
JVM_OPTIONS = ["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]
# The format tool is short-lived: the client compiler only.
FORMAT_JVM_OPTIONS = ["-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


@dataclasses.dataclass
class PartitionState:
    partition: int
    leader: int  # node id, -1 when none
    replicas: list[int]
    isr: list[int]


def write_log4j(path: pathlib.Path, log_file: pathlib.Path,
                info_loggers: Sequence[str] = ()) -> None:
    lines = [
        "log4j.rootLogger=WARN, file",
        "log4j.appender.file=org.apache.log4j.FileAppender",
        f"log4j.appender.file.File={log_file}",
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
        "log4j.logger.kafka.server.KafkaServer=INFO",
        "log4j.logger.kafka.server.BrokerServer=INFO",
    ] + [f"log4j.logger.{name}=INFO" for name in info_loggers]
    path.write_text("\n".join(lines) + "\n")


def format_storage(classpath: str, cluster_id: str, properties: pathlib.Path,
                   extra_args: Sequence[str] = ()) -> subprocess.Popen:
    """Starts ``kafka.tools.StorageTool format`` for one node (does not wait)."""
    log = properties.parent / "format.log"
    return start_process(["java", *FORMAT_JVM_OPTIONS, "-cp", classpath,
                          "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                          str(properties), *extra_args], log)


def finish_format(proc: subprocess.Popen, properties: pathlib.Path) -> None:
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        kill_process(proc)
        code = -1
    if code != 0:
        raise RuntimeError(f"kafka StorageTool format failed ({code}):\n"
                           + file_tail(properties.parent / "format.log"))


def start_broker(classpath: str, directory: pathlib.Path) -> subprocess.Popen:
    return start_process(
        ["java", *JVM_OPTIONS, f"-Dlog4j.configuration=file:{directory / 'log4j.properties'}",
         f"-Dkafka.logs.dir={directory / 'logs'}", "-cp", classpath, "kafka.Kafka",
         str(directory / "server.properties")],
        directory / "stdout.log")


def metadata(bootstrap: str, config_file: pathlib.Path | None = None,
             timeout: float = 2.0) -> dict | None:
    """``kcat -L -J``: brokers, topics, partitions with leader, replicas and ISR (all topics:
    naming one could auto-create it)."""
    extra = ["-F", str(config_file)] if config_file is not None else []
    probe = subprocess.run(["kcat", *extra, "-L", "-J", "-b", bootstrap, "-m", str(timeout)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return None
    try:
        return json.loads(probe.stdout)
    except ValueError:
        return None


def topic_state(md: dict | None, topic: str) -> list[PartitionState]:
    for t in (md or {}).get("topics", []):
        if t.get("topic") == topic and not t.get("error"):
            return sorted((PartitionState(partition=p["partition"], leader=p.get("leader", -1),
                                          replicas=[r["id"] for r in p.get("replicas", [])],
                                          isr=[r["id"] for r in p.get("isrs", [])])
                           for p in t.get("partitions", [])), key=lambda s: s.partition)
    return []


class _Node:
    def __init__(self, node_id: int, directory: pathlib.Path, port: int,
                 controller_port: int) -> None:
        self.id = node_id
        self.dir = directory
        self.port = port
        self.controller_port = controller_port
        self.proc: subprocess.Popen | None = None


class KafkaCluster:
    """Three (``brokers``) Kafka JVMs; started by the constructor, killed by close()."""

    def __init__(self, directory: pathlib.Path, *, brokers: int = 3,
                 default_partitions: int = 3, replication_factor: int = 3,
                 min_insync_replicas: int = 2, session_timeout_ms: int = 3000,
                 extra_properties: Sequence[str] = ()) -> None:
        if shutil.which("java") is None or shutil.which("kcat") is None:
            pytest.skip("java or kcat is not installed")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.classpath = kafka_classpath()
        self.default_partitions = default_partitions
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas
        taken: set[int] = set()
        self._nodes: list[_Node] = []
        for i in range(1, brokers + 1):
            port = free_port(taken)
            controller = free_port(taken | {port})
            taken |= {port, controller}
            node = _Node(i, self.dir / f"node{i}", port, controller)
            node.dir.mkdir(exist_ok=True)
            self._nodes.append(node)
        self.bootstrap = ",".join(f"127.0.0.1:{n.port}" for n in self._nodes)
        voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in self._nodes)
        rf, min_isr = replication_factor, min_insync_replicas
        for n in self._nodes:
            (n.dir / "server.properties").write_text("\n".join([
                "process.roles=broker,controller",
                f"node.id={n.id}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:"
                f"{n.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{n.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={n.dir / 'data'}",
                f"num.partitions={default_partitions}",
                f"default.replication.factor={rf}",
                f"min.insync.replicas={min_isr}",
                "unclean.leader.election.enable=false",
                "auto.create.topics.enable=true",
                f"offsets.topic.replication.factor={rf}",
                "offsets.topic.num.partitions=3",
                f"transaction.state.log.replication.factor={rf}",
                f"transaction.state.log.min.isr={min(min_isr, rf)}",
                "transaction.state.log.num.partitions=3",
                "group.initial.rebalance.delay.ms=0",
                "group.min.session.timeout.ms=1000",
                # A SIGKILLed broker is fenced (and loses its leaderships) after this long.
                "broker.heartbeat.interval.ms=500",
                f"broker.session.timeout.ms={session_timeout_ms}",
                "num.network.threads=2",
                "num.io.threads=2",
                "background.threads=2",
                "num.replica.fetchers=1",
                "log.segment.bytes=16777216",
                *extra_properties,
            ]) + "\n")
            write_log4j(n.dir / "log4j.properties", n.dir / "kafka.log")
        try:
            cluster_id = _cluster_id()
            formats = [format_storage(self.classpath, cluster_id, n.dir / "server.properties")
                       for n in self._nodes]
            for n, proc in zip(self._nodes, formats, strict=True):
                finish_format(proc, n.dir / "server.properties")
            for n in self._nodes:
                n.proc = start_broker(self.classpath, n.dir)
            all_alive = lambda: all(self.running(n.id) for n in self._nodes)  # noqa: E731
            if not wait_for_kafka(self.bootstrap, 120, all_alive, min_brokers=brokers):
                raise RuntimeError("the Kafka cluster did not form:\n"
                                   + "".join(file_tail(n.dir / "kafka.log") for n in self._nodes))
        except BaseException:
            self.close()
            raise

    # ---- addresses -----------------------------------------------------------------------

    @property
    def node_ids(self) -> list[int]:
        return [n.id for n in self._nodes]

    def _node(self, node_id: int) -> _Node:
        if not 1 <= node_id <= len(self._nodes):
            raise ValueError(f"no Kafka node {node_id}")
        return self._nodes[node_id - 1]

    def running_bootstrap(self) -> str:
        """The bootstrap list without the nodes that are down (kafka-python 3.0.12 leaks a
        socket, a ResourceWarning, each time a connection to a dead broker is refused)."""
        return ",".join(self.broker_address(n.id) for n in self._nodes if self.running(n.id))

    def broker_address(self, node_id: int) -> str:
        return f"127.0.0.1:{self._node(node_id).port}"

    def log_file(self, node_id: int) -> pathlib.Path:
        return self._node(node_id).dir / "kafka.log"

    # ---- faults --------------------------------------------------------------------------

    def running(self, node_id: int) -> bool:
        proc = self._node(node_id).proc
        return proc is not None and proc.poll() is None

    def kill(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown; leaderships move once the controller fences it."""
        kill_process(self._node(node_id).proc)

    def stop(self, node_id: int) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after 30 s."""
        stop_process(self._node(node_id).proc, 30)

    def start(self, node_id: int, timeout: float = 120) -> None:
        """Starts a stopped or killed node again (same id, ports, data) and waits until it
        answers a metadata request itself and lists itself (registered, unfenced)."""
        node = self._node(node_id)
        if self.running(node_id):
            return
        proc = node.proc = start_broker(self.classpath, node.dir)

        def back() -> bool:
            if proc.poll() is not None:
                return True
            md = metadata(self.broker_address(node_id))
            return md is not None and md.get("originating_broker", {}).get("id") == node_id \
                and any(b.get("id") == node_id for b in md.get("brokers", []))

        if not wait_until(back, timeout, 0.1) or proc.poll() is not None:
            raise RuntimeError(f"Kafka node {node_id} did not come back:\n"
                               + file_tail(node.dir / "kafka.log")
                               + file_tail(node.dir / "stdout.log"))

    def restart(self, node_id: int) -> None:
        self.stop(node_id)
        self.start(node_id)

    # ---- topics --------------------------------------------------------------------------

    def admin(self) -> KafkaAdminClient:
        """kafka-python's admin client for this cluster (close it)."""
        return KafkaAdminClient(bootstrap_servers=self.bootstrap.split(","),
                                request_timeout_ms=30000)

    def create_topic(self, name: str, partitions: int | None = None,
                     replication_factor: int | None = None,
                     configs: Mapping[str, str] | None = None) -> None:
        """CreateTopics; min.insync.replicas comes from the cluster unless ``configs`` sets
        it. Waits until every running broker shows leaders for it."""
        rf = replication_factor or self.replication_factor
        topic_configs = {"min.insync.replicas": str(min(self.min_insync_replicas, rf))}
        topic_configs.update(configs or {})
        # Just after start-up an admin client may learn the controller's id before its address
        # (UnknownBrokerIdError): try again with a fresh client, for a bounded time.
        deadline = time.monotonic() + 60
        while True:
            admin = self.admin()
            try:
                admin.create_topics([NewTopic(name, partitions or self.default_partitions, rf,
                                              topic_configs=topic_configs)])
                break
            except kafka_errors.TopicAlreadyExistsError:
                break  # an earlier attempt got through before its answer was lost
            except (kafka_errors.UnknownBrokerIdError, kafka_errors.NodeNotReadyError,
                    kafka_errors.KafkaConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # a retry's pace, not a readiness wait
            finally:
                admin.close()
        self.wait_for_leaders(name, min(self.min_insync_replicas, rf))

    def create_queue_topics(self, queue: str, partitions: int | None = None) -> None:
        for t in queue_topics(queue):
            self.create_topic(t, partitions)

    def topic_config(self, topic: str) -> dict[str, str]:
        """The topic's settings as the brokers report them (DescribeConfigs, all of them)."""
        admin = self.admin()
        try:
            deadline = time.monotonic() + 15
            while True:  # a broker may not know a topic created a moment ago
                error = ""
                try:
                    result = admin.describe_configs(
                        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
                    # {"topic": {name: {key: {"value": ..., "config_source": ...}}}}
                    entries = result.get("topic", {}).get(topic)
                    if entries is not None:
                        return {k: v["value"] or "" for k, v in entries.items()}
                except KafkaError as e:
                    error = str(e)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"DescribeConfigs {topic} failed {error}")
                time.sleep(0.1)
        finally:
            admin.close()

    def describe(self, topic: str) -> list[PartitionState]:
        """The topic's partitions as some broker's metadata shows them now."""
        return topic_state(metadata(self.bootstrap), topic)

    def leader_of(self, topic: str, partition: int) -> int:
        for p in self.describe(topic):
            if p.partition == partition:
                return p.leader
        return -1

    def partition_problem(self, topic: str, min_isr: int = 1, full: bool = False) -> str:
        """Why the topic is not served as asked, or "". Every running broker is asked itself:
        right after a change, their metadata caches differ."""
        alive = {n.id for n in self._nodes if self.running(n.id)}
        for n in self._nodes:
            if n.id not in alive:
                continue
            who = f"broker {n.id}: "
            md = None
            for _ in range(20):
                md = metadata(self.broker_address(n.id))
                if md and md.get("originating_broker", {}).get("id") == n.id:
                    break
                md = None
            if md is None:
                return who + "no metadata answer"
            parts = topic_state(md, topic)
            if not parts:
                return who + f"no topic {topic}"
            for p in parts:
                where = f"{who}{topic}[{p.partition}]: "
                if p.leader not in alive:
                    return where + f"leader {p.leader} is not running"
                in_sync = len([r for r in p.isr if r in alive])
                if in_sync < min_isr:
                    return where + f"{in_sync} running in-sync replicas"
                if full and len(p.isr) != len(p.replicas):
                    return where + f"ISR {len(p.isr)} of {len(p.replicas)} replicas"
        return ""

    def wait_for_leaders(self, topic: str, min_isr: int = 1, timeout: float = 60) -> None:
        """Every partition has a running leader and ``min_isr`` running in-sync replicas, on
        every running broker's metadata."""
        if not wait_until(lambda: not self.partition_problem(topic, min_isr), timeout, 0.1):
            raise RuntimeError("Kafka: " + self.partition_problem(topic, min_isr))

    def wait_for_full_isr(self, topic: str, timeout: float = 60) -> None:
        """Every partition's ISR holds all its replicas again."""
        if not wait_until(lambda: not self.partition_problem(topic, 1, True), timeout, 0.1):
            raise RuntimeError("Kafka: " + self.partition_problem(topic, 1, True))

    def close(self) -> None:
        # SIGKILL: nothing to keep, and a controlled shutdown of the last nodes waits for a
        # quorum that is leaving too.
        for n in self._nodes:
            kill_process(n.proc)


@pytest.fixture
def kafka_cluster(tmp_path: pathlib.Path,
                  request: pytest.FixtureRequest) -> Iterator[KafkaCluster]:
    """A fresh 3-node Kafka cluster for one test (RF 3, min.insync.replicas=2)."""
    failed_before = request.session.testsfailed
    cluster = KafkaCluster(tmp_path / "kafka-cluster")
    try:
        yield cluster
    finally:
        cluster.close()
        remove_unless_failed(request.session, cluster.dir, failed_before)
