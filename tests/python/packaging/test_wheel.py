"""The wheel `make wheel` writes: built once (scripts/wheel.sh), installed into an empty venv with
nothing else, and used the way a Python user would: its files, its commands, ldd on every ELF
file it holds, and the seed's example served with `prpc serve` and called with `prpc call`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sdk_fixtures import wait_until

ROOT = Path(__file__).resolve().parents[3]
WORK = Path(os.environ.get("PRPC_PACKAGING_DIR", ROOT / "build" / "packaging"))
PLUGINS = ["broker_memory", "broker_redis", "broker_kafka", "codec_rawjson", "codec_jsonpickle",
           "executor_thread", "executor_process", "executor_async", "functions_example"]
PROGRAMS = ["prpc", "prpc-host", "prpc-worker"]
# What must be bundled: these never come from the system.
BUNDLED = ["hiredis", "rdkafka", "ssl", "crypto", "sasl2", "zstd", "lz4"]

SEED_APP = '''from prpc.app_server import AppServer
import time
import datetime

app = AppServer("redis", "redis://localhost:6379/0", "thread", 4, datetime.timedelta(seconds=100))


@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z


@app.decorator_reg_func()
def hello_world():
    time.sleep(0.5)
    return "hello_world"


if __name__ == "__main__":
    app.start()
'''


@pytest.fixture(scope="module")
def wheel() -> Path:
    dist = WORK / "dist"
    for old in dist.glob("prpc-*.whl"):
        old.unlink()
    env = dict(os.environ, PRPC_DIST_DIR=str(dist))
    env.pop("PYTHONPATH", None)
    built = subprocess.run([str(ROOT / "scripts" / "wheel.sh")], env=env, capture_output=True,
                           text=True, timeout=1500)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels = list(dist.glob("prpc-*.whl"))
    assert len(wheels) == 1, built.stdout[-2000:]
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with the wheel and nothing else (no index: it needs no other package)."""
    path = tmp_path_factory.mktemp("venv")
    # The interpreter the wheel was built for (.venv's), so its tags match.
    python = Path(os.environ.get("PRPC_VENV", ROOT / ".venv")) / "bin" / "python3"
    subprocess.run([str(python), "-m", "venv", str(path)], check=True, timeout=120)
    subprocess.run([str(path / "bin" / "pip"), "install", "-q", "--no-index", str(wheel)],
                   check=True, timeout=300)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """No build-tree package, no plugin path: only what the venv brings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PRPC_PLUGIN_PATH", "PRPC_PYTHON", "LD_LIBRARY_PATH")}
    env.update(extra)
    return env


def site_packages(venv: Path) -> Path:
    code = "import prpc, os; print(os.path.dirname(os.path.dirname(prpc.__file__)))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code],
                         capture_output=True, text=True, env=clean_env(), check=True, timeout=60)
    return Path(out.stdout.strip())


def test_the_wheel_is_named_for_a_manylinux_platform(wheel):
    version = re.search(r'PRPC_VERSION_STRING "([^"]+)"',
                        (ROOT / "sdk/include/prpc/version.h").read_text()).group(1)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert re.fullmatch(rf"prpc-{re.escape(version)}-{tag}-{tag}-manylinux_2_\d+_x86_64\.whl",
                        wheel.name), wheel.name


def test_the_wheel_holds_the_programs_plugins_libraries_and_commands(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for program in PROGRAMS:
        assert f"prpc/bin/{program}" in names
    for plugin in PLUGINS:
        assert f"prpc/plugins/prpc_{plugin}.so" in names
    assert any(re.fullmatch(r"prpc/_core\.cpython-.*\.so", n) for n in names)
    libs = [n for n in names if n.startswith("prpc.libs/")]
    for lib in BUNDLED:
        assert any(re.match(rf"prpc\.libs/lib{lib}[-.]", n) for n in libs), (lib, libs)
    # The embedding module links libpython, which the manylinux policy forbids: not in a wheel.
    assert not any("prpc_host_python" in n for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "prpc = _prpc_launcher:prpc" in text
    assert "prpc-host = _prpc_launcher:prpc_host" in text
    assert "_prpc_launcher.py" in names


def test_every_library_resolves_inside_the_package(venv):
    site = site_packages(venv)
    files = [p for d in (site / "prpc", site / "prpc.libs") for p in d.rglob("*")
             if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]
    assert len(files) >= len(PLUGINS) + len(PROGRAMS) + len(BUNDLED)
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, timeout=60,
                             env=clean_env())
        assert out.returncode == 0, (f, out.stderr)
        assert "not found" not in out.stdout, (f, out.stdout)
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "=>" and any(
                    re.match(rf"lib{lib}[-.]", parts[0]) for lib in BUNDLED):
                assert parts[2].startswith(str(site) + "/"), (f, line)


def test_the_commands_work_from_the_venv(venv):
    env = clean_env()
    helped = subprocess.run([str(venv / "bin" / "prpc"), "--help"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "serve MODULE:ATTR" in helped.stdout and "gen-stubs" in helped.stdout
    host = subprocess.run([str(venv / "bin" / "prpc-host"), "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert host.returncode == 0 and "--app MODULE:ATTR" in host.stdout
    listed = subprocess.run([str(venv / "bin" / "prpc-host"), "--list-plugins"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "refused" not in listed.stdout, listed.stdout
    for plugin in PLUGINS:
        assert str(site_packages(venv) / "prpc" / "plugins" / f"prpc_{plugin}.so") in listed.stdout


def test_prpc_serve_from_the_wheel_serves_the_seed_example(venv, redis_server, tmp_path):
    (tmp_path / "app.py").write_text(SEED_APP)
    env = clean_env(PRPC_TYPE_BROKER="redis", PRPC_URL_BROKER=redis_server.url,
                    PRPC_QUEUE_NAME="wheel_q")
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([str(venv / "bin" / "prpc"), "serve", "app:app"], cwd=tmp_path,
                              env=env, stdout=log, stderr=subprocess.STDOUT)

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / "prpc"), "call", *args],
                              capture_output=True, text=True, env=env, timeout=60)

    def answers() -> bool:
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        return call("hello_world", "--timeout", "1").returncode == 0

    try:
        wait_until(answers, 60, "prpc serve to answer")
        summed = call("summ", "[1, 2]")  # on a process worker of the venv's Python
        assert summed.returncode == 0, summed.stderr
        assert json.loads(summed.stdout) == 3.5
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, (tmp_path / "serve.log").read_text()
        log.close()
