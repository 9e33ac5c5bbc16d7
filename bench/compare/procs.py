"""Processes the harness starts: the private redis-server (and Kafka broker and nats-server for
the systems that need them), each system's server, and the sampler that follows a server's peak
memory over its whole process tree."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Polls `condition` until it is truthy; raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Server:
    """A child process in its own process group (so its workers go down with it), output to a
    log file."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 3.0) -> int:
        """SIGTERM to the group, SIGKILL to whatever is left after `grace` seconds."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Workers that outlive their parent are still in the group we created.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class RedisServer:
    """A private redis-server on a free loopback port, no persistence."""

    def __init__(self, workdir: Path, redis_server: str = "redis-server") -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.server = Server(
            [redis_server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--maxclients", "10000"],
            workdir / "redis.log", dict(os.environ), workdir)
        wait_until(self._answers, 20, "redis-server to answer PING")

    def command(self, *args: str) -> bytes:
        """One command over a fresh connection with the inline protocol's binary-safe form."""
        payload = f"*{len(args)}\r\n".encode()
        for a in args:
            data = a.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(payload)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply

    def _answers(self) -> bool:
        if not self.server.alive():
            raise RuntimeError("redis-server exited:\n" + tail(self.server.log_path))
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def flushall(self) -> None:
        reply = self.command("FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL answered {reply!r}")

    def version(self) -> str:
        info = self.command("INFO", "server").decode(errors="replace")
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def stop(self) -> None:
        self.server.stop()


def nats_server_binary() -> str | None:
    """Debian installs nats-server in /usr/sbin, which a user's PATH may lack."""
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/sbin")


class NatsServer:
    """A private nats-server on a free loopback port: core NATS only (no JetStream, so nothing
    is stored), no monitoring port."""

    def __init__(self, workdir: Path) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server is not installed (Debian package nats-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.server = Server([binary, "--addr", "127.0.0.1", "--port", str(self.port)],
                             workdir / f"nats-{self.port}.log", dict(os.environ), workdir)
        try:
            wait_until(self._answers, 20, "nats-server to answer PING")
        except BaseException:
            self.server.stop()
            raise

    def _answers(self) -> bool:
        if not self.server.alive():
            raise RuntimeError("nats-server exited:\n" + tail(self.server.log_path))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                # The server greets with INFO; a PING before CONNECT is answered with PONG.
                s.sendall(b"PING\r\n")
                data = b""
                while b"PONG\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                return data.startswith(b"INFO ")
        except OSError:
            return False

    def stop(self) -> None:
        self.server.stop()


def nats_server_version() -> str:
    binary = nats_server_binary()
    if binary is None:
        return "not installed"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    # "nats-server: v2.9.10"
    return out.stdout.strip().rsplit(" ", 1)[-1].lstrip("v") or "?"


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_rss_bytes(root: int) -> int:
    total = 0
    for pid in _process_tree(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakRss:
    """Samples the summed RSS of a process tree every `interval` seconds in a thread."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class KafkaServer:
    """A private Apache Kafka broker (KRaft, one node) on free loopback ports, from the jars that
    scripts/deps.sh kafka put in the local Maven repository, configured like the test fixtures'."""

    def __init__(self, workdir: Path, repo: Path) -> None:
        script = repo / "tests" / "support" / "kafka" / "kafka-classpath.sh"
        found = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
        if found.returncode != 0 or not found.stdout.strip():
            raise RuntimeError("no Kafka jars (run scripts/deps.sh kafka): " + found.stderr.strip()[-200:])
        classpath = found.stdout.strip()
        self.port = free_port()
        controller = free_port()
        while controller == self.port:
            controller = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        d = workdir / "kafka"
        d.mkdir(parents=True, exist_ok=True)
        (d / "server.properties").write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://{self.bootstrap}",
            "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={d / 'data'}", "num.partitions=1", "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=1000",
            "num.network.threads=2", "num.io.threads=2", "background.threads=2", ""]))
        (d / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, file\nlog4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={d / 'kafka.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        fmt = subprocess.run(
            ["java", "-Xshare:auto", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
             _cluster_id(), "-c", str(d / "server.properties")],
            capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise RuntimeError("kafka StorageTool format failed: " + fmt.stdout[-300:])
        self.server = Server(
            ["java", "-Xms256m", "-Xmx768m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
             f"-Dlog4j.configuration=file:{d / 'log4j.properties'}", f"-Dkafka.logs.dir={d}",
             "-cp", classpath, "kafka.Kafka", str(d / "server.properties")],
            d / "stdout.log", dict(os.environ), d)
        try:
            wait_until(self._listening, 120, f"Kafka to listen on {self.bootstrap}")
        except BaseException:
            self.server.stop()
            raise

    def _listening(self) -> bool:
        if not self.server.alive():
            raise RuntimeError("Kafka exited:\n" + tail(self.server.log_path))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.server.stop(grace=20)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding."""
    import base64

    while True:  # an id that starts with '-' would be read as an option by the format tool
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
