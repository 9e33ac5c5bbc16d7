"""Calls against a server process over a real redis-server: every worker type, timeouts,
failures of every kind, and the AwaitableTask API."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import threading
import uuid

import pytest

import prpc

APP = '''
import asyncio, datetime, os, time, decimal, uuid
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 4, datetime.timedelta(seconds=2), "{QUEUE}")

@app.decorator_reg_func()
def add(a, b=1):
    return a + b

@app.decorator_reg_func()
def nothing():
    return None

@app.decorator_reg_func()
def fail(message=""):
    raise ValueError(message)

@app.decorator_reg_func()
def custom_fail():
    class Broken(Exception):
        pass
    raise Broken("custom")

@app.decorator_reg_func()
def unencodable():
    import threading
    return threading.Lock()  # jsonpickle has no form for a lock

@app.decorator_reg_func()
def sleep_thread(seconds):
    time.sleep(seconds)
    return seconds

@app.decorator_reg_func("process")
def pid():
    return os.getpid()

@app.decorator_reg_func("process")
def sleep_process(seconds):
    time.sleep(seconds)
    return os.getpid()

@app.decorator_reg_func("process")
def sleep_marked(seconds, path):
    open(path, "w").write(str(os.getpid()))
    time.sleep(seconds)
    return "woke"

@app.decorator_reg_func("process")
def die():
    os._exit(3)

@app.decorator_reg_func("async")
async def sleep_async(seconds):
    await asyncio.sleep(seconds)
    return "slept"

@app.decorator_reg_func("async")
async def cancelled_marker(path):
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        open(path, "w").write("cancelled")
        raise

@app.decorator_reg_func()
def values(x):
    return {"echo": x, "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "amount": decimal.Decimal("1.10"), "id": uuid.UUID(int=1), "pair": (1, 2)}

if __name__ == "__main__":
    app.start()
'''


@pytest.fixture
def server(start_app):
    return start_app(APP)


def test_thread_worker_returns_values(server, client):
    assert client.call("add", 1, 2).result(10) == 3
    assert client.call("add", 41).result(10) == 42
    assert client.call("add", a="x", b="y").result(10) == "xy"


def test_python_values_cross_intact(server, client):
    value = {"nested": [1, (2, 3), {4, 5}], "bytes": b"\x00\xff", "big": 2**100, "f": 0.1}
    out = client.call("values", value).result(10)
    assert out["echo"] == value
    assert out["when"] == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert str(out["amount"]) == "1.10"
    assert out["id"] == uuid.UUID(int=1)
    assert out["pair"] == (1, 2)


def test_none_is_a_success(server, client):
    task = client.call("nothing")
    assert task.result(10) is None
    assert task.message.exception_info is None


def test_remote_exception_carries_type_message_and_traceback(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("fail", "bad input").result(10)
    err = info.value
    assert err.remote_type == "ValueError"
    assert err.remote_message == "bad input"
    assert "raise ValueError(message)" in err.remote_traceback
    assert str(err) == "ValueError: bad input"


def test_empty_exception_message_is_still_reported(server, client):
    task = client.call("fail")
    with pytest.raises(prpc.RemoteError) as info:
        task.result(10)
    assert info.value.remote_type == "ValueError"
    assert task.message.exception_info == "ValueError: "


def test_unknown_function(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("does_not_exist").result(10)
    assert info.value.remote_type == "UnknownFunctionError"


def test_wrong_arguments(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("add").result(10)
    assert info.value.remote_type == "TypeError"
    assert "missing 1 required positional argument: 'a'" in info.value.remote_message
    with pytest.raises(prpc.RemoteError) as info:
        client.call("add", 1, c=3).result(10)
    assert "unexpected keyword argument 'c'" in info.value.remote_message


def test_result_the_codec_cannot_encode(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("unencodable").result(10)
    assert info.value.remote_type == "EncodeError"
    assert client.call("add", 1, 1).result(10) == 2  # still serving


def test_thread_timeout(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("sleep_thread", 5).result(15)
    assert info.value.remote_type == "TimeoutError"
    assert client.call("add", 1, 1).result(10) == 2


def test_process_worker_runs_in_other_processes(server, client):
    pids = {client.call("pid").result(30) for _ in range(8)}
    assert os.getpid() not in pids
    assert server.proc.pid not in pids


def test_process_timeout_kills_and_replaces_the_worker(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("sleep_process", 10).result(20)
    assert info.value.remote_type == "TimeoutError"
    assert client.call("sleep_process", 0).result(30) > 0


def test_process_worker_killed_mid_call(server, client, tmp_path):
    marker = tmp_path / "running.pid"
    task = client.call("sleep_marked", 30, str(marker))
    from sdk_fixtures import wait_until
    wait_until(lambda: marker.exists() and marker.read_text(), 30, "the call to start")
    worker = int(marker.read_text())
    assert worker not in (os.getpid(), server.proc.pid)
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(prpc.RemoteError) as info:
        task.result(20)
    assert info.value.remote_type == "WorkerLostError"
    assert str(worker) in info.value.remote_message
    assert client.call("pid").result(30) > 0  # replaced


def test_process_worker_that_exits(server, client):
    with pytest.raises(prpc.RemoteError) as info:
        client.call("die").result(20)
    assert info.value.remote_type == "WorkerLostError"
    assert client.call("pid").result(30) > 0


def test_async_worker(server, client):
    assert client.call("sleep_async", 0.01).result(10) == "slept"


def test_async_timeout_cancels_the_coroutine(server, client, tmp_path):
    marker = tmp_path / "cancelled.txt"
    with pytest.raises(prpc.RemoteError) as info:
        client.call("cancelled_marker", str(marker)).result(15)
    assert info.value.remote_type == "TimeoutError"
    from sdk_fixtures import wait_until
    wait_until(marker.exists, 10, "the coroutine to see its cancellation")


def test_client_side_wait_timeout(server, client):
    task = client.call("sleep_thread", 1)
    with pytest.raises(prpc.ClientTimeOutError):
        task.sync_wait_result_task(0.05)
    assert not task.is_done_task()
    with pytest.raises(prpc.ResultNotReadyError, match="task in process"):
        task.get_result()
    assert task.time_execution is None
    assert task.sync_wait_result_task(10) == 1  # the call itself goes on
    assert task.get_result() == 1


def test_awaitable_task_api(server, client):
    async def main():
        assert await client.call("add", 2, 3) == 5
        assert await client.call("add", 2).async_wait_result_task(10) == 3
        with pytest.raises(prpc.ClientTimeOutError):
            await client.call("sleep_thread", 1).async_wait_result_task(0.05)
        with pytest.raises(prpc.RemoteError):
            await client.call("fail", "x")

    asyncio.run(main())
    task = client.call("add", 1, 1)
    assert task.result(timeout=10) == 2
    message = task.message
    assert isinstance(message, prpc.PRPCMessage)
    assert message.func_name == "add"
    assert message.func_args == [1, 1]
    assert message.result == 2
    assert isinstance(message.message_id, uuid.UUID)
    assert message.date_done_message >= message.date_create_message
    assert task.time_execution > datetime.timedelta(0)


def test_thousand_concurrent_calls_from_asyncio(server, client):
    async def main():
        tasks = [client.call("add", i, 1) for i in range(1000)]
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [i + 1 for i in range(1000)]


def test_hundred_threads_calling_at_once(server, client):
    results: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(100)

    def worker(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = client.call("add", i, i).result(30)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {i: 2 * i for i in range(100)}
    assert client._core.pending == 0


def test_no_server_times_out(env, monkeypatch):
    monkeypatch.setenv("PRPC_QUEUE_NAME", "nobody_serves_" + uuid.uuid4().hex)
    with prpc.Client() as c, pytest.raises(prpc.ClientTimeOutError):
        c.call("anything").sync_wait_result_task(0.2)
