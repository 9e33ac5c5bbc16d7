"""The original PRPC's client API, exactly as its README and modules spell it, against our
server: module paths, AwaitableTask(func_name, args, kwargs), timedelta waits, the exception
classes and their texts, the system functions and prpc.server_func."""

from __future__ import annotations

import asyncio
import datetime
import importlib
import subprocess
import sys
import textwrap
import uuid

import pytest

import prpc

APP = '''
import datetime, time
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 4, datetime.timedelta(seconds=2), "{QUEUE}")


@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z


@app.decorator_reg_func()
def hello_world():
    time.sleep(0.2)
    return "hello_world"


@app.decorator_reg_func()
def greeting(name: str, greeting: str = "hello", *, punctuation="!"):
    return f"{greeting}, {name}{punctuation}"


@app.decorator_reg_func()
def bad_thing():
    raise ValueError("bad thing")


@app.decorator_reg_func()
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


if __name__ == "__main__":
    app.start()
'''


@pytest.fixture
def server(start_app):
    return start_app(APP)


def test_modules_and_names_are_the_originals():
    from prpc import AppServer, ping
    from prpc.app_client import AwaitableTask, get_function_server
    from prpc.app_client import ping as client_ping
    from prpc.app_server import AppServer as ServerClass
    from prpc.prpcmessage import PRPCMessage
    from prpc.support_module import exceptions

    # One class per concept: the original's names are our objects, not copies.
    assert AppServer is ServerClass is prpc.AppServer
    assert ping is client_ping is prpc.ping
    assert get_function_server is prpc.get_function_server
    assert AwaitableTask is prpc.AwaitableTask
    assert PRPCMessage is prpc.PRPCMessage
    assert exceptions.ClientTimeOutError is prpc.ClientTimeOutError
    assert exceptions.NotFoundFunc is prpc.NotFoundFunc
    assert exceptions.JSONDeserializeError is prpc.JSONDeserializeError
    assert exceptions.PRPCMessageDeserializeError is prpc.PRPCMessageDeserializeError
    assert (exceptions.MessageFromStreamDataValidationError
            is prpc.MessageFromStreamDataValidationError)
    for cls in (exceptions.NotFoundFunc, exceptions.JSONDeserializeError,
                exceptions.PRPCMessageDeserializeError,
                exceptions.MessageFromStreamDataValidationError, exceptions.ClientTimeOutError):
        assert issubclass(cls, prpc.PRPCError) and issubclass(cls, Exception)


def test_exception_texts_are_the_originals():
    from prpc.support_module.exceptions import (
        ClientTimeOutError,
        JSONDeserializeError,
        MessageFromStreamDataValidationError,
        NotFoundFunc,
        PRPCMessageDeserializeError,
    )

    e = ClientTimeOutError(datetime.timedelta(seconds=20))
    assert e.timeout == datetime.timedelta(seconds=20)
    assert str(e) == "the task was completed by wait timeout 20.0 secs."
    assert ClientTimeOutError(1.5).timeout == datetime.timedelta(seconds=1.5)
    assert str(NotFoundFunc("summ")) == "UnknownFunctionError: func name 'summ' not found in server"
    assert NotFoundFunc("summ").func_name == "summ"
    assert str(JSONDeserializeError()) == "json error"
    assert str(PRPCMessageDeserializeError("x")) == (
        "the message x has the wrong format for deserialize prpc message")
    assert str(MessageFromStreamDataValidationError()) == (
        "the message from stream does not have an attribute `message`")


def test_awaitable_task_sends_on_construction(server, env):
    from prpc.app_client import AwaitableTask

    task = AwaitableTask("summ", (1, 2), {})
    assert task.sync_wait_result_task(datetime.timedelta(seconds=20)) == 3.5
    assert task.is_done_task()
    assert task.is_done_task(update_status=True)
    assert task.get_result() == 3.5
    assert isinstance(task.time_execution, datetime.timedelta)
    assert task.time_execution > datetime.timedelta(0)
    message = task.message
    assert isinstance(message, prpc.PRPCMessage)
    assert message.is_message_done()
    assert message.result == 3.5 and message.exception_info is None
    assert isinstance(message.message_id, uuid.UUID)

    # Seconds and None work too; kwargs as a dict.
    assert AwaitableTask("summ", [1, 2], {"z": 10}).sync_wait_result_task(20) == 13
    assert AwaitableTask("summ", (1, 2), {}).sync_wait_result_task(None) == 3.5


