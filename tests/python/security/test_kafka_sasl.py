"""PRPC over a real Apache Kafka whose only listener is SASL_SSL with SCRAM-SHA-512 (the
fixture makes the CA and the broker's certificate): librdkafka's options pass through from the
configuration to prpc-host, the Python AppServer and client, and every `prpc` command; a wrong
password fails at once and is never shown."""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
from collections.abc import Iterator

import pytest
from conftest import LOG_DIR, Service, run, secret, wait_serving, write_app
from service_process import wait_until

import prpc

pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

APP = """
from prpc import AppServer

app = AppServer("kafka", "{url}", "thread", 2, name_queue="{queue}", options={options!r})

@app.decorator_reg_func()
def hello(name):
    return "hello " + name

if __name__ == "__main__":
    app.start()
"""


@pytest.fixture(scope="module")
def kafka() -> Iterator[object]:
    from kafka_sasl_fixture import KafkaSaslSslServer  # imports kafka-python quietly

    directory = pathlib.Path(tempfile.mkdtemp(prefix="kafka-sasl-", dir=LOG_DIR))
    server = KafkaSaslSslServer(directory, password=secret("kafka-password"))
    try:
        yield server
    finally:
        server.close()


def broker_options(kafka, password: str | None = None) -> dict[str, str]:
    """The fixture's librdkafka options as PRPC configuration keys (broker.options.*)."""
    options = kafka.client_config(password=password)
    options.pop("bootstrap.servers")
    # Fewer retries for the wrong-password case; harmless otherwise.
    return {f"broker.options.{k}": v for k, v in options.items()}


def as_environment(options: dict[str, str]) -> dict[str, str]:
    """PRPC_<KEY> with "__" between levels: broker.options.sasl.password is
    PRPC_BROKER__OPTIONS__SASL__PASSWORD."""
    return {"PRPC_" + k.upper().replace(".", "__"): v for k, v in options.items()}


def test_prpc_host_python_and_every_command(kafka, bin_dir, queue, services, tmp_path):
    options = broker_options(kafka)
    env = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka.bootstrap,
           "PRPC_QUEUE_NAME": queue}
    # prpc-host reads the options from its configuration file...
    config = tmp_path / "prpc.toml"
    config.write_text('[functions]\nplugins = ["example"]\n[broker.options]\n' + "".join(
        f'"{k.removeprefix("broker.options.")}" = "{v}"\n' for k, v in options.items()))
    config.chmod(0o600)
    host = Service([str(bin_dir / "prpc-host"), "--config", str(config)], env, tmp_path,
                   "kafka-host")
    services.append(host)
    # ... the Python client from its options ...
    with prpc.Client("kafka", kafka.bootstrap, queue, raw=True, options=options) as client:
        wait_serving(client, host, timeout=120)
        assert client.call("summ", 1, 2, z=10).result(30) == 13
    # ... and the prpc commands from the environment.
    cli_env = {**env, **as_environment(options)}
    prpc_cli = str(bin_dir / "prpc")
    call = run([prpc_cli, "call", "summ", "[1, 2]"], cli_env, name="kafka-call", timeout=120)
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout) == 3.5
    funcs = run([prpc_cli, "funcs"], cli_env, name="kafka-funcs", timeout=120)
    assert funcs.returncode == 0, funcs.stderr
    assert "hello_world" in funcs.stdout
    stats = run([prpc_cli, "stats", "--json"], cli_env, name="kafka-stats", timeout=120)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["queue"] == queue
    letters = run([prpc_cli, "dead-letters", "--json"], cli_env, name="kafka-dead", timeout=120)
    assert letters.returncode == 0, letters.stderr
    assert json.loads(letters.stdout) == []
    # gen-stubs runs Python's create_server_func: the options of a configuration file reach it.
    stubs = run([prpc_cli, "--config", str(config), "gen-stubs", "--output",
                 str(tmp_path / "server_func.py")], env, name="kafka-gen-stubs", cwd=tmp_path,
                timeout=120)
    assert stubs.returncode == 0, stubs.stdout + stubs.stderr
    assert "def hello_world(" in (tmp_path / "server_func.py").read_text()

    # `prpc-host --check` lists the options with the password masked.
    check = run([str(bin_dir / "prpc-host"), "--check", "--config", str(config)], env,
                name="kafka-check")
    assert check.returncode == 0, check.stderr
    assert "sasl.mechanisms = SCRAM-SHA-512" in check.stdout
    assert "sasl.password = ********" in check.stdout
    assert kafka.password not in check.stdout + check.stderr


def test_python_app_server(kafka, queue, services, tmp_path):
    options = broker_options(kafka)
    app = write_app(tmp_path, APP.format(url=kafka.bootstrap, queue=queue, options=options))
    server = Service([sys.executable, str(app)], {}, tmp_path, "kafka-app")
    services.append(server)
    with prpc.Client("kafka", kafka.bootstrap, queue, options=options) as client:
        wait_serving(client, server, timeout=120)
        tasks = [client.call("hello", str(i)) for i in range(10)]
        assert [t.result(30) for t in tasks] == [f"hello {i}" for i in range(10)]


def test_a_wrong_password_fails_and_is_not_shown(kafka, bin_dir, queue):
    wrong = secret("kafka-password")
    failed_before = kafka.failed_authentications()
    options = broker_options(kafka, password=wrong)
    env = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka.bootstrap,
           "PRPC_QUEUE_NAME": queue, "PRPC_BROKER__OPTIONS__CONNECT_TIMEOUT": "5s",
           **as_environment(options)}
    out = run([str(bin_dir / "prpc"), "stats"], env, name="kafka-wrong-password", timeout=120)
    assert out.returncode != 0
    error = out.stderr.splitlines()[-1]
    assert error.startswith("prpc: error: "), out.stderr
    assert "SASL authentication" in error or "Authentication failed" in error, error
    assert wrong not in out.stdout + out.stderr
    assert wait_until(lambda: kafka.failed_authentications() > failed_before, 30)
    with pytest.raises(prpc.PRPCError) as raised:
        prpc.Client("kafka", kafka.bootstrap, queue,
                    options={**options, "broker.options.connect_timeout": "5s"})
    assert wrong not in str(raised.value)
