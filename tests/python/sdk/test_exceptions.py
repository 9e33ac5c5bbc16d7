"""One table maps status codes to exceptions, for the extension and the client alike."""

from __future__ import annotations

import pytest

import prpc
from prpc import client, exceptions


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("Unavailable", prpc.BrokerError),
        ("Cancelled", prpc.BrokerError),
        ("Timeout", prpc.ClientTimeOutError),
        ("InvalidArgument", prpc.ConfigurationError),
        ("NotFound", prpc.PluginError),
        ("FailedPrecondition", prpc.PluginError),
        ("AlreadyExists", prpc.PluginError),
        ("DecodeError", prpc.DecodeError),
        ("EncodeError", prpc.EncodeError),
        ("Internal", prpc.PRPCError),
        ("SomethingNew", prpc.PRPCError),
    ],
)
def test_each_status_has_one_exception(status, error):
    assert exceptions.exception_for(status) is error


def test_a_call_cancelled_under_the_client_is_a_broker_error():
    with pytest.raises(prpc.BrokerError, match="the client was closed"):
        client._raise_for("Cancelled", "the client was closed", "f", "id-1", None)


def test_the_extension_reads_the_same_table(monkeypatch):
    class Marked(prpc.PRPCError):
        pass

    monkeypatch.setitem(exceptions.STATUS_EXCEPTIONS, "NotFound", Marked)
    with pytest.raises(Marked, match="no broker plugin named 'nosuch'"):
        prpc.Client("nosuch", "x://h", "q")