def test_waiting_again_after_a_timeout(server, env):
    from prpc.app_client import AwaitableTask
    from prpc.support_module.exceptions import ClientTimeOutError

    task = AwaitableTask("sleepy", (0.5,), {})
    with pytest.raises(ClientTimeOutError) as info:
        task.sync_wait_result_task(datetime.timedelta(milliseconds=50))
    assert info.value.timeout == datetime.timedelta(milliseconds=50)
    assert str(info.value).startswith("the task was completed by wait timeout 0.05 secs. (")
    assert info.value.detail.startswith("sleepy: no reply")
    assert not task.is_done_task(update_status=True)
    with pytest.raises(prpc.ResultNotReadyError, match="task in process"):
        task.get_result()
    with pytest.raises(Exception, match="task in process"):  # what the original raised
        task.get_result()
    assert task.time_execution is None
    assert task.sync_wait_result_task(datetime.timedelta(seconds=20)) == 0.5
    # Waiting on a task that is done returns its result (the original returned None).
    assert task.sync_wait_result_task(datetime.timedelta(seconds=1)) == 0.5


def test_async_wait_with_a_timedelta(server, env):
    from prpc.app_client import AwaitableTask
    from prpc.support_module.exceptions import ClientTimeOutError

    async def main():
        task = AwaitableTask("hello_world", (), {})
        assert await task.async_wait_result_task(datetime.timedelta(seconds=20)) == "hello_world"
        slow = AwaitableTask("sleepy", (1,), {})
        with pytest.raises(ClientTimeOutError):
            await slow.async_wait_result_task(datetime.timedelta(milliseconds=50))
        return await slow.async_wait_result_task(datetime.timedelta(seconds=20))

    assert asyncio.run(main()) == 1


def test_remote_failures_carry_the_exception_info(server, env):
    from prpc.app_client import AwaitableTask
    from prpc.support_module.exceptions import NotFoundFunc

    task = AwaitableTask("bad_thing", (), {})
    with pytest.raises(Exception) as info:  # the original raised Exception(exception_info)
        task.sync_wait_result_task(datetime.timedelta(seconds=20))
    assert isinstance(info.value, prpc.RemoteError)
    assert str(info.value) == task.message.exception_info == "ValueError: bad thing"
    assert "ValueError: bad thing" in info.value.remote_traceback

    with pytest.raises(NotFoundFunc) as missing:
        AwaitableTask("no_such_function", (), {}).sync_wait_result_task(20)
    assert missing.value.func_name == "no_such_function"
    assert "func name 'no_such_function' not found in server" in str(missing.value)

    # The server's limit (timeout_worker) in the original's words.
    late = AwaitableTask("sleepy", (5,), {})
    with pytest.raises(prpc.RemoteError) as timed_out:
        late.sync_wait_result_task(20)
    assert timed_out.value.remote_type == "TimeoutError"
    assert "the task was completed by server timeout 2.0 secs." in str(timed_out.value)


