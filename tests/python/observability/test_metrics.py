"""/metrics on every kind of server (an AppServer, prpc-host with a functions plugin, prpc-host
--app) against a real redis-server: the counters match the calls made, prometheus_client's
parser reads the text, a real Prometheus scrapes it; and every reply carries its latency
breakdown (AwaitableTask.breakdown, `prpc call -v`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sdk_fixtures import wait_until

import prpc

BIN = Path(os.environ.get("PRPC_BIN_DIR",
                          Path(__file__).resolve().parents[3] / "build" / "dev" / "bin"))

APP = '''
import datetime, time
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 4, datetime.timedelta(seconds=0.3), "{QUEUE}",
                metrics_listen="127.0.0.1:{METRICS_PORT}")

@app.decorator_reg_func()
def add(a, b):
    return a + b

@app.decorator_reg_func()
def boom(text):
    raise ValueError(text)

@app.decorator_reg_func()
def slow(seconds):
    time.sleep(seconds)
    return "late"

if __name__ == "__main__":
    app.start()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, parsed by prometheus_client, keyed by (name, labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed, name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


def test_counters_match_the_calls_made(start_app, client, redis_server, queue):
    port = free_port()
    start_app(APP.replace("{METRICS_PORT}", str(port)))
    tasks = [client.call("add", i, 1) for i in range(10)]
    assert [t.result(20) for t in tasks] == [i + 1 for i in range(10)]
    for text in ("a", "b", "c"):
        with pytest.raises(prpc.RemoteError):
            client.call("boom", text).result(20)
    for _ in range(2):  # the server's limit is 0.3 s
        with pytest.raises(prpc.PRPCError):
            client.call("slow", 1.0).result(20)
    with pytest.raises(prpc.PRPCError):
        client.call("nope").result(20)
    # Two requests a server cannot decode: dead letters.
    r = redis_server.client
    r.xadd(f"prpc_raw_{queue}", {"message": "not json"})
    r.xadd(f"prpc_raw_{queue}", {"message": json.dumps({"func_name": 5})})
    wait_until(lambda: r.xlen(f"prpc_dead_{queue}") == 2, 20, "two dead letters")

    def settled():
        parsed = samples(scrape(port))
        dead = value(parsed, "prpc_server_calls_total", queue=queue, function="(unknown)",
                     outcome="dead_letter")
        idle = value(parsed, "prpc_server_in_flight", queue=queue) == 0
        return parsed if dead == 2 and idle else None

    parsed = wait_until(settled, 20, "the dead letters and an idle server in /metrics")

    def calls(function: str, outcome: str) -> float:
        return value(parsed, "prpc_server_calls_total", queue=queue, function=function,
                     outcome=outcome)

    assert calls("add", "ok") == 10
    assert calls("add", "error") == 0
    assert calls("boom", "error") == 3
    assert calls("slow", "timeout") == 2
    assert calls("slow", "ok") == 0
    assert calls("(unknown)", "error") == 1  # the unknown function
    assert calls("ping", "ok") >= 1  # start_app waited for a pong
    assert value(parsed, "prpc_server_call_seconds_count", queue=queue, function="add") == 10
    assert value(parsed, "prpc_server_call_seconds_count", queue=queue, function="boom") == 3
    assert value(parsed, "prpc_server_call_seconds_bucket", queue=queue, function="add",
                 le="+Inf") == 10
    assert value(parsed, "prpc_server_call_seconds_sum", queue=queue, function="slow") >= 0.5
    # Every dispatched request (the pings, the calls, the unknown function) waited in the queue.
    assert value(parsed, "prpc_server_queue_wait_seconds_count", queue=queue) >= 16
    assert value(parsed, "prpc_server_redeliveries_total", queue=queue) == 0
    # The broker's view.
    assert value(parsed, "prpc_queue_dead_letters", queue=queue) == 2
    assert value(parsed, "prpc_queue_waiting", queue=queue) == 0
    assert value(parsed, "prpc_queue_pending", queue=queue) == 0


def test_every_reply_carries_its_latency_breakdown(start_app, client):
    port = free_port()
    start_app(APP.replace("{METRICS_PORT}", str(port)))
    task = client.call("slow", 0.05)
    assert task.breakdown == {}  # nothing before the reply
    assert task.result(20) == "late"
    b = task.breakdown
    assert set(b) == {"server", "time_queued", "time_executing"}
    assert b["server"]
    assert 0 <= b["time_queued"] < 20
    assert 0.05 <= b["time_executing"] < 20
    failed = client.call("boom", "x")
    with pytest.raises(prpc.RemoteError):
        failed.result(20)
    assert failed.breakdown["server"] == b["server"]
    assert failed.breakdown["time_executing"] >= 0


class Host:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        full = dict(os.environ)
        full.update(env)
        self.log_path = cwd / "host.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, env=full, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def wait_ping(self, client: prpc.Client) -> None:
        def answers():
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                return client.ping(timeout=0.5) == "pong"
            except prpc.ClientTimeOutError:
                return False
        wait_until(answers, 60, "prpc-host to answer")


def prpc_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([str(BIN / "prpc"), *args], capture_output=True, text=True, timeout=60,
                          env=full)


def test_prpc_host_serves_metrics_and_prpc_call_v_prints_the_breakdown(env, client, tmp_path):
    port = free_port()
    config = tmp_path / "prpc.toml"
    config.write_text('[functions]\nplugins = ["example"]\n')
    host = Host([str(BIN / "prpc-host"), "--config", str(config)],
                {**env, "PRPC_METRICS_LISTEN": f"127.0.0.1:{port}"}, tmp_path)
    try:
        host.wait_ping(client)
        for i in range(4):
            out = prpc_cli(["call", "summ", f"[{i}, 1]"], env)
            assert out.returncode == 0, out.stderr
        failed = prpc_cli(["call", "fail", '["nope"]'], env)
        assert failed.returncode == 1
        verbose = prpc_cli(["call", "summ", "[1, 2]", "-v"], env)
        assert verbose.returncode == 0, verbose.stderr
        assert verbose.stdout.strip() == "3.5"  # summ(x, y, z=0.5)
        line = verbose.stderr.strip().splitlines()[-1]
        assert line.startswith("server ") and " queued " in line and " executing " in line
        assert " ms" in line and "round trip" in line
        parsed = samples(scrape(port))
        q = env["PRPC_QUEUE_NAME"]
        assert value(parsed, "prpc_server_calls_total", queue=q, function="summ",
                     outcome="ok") == 5
        assert value(parsed, "prpc_server_calls_total", queue=q, function="fail",
                     outcome="error") == 1
        # --json prints the whole reply: the breakdown fields are in the raw protocol.
        raw = json.loads(prpc_cli(["call", "summ", "[1, 1]", "--json"], env).stdout)
        assert raw["result"] == 2.5
        assert {"server", "time_queued", "time_executing"} <= set(raw)
    finally:
        assert host.stop() == 0


HOSTED_APP = '''
from prpc import AppServer

app = AppServer("redis", "redis://127.0.0.1:1/0", "thread", 2)

@app.decorator_reg_func()
def twice(x):
    return 2 * x
'''


def test_prpc_host_app_serves_metrics(env, client, tmp_path):
    port = free_port()
    (tmp_path / "hosted.py").write_text(HOSTED_APP)
    host = Host([str(BIN / "prpc-host"), "--app", "hosted:app",
                 "--set", f"metrics.listen=127.0.0.1:{port}"], env, tmp_path)
    try:
        host.wait_ping(client)
        assert [client.call("twice", i).result(20) for i in range(7)] == [2 * i for i in range(7)]
        parsed = samples(scrape(port))
        assert value(parsed, "prpc_server_calls_total", queue=env["PRPC_QUEUE_NAME"],
                     function="twice", outcome="ok") == 7
    finally:
        assert host.stop() == 0


def test_metrics_listener_answers_404_elsewhere_and_survives_garbage(start_app):
    port = free_port()
    start_app(APP.replace("{METRICS_PORT}", str(port)))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert e.value.code == 404
    e.value.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x00\x01 not http at all\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        s.recv(1024)  # the server closes or answers 400; either way it keeps serving
    assert "prpc_server_in_flight" in scrape(port)


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="Debian's prometheus is not installed (scripts/deps.sh test)")
def test_a_real_prometheus_scrapes_the_endpoint(start_app, client, tmp_path, queue):
    port = free_port()
    start_app(APP.replace("{METRICS_PORT}", str(port)))
    assert client.call("add", 20, 22).result(20) == 42
    web = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: prpc\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT)

    def api(path: str) -> dict | None:
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web}{path}", timeout=5) as r:
                return json.load(r)
        except (urllib.error.URLError, ConnectionError):
            return None

    try:
        def target_up():
            targets = api("/api/v1/targets")
            active = targets["data"]["activeTargets"] if targets else []
            return any(t["health"] == "up" for t in active)

        wait_until(target_up, 90, "Prometheus to scrape the PRPC server")
        query = urllib.parse.quote(
            f'prpc_server_calls_total{{queue="{queue}",function="add",outcome="ok"}}')

        def series():
            found = api(f"/api/v1/query?query={query}")
            return found["data"]["result"] if found else None

        result = wait_until(series, 60, "the PRPC series in Prometheus")
        assert result[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_client_metrics_count_the_calls_of_a_process_that_asks(start_app, client, queue):
    port = free_port()
    start_app(APP.replace("{METRICS_PORT}", str(port)))
    client_port = prpc.serve_client_metrics("127.0.0.1:0")
    assert [client.call("add", i, i).result(20) for i in range(5)] == [0, 2, 4, 6, 8]
    with pytest.raises(prpc.RemoteError):
        client.call("boom", "x").result(20)
    slow = client.call("slow", 0.2)
    with pytest.raises(prpc.ClientTimeOutError):
        slow.result(0.01)
    assert slow.result(20) == "late"  # waited for again: one timeout, then the reply
    with urllib.request.urlopen(f"http://127.0.0.1:{client_port}/metrics", timeout=10) as r:
        parsed = samples(r.read().decode())
    assert value(parsed, "prpc_client_calls_total", queue=queue, function="add") == 5
    assert value(parsed, "prpc_client_replies_total", queue=queue, function="add",
                 outcome="ok") == 5
    assert value(parsed, "prpc_client_replies_total", queue=queue, function="boom",
                 outcome="error") == 1
    assert value(parsed, "prpc_client_timeouts_total", queue=queue, function="slow") == 1
    assert value(parsed, "prpc_client_call_seconds_count", queue=queue, function="add") == 5
    assert value(parsed, "prpc_client_call_seconds_sum", queue=queue, function="slow") >= 0.2


def test_prpc_host_writes_json_log_lines(env, client, tmp_path):
    host = Host([str(BIN / "prpc-host"), "--set", "functions.plugins=example"],
                {**env, "PRPC_LOG_FORMAT": "json", "PRPC_LOG_LEVEL": "info"}, tmp_path)
    try:
        host.wait_ping(client)
    finally:
        assert host.stop() == 0
    lines = [json.loads(line) for line in host.log_path.read_text().splitlines()]
    assert lines and all(set(line) == {"time", "level", "component", "message"}
                         for line in lines)
    assert any(line["component"] == "server" and line["message"].startswith("serving queue")
               for line in lines)
    assert lines[-1]["message"].startswith("stopped after")
