"""Everything PRPC runs, as a Redis ACL user limited to PRPC's keys and commands
(docs/brokers/redis.md, "ACL permissions"): prpc-host, a Python AppServer, the Python client and
every `prpc` command. tests/plugins/broker_redis/acl_test.cpp shows what fails without each
permission."""

from __future__ import annotations

import json
import uuid

from conftest import Service, run, wait_serving, write_app
from service_process import wait_until

import prpc

NATIVE = """
[functions]
plugins = ["example"]
[executors.thread]
workers = 2
[server]
visibility_timeout = "2s"
"""

APP = """
from prpc import AppServer

app = AppServer("redis", "{url}", "thread", 2, name_queue="{queue}")

@app.decorator_reg_func()
def hello(name):
    return "hello " + name

@app.decorator_reg_func("process")
def square(x):
    return x * x

if __name__ == "__main__":
    app.start()
"""


def test_prpc_host_and_every_prpc_command(acl_redis, bin_dir, queue, services, tmp_path):
    url = acl_redis.url(1)  # a database other than 0: SELECT is allowed too
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue}
    config = tmp_path / "prpc.toml"
    config.write_text(NATIVE)
    host = Service([str(bin_dir / "prpc-host"), "--config", str(config)], env, tmp_path,
                   "acl-host")
    services.append(host)
    with prpc.Client("redis", url, queue, raw=True) as client:
        wait_serving(client, host)
        assert client.call("summ", 1, 2, z=10).result(20) == 13

    prpc_cli = str(bin_dir / "prpc")
    call = run([prpc_cli, "call", "summ", "[1, 2]"], env, name="acl-call")
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout) == 3.5
    funcs = run([prpc_cli, "funcs"], env, name="acl-funcs")
    assert funcs.returncode == 0, funcs.stderr
    assert "hello_world" in funcs.stdout

    # A malformed request (sent as the same user): dead-lettered, listed, requeued.
    user = acl_redis.user_client(db=1)
    user.xadd(f"prpc_raw_{queue}", {"message": '{"func_name": "hello_world", "message_id": 7}'})

    def stats() -> dict:
        return json.loads(run([prpc_cli, "stats", "--json"], env, name="acl-stats").stdout)

    assert wait_until(lambda: stats()["dead_letters"] == 1, 20)
    assert stats()["consumers"] == 1
    letters = run([prpc_cli, "dead-letters", "--json"], env, name="acl-dead-letters")
    assert letters.returncode == 0, letters.stderr
    [letter] = json.loads(letters.stdout)
    assert "message_id" in letter["reason"]
    requeued = run([prpc_cli, "dead-letters", "--requeue", "--json"], env, name="acl-requeue")
    assert requeued.returncode == 0, requeued.stderr
    assert json.loads(requeued.stdout) == {"queue": queue, "requeued": 1}
    # It is malformed still: dead-lettered again, which shows the requeue reached the server.
    assert wait_until(lambda: stats()["dead_letters"] == 1 and stats()["length"] == 0, 20)

    stubs = run([prpc_cli, "gen-stubs", "--output", str(tmp_path / "server_func.py")], env,
                name="acl-gen-stubs", cwd=tmp_path)
    assert stubs.returncode == 0, stubs.stdout + stubs.stderr
    assert "def hello_world(" in (tmp_path / "server_func.py").read_text()

    # The raw protocol as the README shows it, as the ACL user: the result key is readable.
    message_id = str(uuid.uuid4())
    user.xadd(f"prpc_raw_{queue}", {"message": json.dumps(
        {"func_name": "hello_world", "func_args": [], "func_kwargs": {},
         "message_id": message_id})})
    key = f"prpc_feedback_raw_{queue}_{message_id}"
    assert wait_until(lambda: user.get(key) is not None, 20)
    assert json.loads(user.get(key))["result"] == "hello_world"


def test_python_app_server_and_client(acl_redis, queue, services, tmp_path):
    url = acl_redis.url()
    app = write_app(tmp_path, APP.format(url=url, queue=queue))
    server = Service([__import__("sys").executable, str(app)], {}, tmp_path, "acl-app")
    services.append(server)
    with prpc.Client("redis", url, queue) as client:
        wait_serving(client, server)
        assert client.call("hello", "acl").result(20) == "hello acl"
        assert client.call("square", 12).result(30) == 144
        tasks = [client.call("square", i) for i in range(20)]
        assert [t.result(30) for t in tasks] == [i * i for i in range(20)]
        manifest = client.get_function_server()
        assert {f["name"] for f in manifest["functions"]} == {"hello", "square"}
    # An original PRPC client stores nothing and polls the legacy key: its result is there.
    user = acl_redis.user_client()
    message_id = uuid.uuid4().hex
    original = ('{"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "hello", '
                '"func_args": ["original"], "func_kwargs": {}, "message_id": '
                f'{{"py/object": "uuid.UUID", "hex": "{message_id}"}}, '
                '"date_create_message": null, "result": null, "exception_info": null, '
                '"date_done_message": null}')
    user.xadd(f"prpc_{queue}", {"message": original})
    legacy = f"prpc_feedback_{queue}_{uuid.UUID(message_id)}"
    assert wait_until(lambda: user.get(legacy) is not None, 20)
    assert '"hello original"' in user.get(legacy)


def test_a_wrong_password_fails_at_once_and_is_not_shown(acl_redis, bin_dir, queue, tmp_path):
    good = acl_redis.password
    wrong_url = acl_redis.url().replace(good, "0" * len(good))
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": wrong_url, "PRPC_QUEUE_NAME": queue}
    out = run([str(bin_dir / "prpc"), "stats"], env, name="acl-wrong-password")
    assert out.returncode != 0
    assert "WRONGPASS" in out.stderr, out.stderr
    assert "0" * len(good) not in out.stderr + out.stdout
    try:
        prpc.Client("redis", wrong_url, queue)
        raise AssertionError("a client with a wrong password was made")
    except prpc.PRPCError as e:
        assert "WRONGPASS" in str(e)
        assert "0" * len(good) not in str(e)
