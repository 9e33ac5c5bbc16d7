"""The README's Python examples run as written: its server, then each client block, as
separate scripts, against a private redis-server (only the broker's address is replaced)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"
BLOCK = re.compile(r"<!-- readme-test: (server|client) -->\n```python\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [code for k, code in BLOCK.findall(README.read_text()) if k == kind]


@pytest.fixture
def seed_queue(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    # The README's server passes no queue name: server and clients use the default, task_prpc.
    monkeypatch.setenv("PRPC_QUEUE_NAME", "task_prpc")
    env["PRPC_QUEUE_NAME"] = "task_prpc"


def test_the_readme_has_its_examples_marked():
    assert len(blocks("server")) == 1
    assert len(blocks("client")) >= 3


def test_readme_examples_run(seed_queue, start_app, env, redis_server, tmp_path):
    local = "redis://localhost:6379/0"
    [server] = blocks("server")
    assert local in server
    start_app(server.replace(local, "{URL}"))
    run_env = {**os.environ, **env, "PRPC_STUBS_DIR": str(tmp_path / "stubs")}
    made = subprocess.run([sys.executable, "-m", "prpc.create_server_func"], cwd=tmp_path,
                          env=run_env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    outputs = []
    for i, code in enumerate(blocks("client")):
        script = tmp_path / f"client_{i}.py"
        script.write_text(code.replace(local, redis_server.url))
        ran = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=run_env,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, f"README client block {i}:\n{code}\n{ran.stderr}"
        outputs.append(ran.stdout.split("\n"))
    idiomatic = outputs[1]
    assert idiomatic[0] == "3.5" and idiomatic[2] == "hello_world" and idiomatic[3] == "13"
    assert outputs[2][0] == "hello_world"  # the raw protocol with redis-py
