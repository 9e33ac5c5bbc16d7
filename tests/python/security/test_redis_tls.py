"""Redis over TLS: `rediss://` is refused with one line that says what to do instead, and what it
says works: a TLS Redis (client certificates required) reached through a local TLS tunnel, the
way docs/security.md deploys it (stunnel there; here a few lines of Python doing the same)."""

from __future__ import annotations

import json
import pathlib
import socket
import ssl
import threading

import pytest
from conftest import LOG_DIR, Service, run, secret, wait_serving
from redis_acl_fixture import RedisAclServer
from service_process import free_port, run_program

import prpc


def make_certificates(d: pathlib.Path) -> dict[str, pathlib.Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (EC P-256)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run_program(["openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out",
                 str(d / "ca.pem"), "-days", "2", "-subj", "/CN=prpc-test-ca"])
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        (d / f"{name}.ext").write_text(ext)
        run_program(["openssl", "req", *ec, "-keyout", str(d / f"{name}.key"), "-out",
                     str(d / f"{name}.csr"), "-subj", f"/CN=prpc-{name}"])
        run_program(["openssl", "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA",
                     str(d / "ca.pem"), "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out",
                     str(d / f"{name}.pem"), "-days", "2", "-extfile", str(d / f"{name}.ext")])
    return {n: d / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


class TlsTunnel:
    """stunnel's client mode: plain TCP in on a loopback port, TLS out to `target_port`, the
    server's certificate checked against the CA (host name included), a client certificate
    shown."""

    def __init__(self, target_port: int, certs: dict[str, pathlib.Path]) -> None:
        self._context = ssl.create_default_context(cafile=str(certs["ca.pem"]))
        self._context.load_cert_chain(str(certs["client.pem"]), str(certs["client.key"]))
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                plain, _ = self._listener.accept()
            except OSError:
                return  # closed
            tls = self._context.wrap_socket(socket.create_connection(("127.0.0.1", self._target)),
                                            server_hostname="127.0.0.1")
            self._sockets += [plain, tls]
            self._start(self._pump, plain, tls)
            self._start(self._pump, tls, plain)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        for s in self._sockets:
            s.close()
        for t in self._threads:
            t.join(10)


@pytest.fixture
def tls_redis():
    """A redis-server whose TLS port requires a client certificate; its plain port stays for
    the fixture's own admin login."""
    directory = LOG_DIR / f"redis-tls-{secret('unused')[:8]}"
    directory.mkdir()
    certs = make_certificates(directory)
    tls_port = free_port()
    server = RedisAclServer(directory, password=secret("redis-password"), extra_config=[
        f"tls-port {tls_port}", f"tls-cert-file {certs['server.pem']}",
        f"tls-key-file {certs['server.key']}", f"tls-ca-cert-file {certs['ca.pem']}",
        "tls-auth-clients yes"])
    tunnel = TlsTunnel(tls_port, certs)
    try:
        yield server, tls_port, tunnel
    finally:
        tunnel.close()
        server.close()


def test_rediss_is_refused_in_one_line(bin_dir, queue):
    password = secret("redis-password")
    url = f"rediss://prpc:{password}@127.0.0.1:6380/0"
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue}
    out = run([str(bin_dir / "prpc"), "stats"], env, name="rediss-cli")
    assert out.returncode == 4  # the broker plugin refused its options
    assert out.stdout == ""
    # (Above it: the debug log lines this suite turns on.)
    error = out.stderr.splitlines()[-1]
    assert error.startswith("prpc: error: ") and "rediss:// (TLS) is not supported" in error
    assert "TLS tunnel" in error and "docs/security.md" in error
    assert password not in out.stderr
    with pytest.raises(prpc.PRPCError, match="TLS tunnel"):
        prpc.Client("redis", url, queue)


def test_a_tls_redis_through_a_tunnel(tls_redis, bin_dir, queue, services, tmp_path):
    server, tls_port, tunnel = tls_redis
    url = server.url().replace(f":{server.port}/", f":{tunnel.port}/")
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue}
    config = tmp_path / "prpc.toml"
    config.write_text('[functions]\nplugins = ["example"]\n')
    host = Service([str(bin_dir / "prpc-host"), "--config", str(config)], env, tmp_path,
                   "tls-host")
    services.append(host)
    with prpc.Client("redis", url, queue) as client:
        wait_serving(client, host)
        assert client.call("summ", 1, 2).result(20) == 3.5
        out = run([str(bin_dir / "prpc"), "call", "hello_world"], env, name="tls-cli")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == "hello_world"
        # Every connection of the user came in on the TLS port.
        clients = server.admin_client().client_list()
        ours = [c for c in clients if c["user"] == "prpc"]
        assert len(ours) >= 4  # the host's commands and reads, the client's commands and replies
        assert {c["laddr"] for c in ours} == {f"127.0.0.1:{tls_port}"}


def test_plain_redis_to_a_tls_port_fails_and_says_so(tls_redis, bin_dir, queue):
    server, tls_port, _ = tls_redis
    url = server.url().replace(f":{server.port}/", f":{tls_port}/")
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue,
           "PRPC_BROKER__OPTIONS__CONNECT_TIMEOUT": "2s"}
    out = run([str(bin_dir / "prpc"), "stats"], env, name="tls-plain-cli")
    assert out.returncode == 5, out.stderr  # the broker is unreachable
    assert out.stderr.splitlines()[-1].startswith("prpc: error: connect: cannot reach Redis")
    assert server.password not in out.stderr
