"""A rolling upgrade: clients of the original PRPC, unchanged, calling our servers, and our
clients calling a server of the original. The original's side is played by stand-ins that put
exactly its bytes on the wire (tests/python/compat/original), run with its pinned libraries."""

from __future__ import annotations

import datetime
import sys
import time
import uuid
from pathlib import Path

import pytest

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from kafka_fixture import kafka_server  # noqa: F401 - a session fixture

APP = '''
import datetime, time
from prpc import AppServer

app = AppServer("{TYPE}", "{URL}", "thread", 4, datetime.timedelta(seconds=30), "{QUEUE}")


@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z


@app.decorator_reg_func()
def hello_world():
    return "hello_world"


@app.decorator_reg_func()
def nothing():
    return None


@app.decorator_reg_func()
def when(day):
    return {"day": day, "next": day + datetime.timedelta(days=1)}


@app.decorator_reg_func()
def bad_thing():
    raise ValueError("bad thing")


if __name__ == "__main__":
    app.start()
'''

CALLS = [
    ["summ", [1, 2], {}],
    ["summ", [1, 2], {"z": 10}],
    ["hello_world", [], {}],
    ["nothing", [], {}],
    ["bad_thing", [], {}],
    ["no_such_function", [], {}],
    ["ping", [], {}],
]


def check_answers(answers: list[dict]) -> None:
    by_name: dict[str, list[dict]] = {}
    for a in answers:
        assert a["error"] is None, a
        assert a["done"], f"no answer for {a['func_name']} {a['message_id']}"
        assert a["reply_type"] == "prpc.prpcmessage.PRPCMessage"
        assert a["message_id_type"] == "UUID"
        by_name.setdefault(a["func_name"], []).append(a)
    assert [a["result"] for a in by_name["summ"]] == [3.5, 13]
    assert by_name["hello_world"][0]["result"] == "hello_world"
    assert by_name["nothing"][0]["result"] is None
    assert by_name["nothing"][0]["exception_info"] is None
    assert by_name["bad_thing"][0]["exception_info"] == "ValueError: bad thing"
    assert "func name 'no_such_function' not found in server" in (
        by_name["no_such_function"][0]["exception_info"])
    assert by_name["ping"][0]["result"] == "pong"
    for a in answers:
        assert 0 <= a["time_execution"] < 30


def app_source(kind: str, url: str, queue: str) -> str:
    return APP.replace("{TYPE}", kind).replace("{URL}", url).replace("{QUEUE}", queue)


# ---- Redis ----------------------------------------------------------------------------------


def test_original_client_gets_its_results_from_our_server(start_app, env, original,
                                                          redis_server):
    start_app(APP.replace("{TYPE}", "redis"))
    answers = original.call(env, CALLS)
    check_answers(answers)
    # The request is the original's bytes: jsonpickle 3.3 of its PRPCMessage, the positional
    # arguments a tuple, the id and dates with jsonpickle's tags; we read it as such.
    request = prpc.PRPCMessage.deserialize(answers[0]["request"])
    assert request.func_args == (1, 2)
    assert isinstance(request.message_id, uuid.UUID)
    assert request.date_create_message.tzinfo == datetime.timezone.utc
    assert request.serialize() == answers[0]["request"]  # and write the same bytes
    # It polled prpc_feedback_{q}_{id} and deleted it (GET, then DEL); ours stays.
    store = redis_server.client
    for a in answers:
        assert store.exists(f"prpc_feedback_{env['PRPC_QUEUE_NAME']}_{a['message_id']}") == 0
        assert store.exists(f"prcp_message_feedback_{a['message_id']}") == 1


def test_our_clients_do_not_fill_the_original_key(start_app, env, redis_server):
    start_app(APP.replace("{TYPE}", "redis"))
    task = prpc.call("summ", 1, 2)
    assert task.sync_wait_result_task(datetime.timedelta(seconds=20)) == 3.5
    queue = env["PRPC_QUEUE_NAME"]
    assert redis_server.client.exists(f"prpc_feedback_{queue}_{task.message_id}") == 0
    assert redis_server.client.exists(f"prcp_message_feedback_{task.message_id}") == 1


