"""The ACL fixture: the restricted user runs PRPC's commands on PRPC's keys and is refused
(NOPERM) anything else; nobody gets in as the default user without its password."""

from __future__ import annotations

import pathlib

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_acl_fixture import RedisAclServer

# A refused login is final: no retries (redis-py retries connection errors by default).
NO_RETRY = Retry(NoBackoff(), 0)


def test_user_runs_prpc_commands_on_prpc_keys(redis_acl_server: RedisAclServer) -> None:
    s = redis_acl_server
    assert s.url(3) == f"redis://prpc:{s.password}@127.0.0.1:{s.port}/3"
    with s.user_client() as c:
        assert c.set("prpc_x", "1")
        assert c.get("prpc_x") == "1"
        assert c.pexpire("prpc_x", 60000)
        assert c.exists("prpc_x") == 1
        assert c.set("prcp_message_feedback_q_1", "r")
        c.xadd("prpc_raw_q", {"message": "{}"})
        c.xgroup_create("prpc_raw_q", "g", id="0")
        assert len(c.xreadgroup("g", "c1", {"prpc_raw_q": ">"}, count=10)[0][1]) == 1
        with c.pipeline(transaction=True) as p:  # MULTI/EXEC
            p.set("prpc_y", "2").get("prpc_y")
            assert p.execute() == [True, "2"]
        assert c.script_load("return 1")
        assert c.client_id() > 0
        assert c.delete("prpc_y") == 1


def test_user_is_refused_other_keys_and_commands(redis_acl_server: RedisAclServer) -> None:
    with redis_acl_server.user_client() as c:
        for call in (lambda: c.set("other_key", "1"), lambda: c.get("other_key"),
                     lambda: c.xadd("celery", {"a": "b"}), lambda: c.flushall(),
                     lambda: c.keys("*"), lambda: c.config_get("*"),
                     lambda: c.publish("prpc_ch", "x")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                call()
    assert redis_acl_server.admin_client().exists("other_key") == 0
    rules = redis_acl_server.admin_client().acl_getuser("prpc")
    assert rules is not None
    assert rules["keys"] in ("~prpc_* ~prcp_*", ["~prpc_*", "~prcp_*"])


def test_default_user_is_off_and_wrong_passwords_fail(redis_acl_server: RedisAclServer) -> None:
    anonymous = redis.Redis(host="127.0.0.1", port=redis_acl_server.port, retry=NO_RETRY)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    wrong = redis.Redis(host="127.0.0.1", port=redis_acl_server.port, username="prpc",
                        password="wrong", retry=NO_RETRY)
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    wrong.close()


def test_default_user_behind_a_password_and_a_custom_command_list(
        tmp_path: pathlib.Path) -> None:
    s = RedisAclServer(tmp_path / "acl", user="worker", password="p@ss:word",
                       default_password="default-secret", commands=["+get", "+set"])
    try:
        assert s.url() == f"redis://worker:p%40ss%3Aword@127.0.0.1:{s.port}/0"
        with redis.Redis(host="127.0.0.1", port=s.port, retry=NO_RETRY) as anonymous, \
                pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.get("prpc_x")
        with redis.Redis(host="127.0.0.1", port=s.port, password="default-secret") as c:
            assert c.set("anything", "1")
        with s.user_client() as c:
            assert c.set("prpc_x", "1")
            with pytest.raises(redis.exceptions.NoPermissionError):
                c.xadd("prpc_raw_q", {"a": "b"})
    finally:
        s.close()
