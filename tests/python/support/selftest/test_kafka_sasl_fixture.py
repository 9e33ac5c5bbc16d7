"""The SASL_SSL Kafka fixture: the right SCRAM-SHA-512 credentials over TLS (the certificate
checked against the fixture's CA, host name included) produce and consume, with kafka-python
and with librdkafka (kcat); a wrong password is refused by the broker."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka_sasl_fixture import KafkaSaslSslServer
from service_process import wait_until

pytestmark = pytest.mark.kafka

# Makes a kafka-python producer with the options read from stdin; exit status 3 when it is
# refused with a KafkaError.
WRONG_PASSWORD_PRODUCER = """
import json, sys, warnings
warnings.simplefilter("ignore")
from kafka import KafkaProducer
from kafka.errors import KafkaError
try:
    KafkaProducer(bootstrap_timeout_ms=3000, max_block_ms=3000, **json.load(sys.stdin))
except KafkaError as e:
    print(type(e).__name__, e)
    sys.exit(3)
"""


def kcat_config(tmp_path: pathlib.Path, options: dict[str, str]) -> pathlib.Path:
    path = tmp_path / "kcat.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in options.items()))
    return path


def test_client_settings_name_everything_a_client_needs(
        kafka_sasl_ssl: KafkaSaslSslServer) -> None:
    options = kafka_sasl_ssl.client_config()
    assert options["security.protocol"] == "SASL_SSL"
    assert options["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert options["sasl.username"] == "alice"
    assert options["sasl.password"] == kafka_sasl_ssl.password
    assert options["ssl.ca.location"] == str(kafka_sasl_ssl.ca_file)
    assert kafka_sasl_ssl.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    san = subprocess.run(["openssl", "x509", "-in", str(kafka_sasl_ssl.dir / "broker.pem"),
                          "-noout", "-ext", "subjectAltName"], capture_output=True, text=True)
    assert "IP Address:127.0.0.1" in san.stdout


def test_right_credentials_produce_and_consume(kafka_sasl_ssl: KafkaSaslSslServer) -> None:
    kw = kafka_sasl_ssl.kafka_python_config()
    producer = KafkaProducer(acks="all", **kw)
    try:
        for value in (b"one", b"two", b"three"):
            producer.send("prpc_secure_py", value).get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer("prpc_secure_py", auto_offset_reset="earliest",
                             consumer_timeout_ms=20000, group_id="selftest", **kw)
    try:
        got = []
        for record in consumer:
            got.append(record.value)
            if len(got) == 3:
                break
    finally:
        consumer.close()
    assert sorted(got) == [b"one", b"three", b"two"]


def test_librdkafka_options_work_with_kcat(kafka_sasl_ssl: KafkaSaslSslServer,
                                           tmp_path: pathlib.Path) -> None:
    config = kcat_config(tmp_path, kafka_sasl_ssl.client_config())
    produced = subprocess.run(["kcat", "-F", str(config), "-P", "-t", "prpc_secure_kcat"],
                              input="hello\n", capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(["kcat", "-F", str(config), "-C", "-t", "prpc_secure_kcat", "-o",
                               "beginning", "-e", "-q"], capture_output=True, text=True,
                              timeout=60)
    assert consumed.stdout == "hello\n", consumed.stderr


def test_wrong_password_is_refused(kafka_sasl_ssl: KafkaSaslSslServer,
                                   tmp_path: pathlib.Path) -> None:
    before = kafka_sasl_ssl.failed_authentications()
    # In a child: kafka-python leaves sockets open when a constructor fails.
    attempt = subprocess.run(
        [sys.executable, "-c", WRONG_PASSWORD_PRODUCER], capture_output=True, text=True,
        input=json.dumps(kafka_sasl_ssl.kafka_python_config(password="not-the-password")),
        timeout=60)
    assert attempt.returncode == 3, attempt.stdout + attempt.stderr
    # The broker saw the attempt and said no: not a network failure.
    assert wait_until(lambda: kafka_sasl_ssl.failed_authentications() > before, 10)
    config = kcat_config(tmp_path, kafka_sasl_ssl.client_config(password="not-the-password"))
    listed = subprocess.run(["kcat", "-F", str(config), "-L", "-m", "3"], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode != 0
    assert "SASL authentication error" in listed.stderr