def test_requests_sent_before_any_server_are_served(env, original, start_app, tmp_path):
    """The original's clients often start first: our group starts at 0, so what they sent
    before the first server existed is served (the original's group started at "$")."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(original.call, env, [["summ", [2, 3], {}]])
        time.sleep(1)  # the stand-in has sent; no server exists yet
        start_app(APP.replace("{TYPE}", "redis"))
        [answer] = pending.result(timeout=90)
    assert answer["done"] and answer["result"] == 5.5


def test_our_client_gets_results_from_an_original_server(env, original, redis_server):
    """An original server stores results only where its own clients poll; our client looks
    there when no reply is pushed (client.stored_reply_poll, 1 s)."""
    original.serve(env)
    started = time.monotonic()
    task = prpc.call("summ", 1, 2)
    assert task.sync_wait_result_task(datetime.timedelta(seconds=20)) == 3.5
    assert time.monotonic() - started < 5
    from prpc.app_client import AwaitableTask
    assert AwaitableTask("hello_world", (), {}).sync_wait_result_task(20) == "hello_world"
    with pytest.raises(prpc.RemoteError) as info:
        prpc.call("no_such_function").sync_wait_result_task(20)
    assert "not found in server" in str(info.value)
    raw = prpc.Client(raw=True)
    try:
        assert raw.call("summ", 2, 2).result(20) == 4.5  # its raw reply has {"hex": ...} ids
    finally:
        raw.close()


# ---- Kafka ----------------------------------------------------------------------------------


@pytest.fixture
def kafka_env(kafka_server, monkeypatch, queue):
    values = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka_server.bootstrap,
              "PRPC_QUEUE_NAME": queue}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    prpc.client.close_shared_clients()


@pytest.mark.kafka
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_original_client_gets_its_results_from_our_kafka_server(kafka_env, original, tmp_path):
    from sdk_fixtures import ServerProcess, wait_until

    path = tmp_path / "kafka_app.py"
    path.write_text(app_source("kafka", kafka_env["PRPC_URL_BROKER"],
                               kafka_env["PRPC_QUEUE_NAME"]))
    server = ServerProcess(path, kafka_env)
    try:
        probe = prpc.Client()

        def answers_ping() -> bool:
            assert server.proc.poll() is None, server.output()
            try:
                return probe.call("ping").sync_wait_result_task(2) == "pong"
            except prpc.ClientTimeOutError:
                return False

        wait_until(answers_ping, 90, "the Kafka server to answer ping")
        # Our own callers keep calling meanwhile, raw ones included: nothing they get pushed
        # on prpc_feedback_{q} may trip the original's client, which decodes every record.
        from concurrent.futures import ThreadPoolExecutor

        raw = prpc.Client(raw=True)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(original.call, kafka_env, CALLS, 0.2, 60)
            while not pending.done():
                assert raw.call("summ", 1, 1).result(30) == 2.5
                assert probe.call("summ", 1, 1).result(30) == 2.5
            answers = pending.result()
        raw.close()
        probe.close()
        check_answers(answers)
    finally:
        server.terminate()


@pytest.mark.kafka
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_our_kafka_client_says_when_the_server_looks_like_the_original(kafka_env, original):
    """Over Kafka an original server writes each reply, without a key, to a random partition of
    prpc_feedback_{q}; our client reads one partition. Replies that land there are taken by the
    message_id inside them; the other calls time out, saying the server looks like the
    original PRPC."""
    client = prpc.Client()  # creates the queue's topics, as an upgraded deployment has them
    try:
        original.serve(kafka_env)
        tasks = [client.call("summ", i, 1) for i in range(40)]
        answered, diagnosed = 0, 0
        deadline = time.monotonic() + 8
        for i, task in enumerate(tasks):
            try:
                left = max(0.0, deadline - time.monotonic())
                assert task.sync_wait_result_task(datetime.timedelta(seconds=left)) == i + 1.5
                answered += 1
            except prpc.ClientTimeOutError as e:
                assert "look like the original PRPC" in str(e), str(e)
                diagnosed += 1
        assert answered + diagnosed == 40
        assert diagnosed > 0, "every reply landed on the client's partition"
    finally:
        client.close()
        original.close()


def test_a_result_the_original_client_deleted_unread_comes_back(start_app, env, redis_server):
    """The original client polls with GET, then an unconditional DEL; a result stored between
    the two is deleted unread. Here that unlucky moment is made to happen: the server stores the
    result again once the client's poll interval has passed."""
    start_app(APP.replace("{TYPE}", "redis"))
    store = redis_server.client
    request = prpc.PRPCMessage("summ", (1, 2), {})  # as the original writes it: no reply_to
    store.xadd(f"prpc_{env['PRPC_QUEUE_NAME']}", {"message": request.serialize()})
    key = f"prpc_feedback_{env['PRPC_QUEUE_NAME']}_{request.message_id}"
    deadline = time.monotonic() + 20
    while not store.exists(key):
        assert time.monotonic() < deadline, "no result stored"
        time.sleep(0.01)
    store.delete(key)  # the DEL that followed a GET which still saw nothing
    found = None
    while found is None and time.monotonic() < deadline:
        found = store.get(key)
        time.sleep(0.1)
    assert found is not None, "the result was lost"
    assert prpc.PRPCMessage.deserialize(found).result == 3.5
