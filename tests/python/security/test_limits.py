"""A Python AppServer's limits (server.max_message_bytes, server.max_json_depth): a request over
one is dead-lettered with the reason before it is decoded, its function never runs, and the
server goes on serving."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import Service, run, wait_serving, write_app
from redis_fixture import RedisServer

import prpc

APP = """
import pathlib
from prpc import AppServer

app = AppServer("redis", "{url}", "thread", 2, name_queue="{queue}",
                options={{"server.max_message_bytes": 20000, "server.max_json_depth": 40}})

@app.decorator_reg_func()
def keep(value):
    with open("{ran}", "a") as f:        # the side effect: one line per call that ran
        f.write(str(len(repr(value))) + "\\n")
    return "kept"

if __name__ == "__main__":
    app.start()
"""


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.close()


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def test_requests_over_the_limits_are_dead_lettered_and_not_run(redis_server, queue, services,
                                                              tmp_path, bin_dir):
    ran = tmp_path / "ran.txt"
    url = redis_server.url()
    app = write_app(tmp_path, APP.format(url=url, queue=queue, ran=ran))
    server = Service([sys.executable, str(app)], {}, tmp_path, "limits-app")
    services.append(server)
    with prpc.Client("redis", url, queue) as client:
        wait_serving(client, server)
        with pytest.raises(prpc.RemoteError) as too_big:
            client.call("keep", "x" * 30000).result(20)
        assert too_big.value.remote_type == "DecodeError"
        assert "exceeds the limit of 20000 bytes (server.max_message_bytes)" in str(too_big.value)
        with pytest.raises(prpc.RemoteError, match=r"nests deeper than 40 levels"):
            client.call("keep", nested(60)).result(20)
        # Just within both: runs.
        assert client.call("keep", "x" * 15000).result(20) == "kept"
        assert client.call("keep", nested(30)).result(20) == "kept"
    assert len(ran.read_text().splitlines()) == 2
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue}
    letters = json.loads(run([str(bin_dir / "prpc"), "dead-letters", "--json"], env,
                             name="limits-dead-letters").stdout)
    assert [d["reason"].split(" (")[-1] for d in letters] == [
        "server.max_message_bytes)", "server.max_json_depth)"]
    assert server.proc.poll() is None
