"""The prpc command-line client as an operator uses it against a real redis-server and prpc-host:
requeueing dead letters, generating stubs like `python -m prpc.create_server_func`, and escape
codes only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import prpc
from sdk_fixtures import wait_until
from test_prpc_host import Host, run, wait_ping

SERVE_EXAMPLE = """
[functions]
plugins = ["example"]
[executors.thread]
workers = 2
[server]
max_deliveries = 3
visibility_timeout = "300ms"
"""

ESCAPE = "\x1b["


@pytest.fixture
def example_host(bin_dir, env, client, tmp_path):
    config = tmp_path / "prpc.toml"
    config.write_text(SERVE_EXAMPLE)
    host = Host([str(bin_dir / "prpc-host"), "--config", str(config)], env, tmp_path)
    try:
        wait_ping(client, host)
        yield host
    finally:
        assert host.stop() == 0


def strand(redis_client, queue: str, func: str, args: list, times: int) -> str:
    """A raw request pending under a consumer that is gone, already delivered `times` times."""
    message_id = str(uuid.uuid4())
    stream = f"prpc_raw_{queue}"
    try:
        redis_client.xgroup_create(stream, "prpc_group_consumers", id="0", mkstream=True)
    except Exception:  # the group exists already  # noqa: BLE001
        pass
    payload = json.dumps({"func_name": func, "func_args": args, "message_id": message_id})
    entry = redis_client.xadd(stream, {"message": payload})
    redis_client.xreadgroup("prpc_group_consumers", "gone", {stream: ">"}, count=1)
    redis_client.xclaim(stream, "prpc_group_consumers", "gone", 0, [entry], retrycount=times)
    return message_id


def stored(redis_client, queue: str, message_id: str) -> dict | None:
    raw = redis_client.get(f"prpc_feedback_raw_{queue}_{message_id}")
    return json.loads(raw) if raw is not None else None


def served_again(redis_client, queue: str, message_id: str) -> bool:
    """The requeued call's new result is stored. Requeueing deletes the stored error, so until the
    server answers again there is no result at all."""
    result = stored(redis_client, queue, message_id)
    return result is not None and result["exception_info"] is None


def test_dead_letters_requeue(bin_dir, env, redis_server, tmp_path):
    q = env["PRPC_QUEUE_NAME"]
    r = redis_server.client
    prpc_cli = str(bin_dir / "prpc")
    empty = run([prpc_cli, "dead-letters", "--requeue"], env)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == f"requeued 0 dead letters of queue {q}\n"

    # Two requests delivered too often: the server dead-letters them and stores their errors.
    first = strand(r, q, "hello_world", [], 3)
    second = strand(r, q, "summ", [2, 3, 4], 3)
    config = tmp_path / "prpc.toml"
    config.write_text(SERVE_EXAMPLE)
    host = Host([str(bin_dir / "prpc-host"), "--config", str(config)], env, tmp_path)
    try:
        wait_until(lambda: stored(r, q, first) and stored(r, q, second), 30, "dead letters")
        assert stored(r, q, first)["exception_info"].startswith("DeadLetterError")
        listed = run([prpc_cli, "dead-letters", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        letters = json.loads(listed.stdout)
        assert len(letters) == 2
        first_id = next(d["id"] for d in letters if first in d["payload"])

        # One by id: it is served again (not answered from its stored error); the other stays.
        one = run([prpc_cli, "dead-letters", "--requeue", "--id", first_id], env)
        assert one.returncode == 0, one.stderr
        assert one.stdout == f"requeued {first_id}\nrequeued 1 dead letter of queue {q}\n"
        wait_until(lambda: served_again(r, q, first), 30, "the requeued call")
        assert stored(r, q, first)["result"] == "hello_world"
        assert stored(r, q, second)["exception_info"].startswith("DeadLetterError")

        # An id that is not there: said on stderr, exit 1, nothing else touched.
        missing = run([prpc_cli, "dead-letters", "--requeue", "--id", "1-1", "--json"], env)
        assert missing.returncode == 1
        assert json.loads(missing.stdout) == {"queue": q, "requeued": 0, "ids": [],
                                              "not_found": ["1-1"]}
        assert missing.stderr.startswith("prpc: error: not requeued")
        assert "1-1" in missing.stderr

        # The rest, as JSON.
        rest = run([prpc_cli, "dead-letters", "--requeue", "--json"], env)
        assert rest.returncode == 0, rest.stderr
        assert json.loads(rest.stdout) == {"queue": q, "requeued": 1}
        wait_until(lambda: served_again(r, q, second), 30, "the second call")
        assert stored(r, q, second)["result"] == 9
        stats = json.loads(run([prpc_cli, "stats", "--json"], env).stdout)
        assert stats["dead_letters"] == 0
    finally:
        assert host.stop() == 0


def test_requeue_on_a_broker_that_cannot(bin_dir, env):
    """A broker plugin built for ABI 1.0 (like any broker without the operation, Kafka's)."""
    fixtures = os.environ.get("PRPC_ABI_FIXTURE_DIR", "")
    out = run([str(bin_dir / "prpc"), "--set", "broker.type=old_broker", "--set",
               "plugins.load=" + fixtures + "/prpc_broker_old_broker.so",
               "dead-letters", "--requeue"], env)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == "prpc: error: this broker cannot requeue dead letters\n"


def test_requeue_usage_errors(bin_dir, env):
    prpc_cli = str(bin_dir / "prpc")
    assert run([prpc_cli, "dead-letters", "--id", "1-0"], env).returncode == 2
    assert run([prpc_cli, "stats", "--requeue"], env).returncode == 2


def without_stamp(text: str) -> str:
    return re.sub(r" at \d{4}-\d\d-\d\dT[0-9:+.-]+\.$", " at STAMP.", text, flags=re.M)


def test_gen_stubs_writes_what_the_python_module_writes(bin_dir, env, example_host, tmp_path):
    module = subprocess.run(
        [sys.executable, "-m", "prpc.create_server_func", "--output", str(tmp_path / "a.py")],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, **env))
    assert module.returncode == 0, module.stderr
    cli = run([str(bin_dir / "prpc"), "gen-stubs", "--output", str(tmp_path / "b.py")], env)
    assert cli.returncode == 0, cli.stderr
    assert cli.stderr == module.stderr == ""
    assert cli.stdout == module.stdout.replace("a.py", "b.py")
    assert "summ" in cli.stdout
    a = (tmp_path / "a.py").read_text()
    b = (tmp_path / "b.py").read_text()
    assert without_stamp(b) == without_stamp(a)
    assert "def summ(" in b
    # The default file name, in the working directory, and the queue from --queue.
    other = run([str(bin_dir / "prpc"), "--queue", env["PRPC_QUEUE_NAME"], "gen-stubs"], env,
                cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert without_stamp((tmp_path / "server_func.py").read_text()) == without_stamp(a)


def test_gen_stubs_without_python_or_the_package(bin_dir, env, tmp_path):
    nopython = run([str(bin_dir / "prpc"), "gen-stubs"],
                   dict(env, PRPC_PYTHON=str(tmp_path / "no-python")), cwd=tmp_path)
    assert nopython.returncode == 7
    assert nopython.stderr.startswith("prpc: error: gen-stubs runs ")
    assert len(nopython.stderr.splitlines()) == 1
    # A Python that ignores PYTHONPATH (-I) does not find the package of this build.
    isolated = tmp_path / "isolated-python"
    isolated.write_text(f'#!/bin/sh\nexec {sys.executable} -I "$@"\n')
    isolated.chmod(0o755)
    nopackage = run([str(bin_dir / "prpc"), "gen-stubs"], dict(env, PRPC_PYTHON=str(isolated)),
                    cwd=tmp_path)
    if nopackage.returncode == 0:
        pytest.skip("prpc is installed in this Python's site-packages")
    assert nopackage.returncode == 7
    assert nopackage.stderr.startswith("prpc: error: gen-stubs needs the prpc Python package")
    assert len(nopackage.stderr.splitlines()) == 1
    assert not (tmp_path / "server_func.py").exists()


def on_terminal(cmd: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Runs cmd with stdout and stderr on a pseudo-terminal; returns its exit code and output."""
    leader, follower = pty.openpty()
    full = dict(os.environ)
    full.update(env)
    full["TERM"] = "xterm"
    proc = subprocess.Popen(cmd, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            env=full)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout), out.decode(errors="replace")


def test_colour_and_progress_only_on_a_terminal(bin_dir, env, example_host):
    prpc_cli = str(bin_dir / "prpc")
    nobody = dict(env, PRPC_QUEUE_NAME="nobody_" + uuid.uuid4().hex[:8])
    # Piped: never an escape code, whatever the command and outcome.
    for cmd, e in [(["funcs"], env), (["call", "fail", '["x"]'], env),
                   (["call", "slow", "[1.2]"], env), (["stats"], env),
                   (["dead-letters"], env), (["call", "x", "--timeout", "0.3"], nobody)]:
        out = run([prpc_cli, *cmd], e)
        assert ESCAPE not in out.stdout + out.stderr, cmd
    slow = run([prpc_cli, "call", "slow", "[1.2]"], env)
    assert "waiting" not in slow.stderr
    assert slow.stdout == "1.2\n"

    # On a terminal: function names in bold, errors in red, a progress line for a slow call.
    code, text = on_terminal([prpc_cli, "funcs"], env)
    assert code == 0
    assert "\x1b[1msumm\x1b[0m(" in text
    code, text = on_terminal([prpc_cli, "call", "x", "--timeout", "0.3"], nobody)
    assert code == 6
    assert "\x1b[31mprpc: error: no reply within 300 ms" in text
    code, text = on_terminal([prpc_cli, "call", "slow", "[1.5]"], env)
    assert code == 0
    assert "waiting for a reply from queue" in text
    assert text.endswith("\r\x1b[K1.5\r\n")  # the line is erased before the result

    # ... but not with NO_COLOR, nor with --json.
    for cmd, e in [(["funcs"], dict(env, NO_COLOR="1")), (["--json", "funcs"], env),
                   (["--json", "call", "slow", "[1.2]"], env)]:
        code, text = on_terminal([prpc_cli, *cmd], e)
        assert code == 0, text
        assert ESCAPE not in text, cmd
