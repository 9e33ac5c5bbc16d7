"""The 3-node Kafka fixture: a topic at replication factor 3 and min.insync.replicas=2 keeps
taking acks=all writes and serving reads while one broker is SIGKILLed, and its ISR is whole
again once the broker is back."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka_cluster_fixture import KafkaCluster

pytestmark = [pytest.mark.kafka, pytest.mark.failover, pytest.mark.slow]


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all",
                             enable_idempotence=True, retries=10, request_timeout_ms=15000)
    try:
        for f in [producer.send(topic, v) for v in values]:
            f.get(timeout=30)
    finally:
        producer.close()


def consume_all(bootstrap: str, topic: str, partitions: int, count: int) -> list[bytes]:
    """Reads every partition from the beginning (assigned: no group coordinator needed)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False,
                             consumer_timeout_ms=20000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out = []
        for record in consumer:
            out.append(record.value)
            if len(out) >= count:
                break
        return out
    finally:
        consumer.close()


def test_replicated_topic_survives_a_killed_broker(kafka_cluster: KafkaCluster) -> None:
    assert kafka_cluster.node_ids == [1, 2, 3]
    assert len(kafka_cluster.bootstrap.split(",")) == 3
    topic = "prpc_selftest"
    kafka_cluster.create_topic(topic)
    parts = kafka_cluster.describe(topic)
    assert len(parts) == 3
    assert all(len(p.replicas) == 3 and len(p.isr) == 3 for p in parts)
    assert kafka_cluster.topic_config(topic)["min.insync.replicas"] == "2"

    first = [f"a{i}".encode() for i in range(100)]
    produce(kafka_cluster.bootstrap, topic, first)

    victim = kafka_cluster.leader_of(topic, 0)
    kafka_cluster.kill(victim)
    kafka_cluster.wait_for_leaders(topic, min_isr=2)
    assert not kafka_cluster.running(victim)
    for p in kafka_cluster.describe(topic):
        assert p.leader != victim
        assert sorted(p.isr) == sorted(n for n in p.replicas if n != victim)
    # acks=all with 2 of 3 in sync still succeeds; nothing written before is lost.
    second = [f"b{i}".encode() for i in range(100)]
    produce(kafka_cluster.running_bootstrap(), topic, second)
    assert sorted(consume_all(kafka_cluster.running_bootstrap(), topic, 3, 200)) == \
        sorted(first + second)

    kafka_cluster.start(victim)
    kafka_cluster.wait_for_full_isr(topic)
    assert all(len(p.isr) == 3 for p in kafka_cluster.describe(topic))
    produce(kafka_cluster.bootstrap, topic, [b"c"])
    assert len(consume_all(kafka_cluster.bootstrap, topic, 3, 201)) == 201
