"""PRPCMessage with the original PRPC's API: construction, done-marking, both serialisations and
the errors its deserialisers raise. The cases of the original's own message tests are here
(written anew), plus what it did not check: the exact bytes and the refusal of code."""

from __future__ import annotations

import datetime
import json
import pickle
import uuid

import pytest

import jsonpickle
import prpc
from prpc.prpcmessage import PRPCMessage
from prpc.support_module.exceptions import JSONDeserializeError, PRPCMessageDeserializeError

UTC = datetime.timezone.utc
# jsonpickle 4 warns that its `keys` default will change; its current output is what we match.
pytestmark = pytest.mark.filterwarnings("ignore:keys will default:DeprecationWarning")


@pytest.mark.parametrize("text, error", [
    (json.dumps({"func_name": "summ"}), PRPCMessageDeserializeError),  # JSON, not a message
    (json.dumps([1, 2]), PRPCMessageDeserializeError),
    ("hello_world", JSONDeserializeError),                             # not JSON
    ("", JSONDeserializeError),
    (b"\xff\xfe", JSONDeserializeError),                                # not UTF-8
])
def test_deserialize_refuses(text, error):
    with pytest.raises(error):
        PRPCMessage.deserialize(text)


def test_deserialize_refuses_code():
    # What the original's jsonpickle.loads would have run: here it is a decode error.
    payload = '{"py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["echo pwned"]}]}'
    with pytest.raises(JSONDeserializeError, match="os.system"):
        PRPCMessage.deserialize(payload)


def test_round_trip():
    sent = PRPCMessage("summ", None, None)
    back = PRPCMessage.deserialize(sent.serialize())
    assert back == sent
    assert back.func_args == [] and back.func_kwargs == {}
    assert isinstance(back.message_id, uuid.UUID)
    assert back.date_create_message.tzinfo is not None
    assert not back.is_message_done()
    assert PRPCMessage.deserialize(sent.serialize().encode()) == sent  # bytes, as Redis gives


@pytest.mark.parametrize("text, error", [
    (json.dumps({"func_name": "summ"}), PRPCMessageDeserializeError),        # no message_id
    (json.dumps({"name_func": "summ", "message_id": str(uuid.uuid4())}),
     PRPCMessageDeserializeError),                                          # no func_name
    (json.dumps({"func_name": "summ", "message_id": "foo-123"}),
     PRPCMessageDeserializeError),                                          # not a UUID
    (json.dumps({"func_name": "summ", "message_id": str(uuid.uuid4()), "func_args": {}}),
     PRPCMessageDeserializeError),
    (json.dumps({"func_name": 5, "message_id": str(uuid.uuid4())}), PRPCMessageDeserializeError),
    (PRPCMessage("summ", None, None).serialize(), PRPCMessageDeserializeError),  # jsonpickle
    ("hello_world", JSONDeserializeError),
])
def test_deserialize_raw_refuses(text, error):
    with pytest.raises(error):
        PRPCMessage.deserialize_raw(text)


def test_deserialize_raw():
    mid = uuid.uuid4()
    before = datetime.datetime.now(UTC)
    m = PRPCMessage.deserialize_raw(json.dumps({"func_name": "summ", "message_id": str(mid)}))
    assert (m.func_name, m.func_args, m.func_kwargs, m.message_id) == ("summ", [], {}, mid)
    assert m.date_create_message >= before  # the receiver's clock, as the original did
    upper = PRPCMessage.deserialize_raw(json.dumps(
        {"func_name": "f", "func_args": [1], "func_kwargs": {"z": 2},
         "message_id": str(mid).upper()}))
    assert upper.message_id == mid and upper.func_args == [1] and upper.func_kwargs == {"z": 2}


def test_bytes_are_jsonpickles():
    """Our encoder writes what Python's jsonpickle writes for the same object, tuples kept."""
    m = PRPCMessage("summ", (1, 2), {"z": 0.5}, uuid.UUID(int=7))
    assert m.func_args == (1, 2)
    assert m.serialize() == jsonpickle.encode(m)
    m.message_to_done(result={"sum": 3.5, "when": datetime.datetime(2024, 1, 2, tzinfo=UTC)})
    assert m.serialize() == jsonpickle.encode(m)
    back = jsonpickle.decode(m.serialize())
    assert type(back) is PRPCMessage and back == m
    # The attributes are in the original's order.
    assert list(vars(m)) == ["func_name", "func_args", "func_kwargs", "message_id",
                             "date_create_message", "result", "exception_info",
                             "date_done_message"]


def test_message_to_done():
    m = PRPCMessage("f", [], {})
    assert not m.is_message_done()
    m.message_to_done(None, None)  # a function that returned None: the original refused it
    assert m.is_message_done() and m.result is None and m.exception_info is None
    failed = PRPCMessage("f", [], {})
    failed.message_to_done("ValueError: bad")
    assert failed.exception_info == "ValueError: bad" and failed.date_done_message is not None
    assert "done" in str(failed)


def test_serialize_raw_is_the_protocols_json():
    mid = uuid.uuid4()
    m = PRPCMessage("hello_world", (), {}, mid)
    m.message_to_done(result="hello_world")
    raw = json.loads(m.serialize(serialize_raw=True))
    assert raw["message_id"] == str(mid)  # the original wrote {"hex": ...}
    assert raw["func_args"] == [] and raw["result"] == "hello_world"
    assert datetime.datetime.fromisoformat(raw["date_done_message"]) == m.date_done_message
    assert PRPCMessage.deserialize_raw(m.serialize(serialize_raw=True)).message_id == mid


@pytest.mark.parametrize("args", [
    ("f", "not a list", {}),
    ("f", [], []),
    (5, [], {}),
    ("f", [], {}, "not-a-uuid"),
])
def test_construction_is_validated(args):
    with pytest.raises((TypeError, ValueError)):
        PRPCMessage(*args)


def test_exceptions_survive_pickling():
    for error in (prpc.ClientTimeOutError(datetime.timedelta(seconds=3), "summ"),
                  prpc.NotFoundFunc("summ"), PRPCMessageDeserializeError("x", "why"),
                  JSONDeserializeError("why"), prpc.RemoteError("ValueError", "bad", "tb")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
