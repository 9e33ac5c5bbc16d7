"""`prpc serve module:app` and the console scripts' launcher (_prpc_launcher, what a wheel's
`prpc` and `prpc-host` run): an AppServer served without `if __name__ == "__main__"`, by the
embedded interpreter and by a Python process of its own (how a wheel, which has no embedding
module, serves it), against a real redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_prpc_host import APP, Host, run, wait_ping

SERVED_APP = APP + '''
@app.decorator_reg_func()
def hosting_config():
    return os.environ.get("PRPC_HOSTING_CONFIG")
'''

# The launcher in the build tree's package finds the programs in <build>/bin.
PRPC = [sys.executable, "-m", "prpc"]
PRPC_HOST = [sys.executable, "-c", "from _prpc_launcher import prpc_host; prpc_host()"]


@pytest.mark.parametrize("mode", ["embedded", "python process"])
def test_prpc_serve_serves_an_app_server(mode, env, client, tmp_path):
    (tmp_path / "myservice.py").write_text(SERVED_APP)
    serve_env = dict(env)
    if mode == "python process":
        serve_env["PRPC_HOST_PYTHON_MODULE"] = str(tmp_path / "no_embedding_module.so")
    host = Host([*PRPC, "serve", "myservice:app"], serve_env, tmp_path)
    try:
        wait_ping(client, host)
        assert client.call("greet", "serve").result(20).startswith("hello serve from pid ")
        assert client.call("square", 9).result(30) == 81
        assert client.call("later", [1, 2]).result(20) == [1, 2]
        # The configuration (it may hold the broker's password) is not left in the environment.
        assert client.call("hosting_config").result(20) is None
        out = run([*PRPC, "call", "greet", '["shell"]'], env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout).startswith("hello shell")
        if mode == "python process":
            # The server is the Python process the launcher names (PRPC_PYTHON), not prpc-host.
            pid = int(client.call("greet").result(20).rsplit(" ", 1)[1])
            assert Path(f"/proc/{pid}/exe").resolve() == Path(sys.executable).resolve()
    finally:
        assert host.stop() == 0, (tmp_path / "host.log").read_text()


@pytest.mark.parametrize("mode", ["embedded", "python process"])
def test_prpc_serve_check_and_errors(mode, env, tmp_path):
    (tmp_path / "myservice.py").write_text(APP)
    serve_env = dict(env)
    if mode == "python process":
        serve_env["PRPC_HOST_PYTHON_MODULE"] = str(tmp_path / "no_embedding_module.so")
    check = run([*PRPC, "serve", "myservice:app", "--check"], serve_env, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "myservice:app: 3 functions" in check.stdout
    assert "square  [process]" in check.stdout
    missing = run([*PRPC, "serve", "no_such_module:app"], serve_env, cwd=tmp_path)
    assert missing.returncode == 3
    assert "cannot import 'no_such_module'" in missing.stderr
    usage = run([*PRPC, "serve"], serve_env, cwd=tmp_path)
    assert usage.returncode == 2
    assert "serve needs one MODULE:ATTR" in usage.stderr
    misplaced = run([*PRPC, "call", "greet", "--check"], serve_env, cwd=tmp_path)
    assert misplaced.returncode == 2
    assert "--check goes with serve" in misplaced.stderr


def test_python_process_mode_names_a_missing_interpreter(env, tmp_path):
    (tmp_path / "myservice.py").write_text(APP)
    serve_env = dict(env, PRPC_HOST_PYTHON_MODULE=str(tmp_path / "none.so"),
                     PRPC_PYTHON=str(tmp_path / "no-python"))
    out = run([*PRPC, "serve", "myservice:app"], serve_env, cwd=tmp_path)
    assert out.returncode == 4
    assert "no-python, which cannot be started" in out.stderr


def test_launcher_runs_the_bundled_programs(env):
    helped = run([*PRPC, "--help"], env)
    assert helped.returncode == 0
    assert "serve MODULE:ATTR" in helped.stdout
    listed = run([*PRPC_HOST, "--list-plugins"], env)
    assert listed.returncode == 0, listed.stderr
    assert "broker 'redis'" in listed.stdout
    # The user's own plugin directories come first.
    mine = run([*PRPC_HOST, "--list-plugins"], dict(env, PRPC_PLUGIN_PATH="/opt/mine"))
    assert mine.stdout.split("plugin path:\n", 1)[1].startswith("  /opt/mine\n")


def test_python_m_prpc_exit_code_is_the_programs(env):
    out = subprocess.run([*PRPC, "no-such-command"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown command 'no-such-command'" in out.stderr
