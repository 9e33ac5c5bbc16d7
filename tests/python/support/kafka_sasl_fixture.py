"""pytest fixture: one Apache Kafka 3.9.1 KRaft node whose only broker listener is SASL_SSL
with SCRAM-SHA-512.

The fixture makes a CA and a broker certificate (SAN IP:127.0.0.1 and DNS:localhost) with
openssl, the broker's PKCS12 keystore (openssl) and truststore (keytool), and creates the SCRAM
users when it formats the storage (StorageTool ``--add-scram``): the client user, and one the
broker uses to talk to itself over the same listener.

The Python counterpart of tests/support/kafka/kafka_sasl_ssl.{hpp,cpp}:

    from kafka_sasl_fixture import kafka_sasl_ssl  # noqa: F401

    def test_something(kafka_sasl_ssl):
        options = kafka_sasl_ssl.client_config()          # librdkafka option names
        kw = kafka_sasl_ssl.kafka_python_config()         # kafka-python keyword arguments
        KafkaProducer(**kw)
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from kafka_cluster_fixture import finish_format, format_storage, start_broker, write_log4j
from kafka_fixture import _cluster_id, kafka_classpath, wait_for_kafka
from service_process import (
    file_tail,
    free_port,
    kill_process,
    remove_unless_failed,
    run_program,
    stop_process,
)

_SCRAM_FORBIDDEN = re.compile(r'[,\[\]="\\\s]')


class KafkaSaslSslServer:
    """A SASL_SSL Kafka broker; started by the constructor, killed by close()."""

    def __init__(self, directory: pathlib.Path, *, user: str = "alice",
                 password: str | None = None) -> None:
        for tool in ("java", "kcat", "openssl", "keytool"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password or secrets.token_hex(12)
        for what, value in (("user", self.user), ("password", self.password)):
            # StorageTool's --add-scram value is [name=...,password=...]: these would break it.
            if not value or _SCRAM_FORBIDDEN.search(value):
                raise ValueError(f"the {what} must be non-empty, without , [ ] = \" \\ or spaces")
        self._store_password = secrets.token_hex(12)
        self._broker_password = secrets.token_hex(12)
        self.classpath = kafka_classpath()
        self.log_file = self.dir / "kafka.log"
        self.ca_file = self.dir / "ca.pem"
        self._proc: subprocess.Popen | None = None
        self._make_keys()
        port = free_port()
        controller = free_port({port})
        self.bootstrap = f"127.0.0.1:{port}"
        d = self.dir
        (d / "server.properties").write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            # The controller listener is PLAINTEXT: KRaft controllers cannot use SCRAM (its
            # credentials live in the metadata the controller serves). Clients never see it.
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name=SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="prpc-broker" password="{self._broker_password}";',
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={d / 'broker.p12'}",
            f"ssl.keystore.password={self._store_password}",
            f"ssl.key.password={self._store_password}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.location={d / 'truststore.p12'}",
            f"ssl.truststore.password={self._store_password}",
            "ssl.endpoint.identification.algorithm=https",
            f"log.dirs={d / 'data'}",
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
        # The Selector logs each failed authentication at INFO: failed_authentications().
        write_log4j(d / "log4j.properties", self.log_file,
                    ["org.apache.kafka.common.network.Selector"])
        # kcat reads the client's options from a file: no secret on a command line.
        self._client_file = d / "client.properties"
        fd = os.open(self._client_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in self.client_config().items()))
        try:
            scram = [f"SCRAM-SHA-512=[name=prpc-broker,password={self._broker_password}]",
                     f"SCRAM-SHA-512=[name={self.user},password={self.password}]"]
            finish_format(format_storage(self.classpath, _cluster_id(), d / "server.properties",
                                         ["--add-scram", scram[0], "--add-scram", scram[1]]),
                          d / "server.properties")
            self.start()
        except BaseException:
            self.close()
            raise

    # ---- client settings -----------------------------------------------------------------

    def client_config(self, user: str | None = None,
                      password: str | None = None) -> dict[str, str]:
        """librdkafka options for a client (the fixture's user unless others are given)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": user if user is not None else self.user,
            "sasl.password": password if password is not None else self.password,
            "ssl.ca.location": str(self.ca_file),
            # The certificate names 127.0.0.1: the host name is checked.
            "ssl.endpoint.identification.algorithm": "https",
        }

    def kafka_python_config(self, user: str | None = None,
                            password: str | None = None) -> dict[str, object]:
        """The same as kafka-python keyword arguments."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user if user is not None else self.user,
            "sasl_plain_password": password if password is not None else self.password,
            "ssl_cafile": str(self.ca_file),
            "ssl_check_hostname": True,
        }

    def failed_authentications(self) -> int:
        """How many failed authentications the broker has logged so far."""
        if not self.log_file.exists():
            return 0
        return self.log_file.read_text(errors="replace").count("Failed authentication with")

    # ---- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Starts the broker (again after stop(): same data, ports and users)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        proc = self._proc = start_broker(self.classpath, self.dir)
        if not wait_for_kafka(self.bootstrap, 120, lambda: proc.poll() is None,
                              config_file=self._client_file):
            tail = file_tail(self.log_file) + file_tail(self.dir / "stdout.log")
            kill_process(proc)
            raise RuntimeError(f"Kafka (SASL_SSL) did not start at {self.bootstrap}:\n{tail}")

    def stop(self) -> None:
        stop_process(self._proc, 30)

    def close(self) -> None:
        kill_process(self._proc)

    # ---- internals -----------------------------------------------------------------------

    def _make_keys(self) -> None:
        d = self.dir
        store_pw = d / "store.pw"
        store_pw.write_text(self._store_password + "\n")
        (d / "broker-ext.cnf").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        # A CA, then a broker key and certificate signed by it (EC keys: quick to make).
        run_program(["openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out",
                     str(self.ca_file), "-days", "7", "-subj", "/CN=prpc-test-ca", "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext",
                     "keyUsage=critical,keyCertSign,cRLSign"])
        run_program(["openssl", "req", *ec, "-keyout", str(d / "broker.key"), "-out",
                     str(d / "broker.csr"), "-subj", "/CN=localhost"])
        run_program(["openssl", "x509", "-req", "-in", str(d / "broker.csr"), "-CA",
                     str(self.ca_file), "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out",
                     str(d / "broker.pem"), "-days", "7", "-extfile", str(d / "broker-ext.cnf")])
        # The broker's keystore (key and chain), and its truststore (the CA, for its own
        # inter-broker client): keytool, since Java trusts only what keytool marks as trusted.
        run_program(["openssl", "pkcs12", "-export", "-in", str(d / "broker.pem"), "-inkey",
                     str(d / "broker.key"), "-certfile", str(self.ca_file), "-name", "broker",
                     "-out", str(d / "broker.p12"), "-passout", f"file:{store_pw}"])
        run_program(["keytool", "-importcert", "-noprompt", "-alias", "prpc-test-ca", "-file",
                     str(self.ca_file), "-keystore", str(d / "truststore.p12"), "-storetype",
                     "PKCS12", "-storepass:file", str(store_pw)])


@pytest.fixture(scope="session")
def kafka_sasl_ssl(tmp_path_factory: pytest.TempPathFactory,
                   request: pytest.FixtureRequest) -> Iterator[KafkaSaslSslServer]:
    """One SASL_SSL broker per session (user ``alice``, a random password)."""
    failed_before = request.session.testsfailed
    server = KafkaSaslSslServer(tmp_path_factory.mktemp("kafka-sasl"))
    try:
        yield server
    finally:
        server.close()
        remove_unless_failed(request.session, server.dir, failed_before)
