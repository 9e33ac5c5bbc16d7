"""pytest fixture: a redis-server with an ACL user restricted to PRPC's keys and commands
(docs/brokers/redis.md, "ACL permissions"), and the default user off or behind a password.

The Python counterpart of tests/support/redis_acl.{hpp,cpp}:

    from redis_acl_fixture import redis_acl_server  # noqa: F401

    def test_something(redis_acl_server):
        url = redis_acl_server.url()       # redis://prpc:<password>@127.0.0.1:<port>/0
        c = redis_acl_server.user_client() # logged in as the restricted user
        admin = redis_acl_server.admin_client()
"""

from __future__ import annotations

import pathlib
import secrets
import urllib.parse
from collections.abc import Iterator, Sequence

import pytest
import redis
from redis_fixture import RedisServer
from service_process import remove_unless_failed

# The commands docs/brokers/redis.md lists for a dedicated PRPC user, as ACL rules.
PRPC_COMMANDS = ("+@stream", "+get", "+set", "+pexpire", "+exists", "+multi", "+exec",
                 "+evalsha", "+script|load", "+client|id", "+client|setname",
                 "+client|unblock", "+select", "+del")
PRPC_KEY_PATTERNS = ("~prpc_*", "~prcp_*")


class RedisAclServer:
    """A RedisServer whose clients must log in as ``user`` (restricted) or use the fixture's
    admin login."""

    def __init__(self, directory: pathlib.Path, *, user: str = "prpc",
                 password: str | None = None,
                 key_patterns: Sequence[str] = PRPC_KEY_PATTERNS,
                 commands: Sequence[str] = PRPC_COMMANDS,
                 default_password: str | None = None,
                 extra_config: Sequence[str] = ()) -> None:
        self.user = user
        self.password = password or secrets.token_hex(12)
        self.rules = ["resetchannels", *key_patterns, *commands]
        default = ("user default off" if not default_password
                   else f"user default on >{default_password} ~* &* +@all")
        config = [default, f"user {user} on >{self.password} " + " ".join(self.rules),
                  *extra_config]
        self.server = RedisServer(directory, extra_config=config)

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, db: int = 0) -> str:
        quote = urllib.parse.quote
        return (f"redis://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
                f"@127.0.0.1:{self.port}/{db}")

    def user_client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, username=self.user,
                           password=self.password, decode_responses=True, socket_timeout=10)

    def admin_client(self) -> redis.Redis:
        return self.server.client()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def redis_acl_server(tmp_path: pathlib.Path,
                     request: pytest.FixtureRequest) -> Iterator[RedisAclServer]:
    """A redis-server with the PRPC ACL user ``prpc`` and the default user off."""
    failed_before = request.session.testsfailed
    server = RedisAclServer(tmp_path / "redis-acl")
    try:
        yield server
    finally:
        server.close()
        remove_unless_failed(request.session, server.server.dir, failed_before)
