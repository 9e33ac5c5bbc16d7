"""Service info and stats through the queue itself: every server announces itself to the broker,
the reserved functions prpc.info and prpc.stats answer over the normal and the raw protocol
(redis-cli included), and `prpc stats --servers` lists the servers, stopped ones too."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sdk_fixtures import wait_until

import prpc

BIN = Path(os.environ.get("PRPC_BIN_DIR",
                          Path(__file__).resolve().parents[3] / "build" / "dev" / "bin"))

APP = '''
import datetime
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 3, datetime.timedelta(seconds=5), "{QUEUE}")

@app.decorator_reg_func()
def add(a: int, b: int = 2) -> int:
    """Adds two numbers."""
    return a + b

@app.decorator_reg_func()
def boom(text):
    raise ValueError(text)

if __name__ == "__main__":
    app.start()
'''


def prpc_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([str(BIN / "prpc"), *args], capture_output=True, text=True, timeout=60,
                          env=full)


def servers_by_id(stats: dict) -> dict[str, dict]:
    return {s["id"]: s for s in stats["servers"]}


def function(info: dict, name: str) -> dict:
    return next(f for f in info["functions"] if f["name"] == name)


def test_prpc_stats_lists_every_live_server_with_its_numbers(start_app, client, queue):
    start_app(APP, name="one.py")
    start_app(APP, name="two.py")
    assert [client.call("add", i).result(20) for i in range(12)] == [i + 2 for i in range(12)]
    for text in ("a", "b", "c"):
        with pytest.raises(prpc.RemoteError):
            client.call("boom", text).result(20)

    def both_counted():
        stats = client.call("prpc.stats").result(20)
        live = [s for s in stats["servers"] if s["alive"]]
        adds = sum(function(s["info"], "add")["calls"] for s in live)
        booms = sum(function(s["info"], "boom")["errors"] for s in live)
        return stats if len(live) == 2 and adds == 12 and booms == 3 else None

    # Announcements go out once a second: the numbers catch up within a few.
    stats = wait_until(both_counted, 20, "both servers announcing 12 adds and 3 failures")
    assert stats["queue"] == queue
    for server in stats["servers"]:
        info = server["info"]
        assert info["id"] == server["id"]
        assert info["queue"] == queue
        assert info["version"] == prpc.__version__
        assert info["pid"] > 0 and info["host"]
        assert info["uptime_s"] > 0
        assert info["workers"]["thread"] == 3
        assert 0 <= server["age_ms"] < 5000
        add = function(info, "add")
        assert add["worker"] == "thread"
        assert add["signature"] == "(a: int, b: int = 2) -> int"
        assert add["doc"] == "Adds two numbers."
        assert add["errors"] == 0 and add["calls"] == add["ok"]
        if add["calls"]:
            assert 0 <= add["p50_ms"] <= add["p99_ms"] and add["mean_ms"] >= 0
        totals = info["totals"]
        assert totals["ok"] + totals["error"] + totals["timeout"] + totals["dead_letter"] <= \
            totals["received"]
        assert len(info["latency"]["counts"]) == len(info["latency"]["bounds_s"]) + 1
        assert sum(info["latency"]["counts"]) >= add["calls"]
        # Reserved functions are the engine's own, not listed as the application's.
        assert {f["name"] for f in info["functions"]} == {"add", "boom"}


def test_prpc_info_answers_through_the_raw_protocol_with_redis_cli(start_app, redis_server,
                                                                   queue):
    start_app(APP)
    message_id = uuid.uuid4().hex
    request = json.dumps({"func_name": "prpc.info", "func_args": [], "func_kwargs": {},
                          "message_id": message_id})
    cli = ["redis-cli", "-p", str(redis_server.port)]
    added = subprocess.run([*cli, "XADD", f"prpc_raw_{queue}", "*", "message", request],
                           capture_output=True, text=True, timeout=30)
    assert added.returncode == 0, added.stderr

    def answered():
        out = subprocess.run([*cli, "GET", f"prpc_feedback_raw_{queue}_{message_id}"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        return out or None

    reply = json.loads(wait_until(answered, 20, "the stored reply of prpc.info"))
    assert reply["exception_info"] is None
    info = reply["result"]
    assert info["queue"] == queue
    assert info["id"] == reply["server"]  # the breakdown names the same server
    assert {f["name"] for f in info["functions"]} == {"add", "boom"}


def test_prpc_stats_servers_shows_a_stopped_server_as_stopped(start_app, client, env, queue):
    first = start_app(APP, name="first.py")
    start_app(APP, name="second.py")
    assert client.call("add", 1, 1).result(20) == 2

    def listed(alive: int, stopped: int):
        out = prpc_cli(["stats", "--servers", "--json"], env)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        states = [s["alive"] for s in doc["servers"]]
        return doc if states.count(True) == alive and states.count(False) == stopped else None

    wait_until(lambda: listed(2, 0), 20, "two live servers in prpc stats --servers")
    assert first.terminate() == 0
    # A server that stops says so at once (its last announcement expires immediately).
    doc = wait_until(lambda: listed(1, 1), 10, "one live and one stopped server")
    assert doc["queue"] == queue and doc["consumers"] >= 1

    text = prpc_cli(["stats", "--servers"], env)
    assert text.returncode == 0, text.stderr
    assert "alive" in text.stdout and "stopped" in text.stdout
    assert "add(a: int, b: int = 2) -> int  [thread]" in text.stdout


def test_reserved_names_cannot_be_registered(redis_server, queue):
    app = prpc.AppServer("redis", redis_server.url, "thread", 1, None, queue)
    for name in ("prpc.info", "prpc.stats", "prpc.anything", "ping"):
        with pytest.raises(prpc.RegistrationError):
            app.register_func(lambda: None, name=name)