def test_system_functions(server, env):
    from prpc import ping
    from prpc.app_client import get_function_server

    assert ping().sync_wait_result_task(datetime.timedelta(seconds=20)) == "pong"
    functions = get_function_server().sync_wait_result_task(datetime.timedelta(seconds=20))
    # The original's format: a list, ping first, parameters without defaults then with.
    assert functions[0] == {"func_name": "ping", "func_args": [], "func_kwargs": []}
    by_name = {f["func_name"]: f for f in functions}
    assert "get_function_server" not in by_name
    assert by_name["summ"] == {
        "func_name": "summ",
        "func_args": [{"name": "a", "annotation": "int | float"}, {"name": "b"}],
        "func_kwargs": [{"name": "z", "default": 0.5}],
    }
    assert by_name["greeting"]["func_args"] == [{"name": "name", "annotation": "str"}]
    assert by_name["greeting"]["func_kwargs"] == [
        {"name": "greeting", "default": "hello", "annotation": "str"},
        {"name": "punctuation", "default": "!"},
    ]
    # Our tools still get the manifest.
    manifest = prpc.Client().get_function_server(20)
    assert {f["name"] for f in manifest["functions"]} >= {"summ", "hello_world", "greeting"}


ORIGINAL_README_CLIENT = '''
import datetime
from prpc.server_func import ping, summ, hello_world
from prpc.support_module.exceptions import ClientTimeOutError


awaitable_task = hello_world()
try:
    result = awaitable_task.sync_wait_result_task(datetime.timedelta(seconds=20))
except ClientTimeOutError as e:
    ...
except Exception as e:
    ...

print(result, summ(1, 2).sync_wait_result_task(datetime.timedelta(seconds=20)),
      ping().sync_wait_result_task(datetime.timedelta(seconds=20)))
'''


def test_the_original_readme_client_runs_as_written(server, env, tmp_path):
    """python -m prpc.create_server_func, then the original README's client, verbatim (plus a
    print to see its result), in a fresh interpreter."""
    stubs = tmp_path / "stubs"
    full_env = {**__import__("os").environ, **env, "PRPC_STUBS_DIR": str(stubs)}
    made = subprocess.run([sys.executable, "-m", "prpc.create_server_func"], cwd=tmp_path,
                          env=full_env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert (stubs / f"{env['PRPC_QUEUE_NAME']}.py").exists()
    client = tmp_path / "elsewhere" / "client.py"
    client.parent.mkdir()
    client.write_text(textwrap.dedent(ORIGINAL_README_CLIENT))
    ran = subprocess.run([sys.executable, str(client)], cwd=client.parent, env=full_env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["hello_world", "3.5", "pong"]


def test_server_func_without_generated_stubs_says_what_to_run(env, tmp_path, monkeypatch):
    monkeypatch.setenv("PRPC_STUBS_DIR", str(tmp_path))
    sys.modules.pop("prpc.server_func", None)
    with pytest.raises(ImportError, match="python -m prpc.create_server_func"):
        importlib.import_module("prpc.server_func")
    sys.modules.pop("prpc.server_func", None)


def test_the_original_server_settings_apply(start_app, env, redis_server):
    """The original's environment variables: here the result TTL (setting it crashed the
    original) and the instance name, which names the server's consumer."""
    env["PRPC_REDIS_EXPIRE_MESSAGE_FEEDBACK_SEC"] = "120"
    env["PRPC_INSTANCE_NAME"] = "billing-1"
    start_app(APP)
    task = prpc.call("summ", 1, 2)
    assert task.sync_wait_result_task(datetime.timedelta(seconds=20)) == 3.5
    ttl = redis_server.client.pttl(f"prcp_message_feedback_{task.message_id}")
    assert 0 < ttl <= 120_000
    consumers = redis_server.client.xinfo_consumers(f"prpc_{env['PRPC_QUEUE_NAME']}",
                                                    "prpc_group_consumers")
    assert [c["name"] for c in consumers] == [b"billing-1"]


def test_app_server_singleton_access_and_func_data(monkeypatch):
    from prpc.app_server import AppServer

    app = AppServer("redis", "redis://127.0.0.1:1/0", "thread", 2)

    @app.decorator_reg_func()
    def greet(name, greeting="hello"):
        return f"{greeting} {name}"

    assert AppServer.get_instance() is app
    [data] = app.func_data
    assert (data.func_name, data.worker_type, data.func) == ("greet", "thread", greet)
    assert list(data.func_args) == ["name"] and list(data.func_kwargs) == ["greeting"]
    assert greet("you") == "hello you"  # the decorated function stays callable here
