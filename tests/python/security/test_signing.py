"""Signed messages over real Redis (docs/security.md): a Python AppServer with a signing key runs
what a client with the key sends and the README's signed requests (its shell and Python `hmac`
examples, run as they are written); an unsigned request is dead-lettered with the reason and its
function never runs; prpc-host --check names the key by its id only."""

from __future__ import annotations

import json
import pathlib
import re
import sys
import uuid

import pytest
from conftest import Service, run, secret, wait_serving, write_app
from redis_fixture import RedisServer
from service_process import wait_until

import prpc

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"

APP = """
import os
from prpc import AppServer

app = AppServer("redis", "{url}", "thread", 2, name_queue="{queue}",
                signing_key=os.environ["SECURITY_TEST_KEY"])

@app.decorator_reg_func()
def hello_world():
    with open("{ran}", "a") as f:        # the side effect: one line per call that ran
        f.write("ran\\n")
    return "hello_world"

if __name__ == "__main__":
    app.start()
"""


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.close()


def readme_block(tag: str, language: str) -> str:
    found = re.search(rf"<!-- readme-test: {tag} -->\n```{language}\n(.*?)```", README.read_text(),
                      re.S)
    assert found, f"README.md has no {tag} block"
    return found.group(1)


def runs(ran: pathlib.Path) -> int:
    return len(ran.read_text().splitlines()) if ran.exists() else 0


def test_signed_calls_run_and_unsigned_requests_do_not(redis_server, queue, services, tmp_path,
                                                      bin_dir):
    key = secret("signing-key")
    ran = tmp_path / "ran.txt"
    url = redis_server.url()
    app = write_app(tmp_path, APP.format(url=url, queue=queue, ran=ran))
    server = Service([sys.executable, str(app)], {"SECURITY_TEST_KEY": key}, tmp_path,
                     "signing-app")
    services.append(server)

    with prpc.Client("redis", url, queue, raw=True, signing_key=key) as client:
        wait_serving(client, server)
        before = runs(ran)
        assert client.call("hello_world").result(20) == "hello_world"
        assert runs(ran) == before + 1

    # The README's examples, on this server's port and queue, signing with the key from the
    # environment as they say.
    env = {"PRPC_SIGNING_KEY": key}
    shell = (readme_block("signed-shell", "sh")
             .replace("redis-cli", f"redis-cli -p {redis_server.port}")
             .replace("task_prpc", queue))
    out = run(["bash", "-euo", "pipefail", "-c", shell], env, name="signing-readme-shell",
              timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["result"] == "hello_world"
    python = (readme_block("signed-python", "python")
              .replace("redis://localhost:6379/0", url)
              .replace("task_prpc", queue))
    out = run([sys.executable, "-c", python], env, name="signing-readme-python", timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "hello_world"
    assert runs(ran) == before + 3

    # Unsigned: as an original PRPC client or any raw one sends it, and from a client without a
    # key, which learns why from the (unsigned) reply.
    admin = redis_server.client()
    message_id = str(uuid.uuid4())
    admin.xadd(f"prpc_raw_{queue}", {"message": json.dumps(
        {"func_name": "hello_world", "func_args": [], "func_kwargs": {},
         "message_id": message_id})})
    result_key = f"prpc_feedback_raw_{queue}_{message_id}"
    assert wait_until(lambda: admin.exists(result_key), 20)
    reply = json.loads(admin.get(result_key))
    assert reply["exception_info"].startswith("SignatureError: unsigned request"), reply
    assert not admin.exists(f"{result_key}:signature")
    with (prpc.Client("redis", url, queue, raw=True) as keyless,
          pytest.raises(prpc.RemoteError) as refused):
        keyless.call("hello_world").result(20)
    assert refused.value.remote_type == "SignatureError"
    # A signature by another key is refused the same way; neither error shows a key.
    other_key = secret("signing-key")
    with (prpc.Client("redis", url, queue, raw=True, signing_key=other_key) as other,
          pytest.raises(prpc.PRPCError) as foreign):
        other.call("hello_world").result(20)
    for error in (refused.value, foreign.value):
        assert key not in str(error) and other_key not in str(error), error

    cli_env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": url, "PRPC_QUEUE_NAME": queue}
    letters = json.loads(run([str(bin_dir / "prpc"), "dead-letters", "--json"], cli_env,
                             name="signing-dead-letters").stdout)
    reasons = sorted(d["reason"] for d in letters)
    assert len(reasons) == 3, letters
    assert reasons[0].startswith("the request is signed with an unknown key (key id "), reasons
    assert reasons[1:] == ["unsigned request: signed messages are required (a signing key is "
                           "configured)"] * 2, reasons
    assert runs(ran) == before + 3  # none of them ran
    assert server.proc.poll() is None

    # prpc-host --check says signing is on and names the key by its id, never the key.
    config = tmp_path / "prpc.toml"
    config.write_text('[functions]\nplugins = ["example"]\n')
    check = run([str(bin_dir / "prpc-host"), "--check", "--config", str(config)],
                {**cli_env, **env}, name="signing-check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "signing: on, key id " in check.stdout, check.stdout
    assert key not in check.stdout + check.stderr
