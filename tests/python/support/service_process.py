"""Child processes for the broker fixtures: free loopback ports, bounded polling, and servers
that die with the test process (PR_SET_PDEATHSIG) and in their own session (a stuck child
cannot take the test's signals).

The Python counterpart of tests/support/process.{hpp,cpp}.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def free_port(taken: Iterable[int] = ()) -> int:
    """A loopback TCP port that was free a moment ago and is not in ``taken``."""
    taken = set(taken)
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Polls ``condition`` until it is true or ``timeout`` seconds pass (a bound, not a guess)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_process(argv: list[str], log_path: pathlib.Path,
                  env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Starts ``argv`` with stdout and stderr appended to ``log_path``.

    The kernel ties the death signal to the thread that forked, so it is only asked for from
    the main thread (a helper thread that restarts a server ends before the test does)."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    main = threading.current_thread() is threading.main_thread()
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True,
                                preexec_fn=_die_with_parent if main else None)


def kill_process(proc: subprocess.Popen | None) -> None:
    """SIGKILL and reap (no zombie, no ResourceWarning)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def stop_process(proc: subprocess.Popen | None, grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        if proc is not None:
            proc.wait()
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill_process(proc)


def run_program(argv: list[str], timeout: float = 60.0,
                cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    """Runs a short-lived helper (redis-cli, openssl, keytool); output captured as text.
    Raises RuntimeError with the output when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    return result


def file_tail(path: pathlib.Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return ""


def remove_unless_failed(session, directory: pathlib.Path, failed_before: int) -> None:
    """Removes a fixture's directory (data, keys, logs) when no test failed while it was in
    use; otherwise pytest's temporary directory keeps it for a look."""
    if session.testsfailed == failed_before:
        shutil.rmtree(directory, ignore_errors=True)
