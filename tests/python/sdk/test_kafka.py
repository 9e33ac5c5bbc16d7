"""The Python SDK over a real Apache Kafka broker: the seed's server with thread and process
workers, generated stubs, and the seed's kafka-python raw example (corrected)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
import uuid

import pytest

import prpc

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "support"))
from kafka_fixture import kafka_server  # noqa: F401 - a session fixture

# kafka-python itself uses deprecated importlib APIs.
pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

APP = '''
import datetime, time
from prpc import AppServer

app = AppServer("kafka", "{URL}", "thread", 4, datetime.timedelta(seconds=100), "{QUEUE}")

@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z

@app.decorator_reg_func()
def hello_world():
    return "hello_world"

@app.decorator_reg_func()
def boom():
    raise KeyError("missing")

if __name__ == "__main__":
    app.start()
'''


@pytest.fixture
def kafka_env(kafka_server, monkeypatch, queue):
    values = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka_server.bootstrap,
              "PRPC_QUEUE_NAME": queue}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    prpc.client.close_shared_clients()


@pytest.fixture
def kafka_app(kafka_env, kafka_server, tmp_path):
    from sdk_fixtures import ServerProcess, wait_until

    path = tmp_path / "kafka_app.py"
    path.write_text(APP.replace("{URL}", kafka_server.bootstrap)
                       .replace("{QUEUE}", kafka_env["PRPC_QUEUE_NAME"]))
    server = ServerProcess(path, kafka_env)
    probe = prpc.Client()

    def answers() -> bool:
        assert server.proc.poll() is None, server.output()
        try:
            return probe.ping(timeout=2) == "pong"
        except prpc.ClientTimeOutError:
            return False

    try:
        wait_until(answers, 120, "the Kafka server to answer ping")
    except BaseException:
        server.terminate()
        raise
    finally:
        probe.close()
    yield server
    output = server.output()
    assert server.terminate() == 0, output


def test_calls_over_kafka(kafka_app):
    with prpc.Client() as c:
        assert c.call("hello_world").result(30) == "hello_world"
        assert c.call("summ", 1, 2).result(60) == 3.5
        with pytest.raises(prpc.RemoteError) as info:
            c.call("boom").result(30)
        assert info.value.remote_type == "KeyError"
        tasks = [c.call("summ", i, 0, z=0) for i in range(200)]
        assert [t.result(60) for t in tasks] == list(range(200))


def test_the_original_api_over_kafka(kafka_app):
    import datetime

    from prpc import ping
    from prpc.app_client import AwaitableTask
    from prpc.support_module.exceptions import ClientTimeOutError, NotFoundFunc

    task = AwaitableTask("summ", (1, 2), {})
    assert task.sync_wait_result_task(datetime.timedelta(seconds=60)) == 3.5
    assert task.is_done_task(update_status=True) and task.get_result() == 3.5
    assert isinstance(task.time_execution, datetime.timedelta)
    assert ping().sync_wait_result_task(datetime.timedelta(seconds=30)) == "pong"
    with pytest.raises(NotFoundFunc):
        AwaitableTask("no_such_function", (), {}).sync_wait_result_task(30)
    with pytest.raises(ClientTimeOutError) as info:
        AwaitableTask("summ", (1, 2), {}).sync_wait_result_task(datetime.timedelta(0))
    assert info.value.timeout == datetime.timedelta(0)


def test_generated_stubs_over_kafka(kafka_app, tmp_path, monkeypatch):
    done = subprocess.run([sys.executable, "-m", "prpc.create_server_func"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("server_func", None)
    server_func = importlib.import_module("server_func")
    assert server_func.summ(1, 2, z=3).sync_wait_result_task(60) == 6
    sys.modules.pop("server_func", None)


def test_seed_raw_example_with_kafka_python(kafka_app, kafka_server, kafka_env):
    from kafka import KafkaConsumer, KafkaProducer

    queue_name = kafka_env["PRPC_QUEUE_NAME"]
    message = {"func_name": "hello_world", "func_args": [], "func_kwargs": {},
               "message_id": str(uuid.uuid4())}
    sent_at = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap)
    # The seed passes a str to send(); kafka-python needs bytes (or a value_serializer).
    producer.send(f"prpc_raw_{queue_name}", json.dumps(message).encode(),
                  key=message["message_id"].encode())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        f"prpc_feedback_raw_{queue_name}",
        bootstrap_servers=kafka_server.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=60000,
    )
    found = None
    for record in consumer:  # the seed's loop, reading record.value (not the record itself)
        reply = json.loads(record.value)
        if message["message_id"] == reply["message_id"]:
            found = reply
            break
    consumer.close()
    assert found is not None
    assert found["result"] == "hello_world"
    assert found["exception_info"] is None
    assert record.timestamp >= sent_at - 1000  # why the seed suggests seeking by timestamp
