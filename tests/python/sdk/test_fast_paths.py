"""The two short cuts of the Python path, over a real redis-server: a server runs a function
known to be quick on the thread that received its request (several requests under one GIL
acquisition) while slow functions keep their executor threads, and asyncio callers are woken
through the event loop's eventfd, in one pass for replies that arrive together."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time

import pytest

import prpc

APP = '''
import datetime, threading, time
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 4, datetime.timedelta(seconds=5), "{QUEUE}",
                options={OPTIONS})

@app.decorator_reg_func()
def add(a, b):
    return a + b

@app.decorator_reg_func()
def thread_name():
    return threading.current_thread().name

@app.decorator_reg_func()
def slow(seconds):
    time.sleep(seconds)
    return seconds

@app.decorator_reg_func()
def fail():
    raise KeyError("missing")

if __name__ == "__main__":
    app.start()
'''


def inlined(client: prpc.Client) -> int:
    return client.call("prpc.info").result(20)["totals"]["inlined"]


def start(start_app, options: dict[str, object]):
    return start_app(APP.replace("{OPTIONS}", repr(options)))


def test_a_quick_function_runs_inline_once_it_is_known(start_app, client):
    # A generous limit: a sanitizer build or a busy machine must not make `add` look slow.
    start(start_app, {"server.inline_max_us": 50_000})
    before = inlined(client)
    for i in range(16):  # its first runs are measured on the executor
        assert client.call("add", i, 1).result(20) == i + 1
    assert inlined(client) == before
    for i in range(40):
        assert client.call("add", i, 2).result(20) == i + 2
    assert inlined(client) == before + 40

    # Together, and from many threads at once: every reply is the right one.
    results: dict[int, int] = {}

    def caller(k: int) -> None:
        for i in range(25):
            results[k * 100 + i] = client.call("add", k * 100, i).result(20)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {k * 100 + i: k * 100 + i for k in range(16) for i in range(25)}
    assert inlined(client) == before + 40 + 16 * 25


def test_inline_runs_keep_failures_and_python_threads_intact(start_app, client):
    start(start_app, {"server.inline_max_us": 50_000})
    for _ in range(20):
        with pytest.raises(prpc.RemoteError) as raised:
            client.call("fail").result(20)
        assert raised.value.remote_type == "KeyError"
        assert "missing" in raised.value.remote_message
        assert "fail" in raised.value.remote_traceback
    names = {client.call("thread_name").result(20) for _ in range(40)}
    assert all(isinstance(n, str) and n for n in names)
    assert inlined(client) > 0


def test_a_slow_function_stays_on_its_executor(start_app, client):
    start(start_app, {"server.inline_max_us": 1_000})
    before = inlined(client)
    for _ in range(30):
        assert client.call("slow", 0.003).result(20) == 0.003
    assert inlined(client) == before
    # Eight at once take about one run's time, not eight: they run on separate threads.
    began = time.monotonic()
    tasks = [client.call("slow", 0.5) for _ in range(4)]
    assert [t.result(20) for t in tasks] == [0.5] * 4
    assert time.monotonic() - began < 1.9
    assert inlined(client) == before


def test_inline_off(start_app, client):
    start(start_app, {"server.inline_max_us": 0})
    for i in range(60):
        assert client.call("add", i, 1).result(20) == i + 1
    assert inlined(client) == 0


def test_asyncio_callers_are_woken_together_and_cancellation_is_clean(start_app, client):
    start(start_app, {})

    async def main() -> None:
        tasks = [client.call("add", i, 1) for i in range(500)]
        assert await asyncio.gather(*tasks) == [i + 1 for i in range(500)]
        # One task awaited twice at once: both awaits get the result.
        task = client.call("slow", 0.2)
        assert await asyncio.gather(task, task) == [0.2, 0.2]
        # A wait that gives up leaves the call running, and awaiting it again works.
        late = client.call("slow", 0.3)
        with pytest.raises(prpc.ClientTimeOutError):
            await late.async_wait_result_task(0.05)
        assert await late == 0.3
        # A cancelled waiter is forgotten: its reply later wakes nobody and breaks nothing.
        waiter = asyncio.ensure_future(client.call("slow", 0.2).async_wait_result_task())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(0.3)
        assert await client.call("add", 1, 1) == 2

    asyncio.run(main())
    # A second event loop gets a waker of its own; the first one's is gone with its loop.
    asyncio.run(main())
    assert client._core.pending == 0


def test_a_pending_task_shows_its_request(start_app, client):
    # The request's PRPCMessage is built only when asked for; it still says when it was sent.
    start(start_app, {})
    before = datetime.datetime.now(datetime.timezone.utc)
    task = client.call("slow", 0.3)
    time.sleep(0.1)
    request = task.message
    assert request.func_name == "slow"
    assert list(request.func_args) == [0.3]
    assert request.func_kwargs == {}
    assert str(request.message_id) == task.message_id
    assert before <= request.date_create_message <= before + datetime.timedelta(seconds=0.09)
    assert request.result is None and request.date_done_message is None
    assert task.result(20) == 0.3
    assert task.message.result == 0.3
    assert task.message.date_done_message >= task.message.date_create_message
