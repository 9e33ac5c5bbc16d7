"""The demo's Python example (examples/python, what `make demo` runs) works as written: its
server, stubs from create_server_func, and its client, against a private redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"


def test_the_demo_client_calls_the_demo_server(start_app, env, tmp_path):
    start_app((EXAMPLES / "server.py").read_text(), name="server.py")
    run_env = {**os.environ, **env, "PRPC_STUBS_DIR": str(tmp_path / "stubs")}
    made = subprocess.run([sys.executable, "-m", "prpc.create_server_func"], cwd=tmp_path,
                          env=run_env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    shutil.copy(EXAMPLES / "client.py", tmp_path / "client.py")
    ran = subprocess.run([sys.executable, "client.py"], cwd=tmp_path, env=run_env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "summ(1, 2) = 3.5"
    assert lines[1] == "summ(1, 2, z=10) = 13"
    assert lines[2] == "summ(date(2024, 2, 28), timedelta(days=1)) = datetime.date(2024, 2, 29)"
    assert lines[3].startswith("hello_world() = hello_world (answered in ")
    assert lines[4] == ("three greet() calls awaited together: "
                        "['hello, Ada!', 'hello, Grace!', 'hello, Linus!']")
    assert lines[5].startswith("divide(1, 0) raised prpc.RemoteError: ZeroDivisionError")
