"""Runs the stand-ins of the original PRPC (tests/python/compat/original) in child processes,
with the original's pinned dependencies: jsonpickle 3.3.0, redis 5.1.0, pydantic 2.9.2 and
kafka-python 2.0.2, installed once with pip into a cache directory of their own (never into the
environment the tests run in, which has our prpc and a newer jsonpickle)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

PINS = ["jsonpickle==3.3.0", "redis==5.1.0", "pydantic==2.9.2", "kafka-python==2.0.2"]
STAND_INS = Path(__file__).resolve().parents[1] / "compat" / "original"


def dependencies() -> Path:
    """The directory holding the pinned packages, installed on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prpc"
    target = cache / ("original-prpc-deps-" + hashlib.sha256(" ".join(PINS).encode())
                      .hexdigest()[:12])
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="original-deps-", dir=cache))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-warn-conflicts", "--progress-bar=off", "--target", str(staging), *PINS],
        capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError("installing the original PRPC's dependencies failed:\n" + done.stderr)
    (staging / ".complete").write_text("\n".join(PINS))
    try:
        staging.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target


class Original:
    """Runs original_client.py / original_server.py as the original's code would run."""

    def __init__(self) -> None:
        self.deps = dependencies()
        self.servers: list[subprocess.Popen[str]] = []

    def env(self, env: dict[str, str]) -> dict[str, str]:
        # Only the stand-in package and the pinned dependencies: our prpc must not be found.
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_PRELOAD")}
        clean.update(env)
        clean["PYTHONPATH"] = f"{STAND_INS}{os.pathsep}{self.deps}"
        clean["PYTHONNOUSERSITE"] = "1"
        return clean

    def call(self, env: dict[str, str], calls: list[tuple[str, list[Any], dict[str, Any]]],
             poll: float = 0.2, timeout: float = 60) -> list[dict[str, Any]]:
        run_env = self.env(env)
        run_env["ORIGINAL_POLL_SECONDS"] = str(poll)
        run_env["ORIGINAL_TIMEOUT_SECONDS"] = str(timeout)
        done = subprocess.run(
            [sys.executable, "-W", "ignore", str(STAND_INS / "original_client.py"),
             json.dumps(calls)],
            env=run_env, capture_output=True, text=True, timeout=timeout + 60)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

    def serve(self, env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", str(STAND_INS / "original_server.py")],
            env=self.env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", line + proc.stdout.read()
        return proc

    def close(self) -> None:
        for proc in self.servers:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.servers.clear()


@pytest.fixture(scope="session")
def original() -> Any:
    stand_in = Original()
    yield stand_in
    stand_in.close()
