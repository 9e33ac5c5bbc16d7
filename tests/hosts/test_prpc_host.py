"""prpc-host and prpc as operators use them: a Python app and a native functions plugin served
by prpc-host, called from Python and from `prpc call`; misconfigurations with their exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import prpc
from sdk_fixtures import wait_until

APP = '''
import os
from prpc import AppServer

# The host's configuration (broker, queue) overrides these.
app = AppServer("redis", "redis://127.0.0.1:1/0", "thread", 2)

@app.decorator_reg_func()
def greet(name="world"):
    return f"hello {name} from pid {os.getpid()}"

@app.decorator_reg_func("process")
def square(x):
    return x * x

@app.decorator_reg_func("async")
async def later(x):
    return x
'''


def run(cmd: list[str], env: dict[str, str], timeout: float = 60, cwd: Path | None = None):
    full = dict(os.environ)
    full.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full, cwd=cwd)


class Host:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        full = dict(os.environ)
        full.update(env)
        self.log = open(cwd / "host.log", "w")
        self.proc = subprocess.Popen(args, env=full, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        return self.proc.returncode


def wait_ping(client: prpc.Client, host: Host) -> None:
    def answers():
        assert host.proc.poll() is None, (host.log.flush(), open(host.log.name).read())
        try:
            return client.ping(timeout=0.5) == "pong"
        except prpc.ClientTimeOutError:
            return False
    wait_until(answers, 60, "prpc-host to answer")


def test_python_app_served_by_prpc_host(bin_dir, env, client, tmp_path):
    (tmp_path / "myservice.py").write_text(APP)
    host = Host([str(bin_dir / "prpc-host"), "--app", "myservice:app"], env, tmp_path)
    try:
        wait_ping(client, host)
        assert client.call("greet", "tests").result(20).startswith("hello tests from pid ")
        assert client.call("square", 7).result(30) == 49
        assert client.call("later", "x").result(20) == "x"
        # The same functions from the shell, through the raw protocol.
        out = run([str(bin_dir / "prpc"), "call", "greet", '["shell"]'], env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout).startswith("hello shell")
        funcs = run([str(bin_dir / "prpc"), "funcs"], env)
        assert "greet(name='world')  [thread]" in funcs.stdout
        assert "square(x)  [process]" in funcs.stdout
    finally:
        assert host.stop() == 0


def test_native_functions_plugin_served_by_prpc_host(bin_dir, env, client, tmp_path):
    config = tmp_path / "prpc.toml"
    config.write_text('[functions]\nplugins = ["example"]\n[executors.thread]\nworkers = 2\n')
    host = Host([str(bin_dir / "prpc-host"), "--config", str(config)], env, tmp_path)
    try:
        wait_ping(client, host)
        out = run([str(bin_dir / "prpc"), "call", "summ", "[1, 2]", "--kwargs", '{"z": 10}'], env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "13"
        failed = run([str(bin_dir / "prpc"), "call", "fail", '["nope"]'], env)
        assert failed.returncode == 1
        assert "ValueError: nope" in failed.stderr
        stats = run([str(bin_dir / "prpc"), "stats", "--json"], env)
        assert json.loads(stats.stdout)["queue"] == env["PRPC_QUEUE_NAME"]
    finally:
        assert host.stop() == 0


def test_prpc_call_exit_codes(bin_dir, env):
    nobody = dict(env, PRPC_QUEUE_NAME="nobody_" + str(time.time_ns()))
    out = run([str(bin_dir / "prpc"), "call", "x", "--timeout", "0.3"], nobody)
    assert out.returncode == 6
    assert out.stderr.startswith("prpc: error: no reply within 300 ms")
    bad = run([str(bin_dir / "prpc"), "call", "x", "not json"], env)
    assert bad.returncode == 2
    assert "ARGS_JSON" in bad.stderr


@pytest.mark.parametrize("case", ["unknown_plugin", "bad_toml", "missing_module", "bad_value",
                                  "unreachable", "abi_mismatch"])
def test_misconfigurations(case, bin_dir, env, tmp_path):
    host = str(bin_dir / "prpc-host")
    cmd, expect_code, expect_text = {
        "unknown_plugin": ([host, "--set", "broker.type=nats", "--set",
                            "functions.plugins=example"], 4, "no broker plugin named 'nats'"),
        "bad_toml": ([host, "--config", str(tmp_path / "bad.toml")], 3, "bad.toml:1:"),
        "missing_module": ([host, "--app", "no_such_module:app"], 3,
                           "cannot import 'no_such_module'"),
        "bad_value": ([host, "--set", "functions.plugins=example", "--set",
                       "server.max_in_flight=lots"], 3, "'lots' is not an integer"),
        "unreachable": ([host, "--set", "functions.plugins=example", "--set",
                         "broker.url=redis://127.0.0.1:1/0"], 5, "127.0.0.1:1"),
        "abi_mismatch": ([host, "--set", "functions.plugins=example", "--set",
                          "plugins.load=" + os.environ.get("PRPC_ABI_FIXTURE_DIR", "") +
                          "/prpc_codec_wrong_major.so"], 4, "major versions must match"),
    }[case]
    (tmp_path / "bad.toml").write_text("[broker\ntype = 1\n")
    out = run(cmd, env, timeout=60, cwd=tmp_path)
    assert out.returncode == expect_code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr  # one line, never a traceback wall
    assert lines[0].startswith("prpc-host: error: ")
    assert expect_text in lines[0]


def test_check_prints_the_selected_plugins_options(bin_dir, env):
    out = run([str(bin_dir / "prpc-host"), "--check", "--set", "functions.plugins=example"], env)
    assert out.returncode == 0, out.stderr
    assert "broker 'redis'" in out.stdout
    assert "codec 'jsonpickle' (python flavour)" in out.stdout
    assert "executor 'thread' (worker type 'thread')" in out.stdout
    assert "the configuration is valid" in out.stdout


def test_list_plugins_shows_abi_versions(bin_dir, env):
    out = run([str(bin_dir / "prpc-host"), "--list-plugins"], env)
    assert out.returncode == 0
    assert "broker 'redis'" in out.stdout
    assert f"(ABI {prpc._core.ABI_VERSION[0]}.{prpc._core.ABI_VERSION[1]})" in out.stdout
