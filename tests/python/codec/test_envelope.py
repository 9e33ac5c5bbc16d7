"""The envelope: our codec (C++) against jsonpickle.encode / decode of PRPCMessage."""
import datetime
import decimal
import json
import uuid

import pytest
from message_helper import make

import jsonpickle

UTC = datetime.timezone.utc

NAMED = ("func_name", "func_args", "func_kwargs", "message_id", "result", "exception_info",
         "date_create_message", "date_done_message", "reply_to", "deadline", "attempt",
         "exception_type", "traceback", "traceparent")


def extensions_of(msg):
    """Message.extensions for this PRPCMessage: its other attributes as JSON object text."""
    extra = {k: v for k, v in vars(msg).items() if k not in NAMED}
    return json.dumps(extra) if extra else ""


def fields_of(codec, msg):
    """The Message the SDK would hand the codec for this PRPCMessage: fragments from our
    converter, ids and dates as text."""
    fields = {
        "func_name": msg.func_name,
        "func_args": codec.encode(msg.func_args),
        "func_kwargs": codec.encode(msg.func_kwargs),
        "message_id": str(msg.message_id),
        "result": codec.encode(msg.result),
        "exception_info": msg.exception_info,
        "date_create_message": (msg.date_create_message.isoformat()
                                if msg.date_create_message else ""),
        "date_done_message": msg.date_done_message.isoformat() if msg.date_done_message else "",
    }
    for name in ("reply_to", "deadline", "attempt", "exception_type", "traceback", "traceparent"):
        if hasattr(msg, name):
            fields[name] = getattr(msg, name)
    fields["extensions"] = extensions_of(msg)
    return fields


def with_attributes(msg, **attributes):
    for name, value in attributes.items():
        setattr(msg, name, value)
    return msg


def cases(PRPCMessage):
    mid = uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427")
    created = datetime.datetime(2024, 11, 6, 9, 0, 5, 123456, tzinfo=UTC)
    done = datetime.datetime(2024, 11, 6, 9, 0, 6, tzinfo=UTC)
    plus3 = datetime.timezone(datetime.timedelta(hours=3))
    return [
        PRPCMessage("ping", [], {}, mid, None, None, created, None),
        PRPCMessage("summ", [1, 2.5], {"z": 0.5}, mid, 4.0, None, created, done),
        make(PRPCMessage, "hello_world", [], {}, mid, "hello_world", None, created, done,
             reply_to="prpc_reply_abc", attempt=2, traceparent="00-abc-def-01"),
        make(PRPCMessage, "fail", [[1, [2]], {"k": (1, 2)}], {"d": decimal.Decimal("1.10")}, mid,
             None, "ValueError: bad", created, done, exception_type="ValueError",
             traceback="Traceback ...\n  line 1"),
        # timezone.utc inside the arguments: later timezones are references to it.
        PRPCMessage("dates", [datetime.datetime(2024, 1, 2, tzinfo=UTC), {1, 2}],
                    {"when": datetime.datetime(2020, 5, 5, 5, 5, 5, tzinfo=plus3)}, mid,
                    {"at": datetime.datetime(2024, 1, 3, tzinfo=UTC), "u": uuid.UUID(int=7)},
                    None, created, done),
        PRPCMessage("offsets", [], {}, mid, None, None,
                    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=plus3),
                    datetime.datetime(2024, 1, 2, 3, 4, 5)),
        PRPCMessage("unicode \u2603", ["h\u00e9llo", "\U0001F600", b"\x00\xff"], {}, mid,
                    [None, True, 2 ** 80, -0.0, float("inf")], None, created, done),
        # Attributes PRPC does not name (a reply's latency breakdown, trace state) travel as
        # Message.extensions, after the named ones.
        with_attributes(
            make(PRPCMessage, "summ", [1, 2], {}, mid, 3, None, created, done, reply_to="r",
                 traceparent="00-abc-def-01"),
            server="host-42", time_queued=0.0012, time_executing=0.0004, tracestate="k=v",
            labels={"zone": "eu\u00e9", "ids": [1, 2, {"x": None}], "empty": {}},
            big=2 ** 70, flag=False, nothing=None),
    ]


def test_encode_is_byte_identical_to_jsonpickle(codec, message_class):
    for msg in cases(message_class):
        ours = codec.envelope_encode(fields_of(codec, msg))
        assert ours.decode() == jsonpickle.encode(msg), msg.func_name


def test_jsonpickle_decodes_ours(codec, message_class):
    for msg in cases(message_class):
        back = jsonpickle.decode(codec.envelope_encode(fields_of(codec, msg)))
        assert type(back) is message_class
        assert jsonpickle.encode(back) == jsonpickle.encode(msg)


def test_decode_python_bytes_to_fragments(codec, message_class):
    for msg in cases(message_class):
        fields = codec.envelope_decode(jsonpickle.encode(msg))
        assert fields["func_name"] == msg.func_name
        assert fields["message_id"] == str(msg.message_id)
        for field in ("func_args", "func_kwargs"):
            assert (jsonpickle.encode(codec.decode(fields[field]))
                    == jsonpickle.encode(getattr(msg, field)))
        assert jsonpickle.encode(codec.decode(fields["result"])) == jsonpickle.encode(msg.result)
        assert fields["date_create_message"] == msg.date_create_message.isoformat()
        done = msg.date_done_message
        assert fields["date_done_message"] == (done.isoformat() if done else "")
        assert fields["exception_info"] == msg.exception_info
        assert fields["reply_to"] == getattr(msg, "reply_to", "")
        assert fields["attempt"] == getattr(msg, "attempt", 0)
        assert fields["extensions"] == extensions_of(msg)


def test_extensions_keep_only_plain_json(codec, message_class):
    """An attribute whose value jsonpickle tags (an object, a tuple, a reference) is dropped."""
    shared = [1]
    msg = with_attributes(message_class("f", [], {}, uuid.uuid4(), None, None,
                                        datetime.datetime.now(UTC), None),
                          shared=shared, again=shared, when=datetime.date(2024, 1, 2),
                          pair=(1, 2), plain={"a": [1.5, "x"]})
    fields = codec.envelope_decode(jsonpickle.encode(msg))
    assert json.loads(fields["extensions"]) == {"shared": [1], "plain": {"a": [1.5, "x"]}}
    assert list(json.loads(fields["extensions"])) == ["shared", "plain"]


def test_shared_objects_across_fields_decode_equal(codec, message_class):
    """Python shares one object between fields: the result refers into func_args."""
    shared = [1, {"k": [2, 3]}]
    msg = message_class("echo", [shared, shared], {"again": shared}, uuid.uuid4(), shared, None,
                        datetime.datetime.now(UTC), datetime.datetime.now(UTC))
    text = jsonpickle.encode(msg)
    assert '"result": {"py/id": 2}' in text
    fields = codec.envelope_decode(text)
    assert codec.decode(fields["result"]) == shared
    assert codec.decode(fields["func_kwargs"]) == {"again": shared}
    args = codec.decode(fields["func_args"])
    assert args == [shared, shared] and args[0] is args[1]


def test_jsonpickle_3_forms_decode(codec):
    """Tuples for func_args, a str message_id and ISO text dates, as older writers send."""
    text = ('{"py/object": "prpc.prpcmessage.PRPCMessage", "func_name": "summ", '
            '"func_args": {"py/tuple": [1, 2]}, "func_kwargs": {}, '
            '"message_id": "1B4E28BA-2FA1-41D2-883F-0016D3CCA427", "result": null, '
            '"exception_info": null, "date_create_message": "2024-11-06T12:00:00.0+03:00", '
            '"date_done_message": null, "some_future_field": [1, 2]}')
    fields = codec.envelope_decode(text)
    assert fields["func_args"] == "[1, 2]"
    assert fields["message_id"] == "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert fields["date_create_message"] == "2024-11-06T12:00:00.0+03:00"


def test_refuses_other_classes_and_salvages_the_id(codec):
    text = ('{"py/object": "os.system", "func_name": "x", '
            '"message_id": {"py/object": "uuid.UUID", "hex": "1b4e28ba2fa141d2883f0016d3cca427"}, '
            '"reply_to": "r"}')
    with pytest.raises(codec.DecodeError, match="not a PRPCMessage") as info:
        codec.envelope_decode(text)
    assert info.value.salvaged["message_id"] == "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert info.value.salvaged["reply_to"] == "r"


# Generated message states: the whole envelope against jsonpickle, and back.
import strategies  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered(codec):
    for cls in strategies.APP_CLASSES:
        codec.register(cls)
    yield
    for cls in strategies.APP_CLASSES:
        codec.unregister(cls)


_aware = st.builds(lambda dt, tz: dt.replace(tzinfo=tz), st.datetimes(
    min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)),
    st.one_of(st.just(UTC), strategies.offsets))
_text = st.text(max_size=20)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=_text, args=st.lists(strategies.values, max_size=3),
       kwargs=st.dictionaries(_text, strategies.values, max_size=3), result=strategies.values,
       error=st.one_of(st.none(), _text.map(lambda t: "ValueError: " + t)),
       created=_aware, done=st.one_of(st.none(), _aware),
       reply_to=st.one_of(st.none(), _text), attempt=st.integers(min_value=0, max_value=9))
def test_generated_envelopes(codec, message_class, name, args, kwargs, result, error, created,
                             done, reply_to, attempt):
    # Each field gets its own objects (decoding makes fresh ones): Python shares an object
    # between fields only when the application does, and then writes a reference we cannot
    # know of from separate fragments. Enum members are singletons, so a member used in two
    # fields is such a case: skipped.
    args, kwargs, result = (jsonpickle.decode(jsonpickle.encode(v)) for v in (args, kwargs, result))
    with_enums = [v for v in (args, kwargs, result)
                  if any(e in jsonpickle.encode(v) for e in ("sample.Color", "sample.Level",
                                                             "sample.Perm"))]
    assume(len(with_enums) <= 1)
    msg = make(message_class, name, args, kwargs, uuid.uuid4(), result, error, created, done,
               reply_to=reply_to, attempt=attempt)
    ours = codec.envelope_encode(fields_of(codec, msg))
    assert ours.decode() == jsonpickle.encode(msg)
    fields = codec.envelope_decode(ours)
    for field in ("func_args", "func_kwargs", "result"):
        assert strategies.deep_equal(codec.decode(fields[field]),
                                     jsonpickle.decode(jsonpickle.encode(getattr(msg, field))))
    assert fields["date_create_message"] == created.isoformat()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5).filter(lambda k: not k.startswith("py/")), inner,
                      max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attributes=st.dictionaries(
    st.text(min_size=1, max_size=10).filter(lambda k: k not in NAMED and not k.startswith("py/")
                                            and not k.startswith("__")),
    _json_values, max_size=4))
def test_generated_extensions(codec, message_class, attributes):
    msg = with_attributes(message_class("f", [], {}, uuid.uuid4(), None, None,
                                        datetime.datetime.now(UTC), None), **attributes)
    ours = codec.envelope_encode(fields_of(codec, msg))
    assert ours.decode() == jsonpickle.encode(msg)
    assert codec.envelope_decode(ours)["extensions"] == extensions_of(msg)


def test_converter_handles_a_whole_prpcmessage(codec, message_class):
    """The converter alone also writes and reads PRPCMessage (allowed once imported)."""
    for msg in cases(message_class):
        text = codec.encode(msg)
        assert text == jsonpickle.encode(msg)
        back = codec.decode(text)
        assert type(back) is message_class
        assert jsonpickle.encode(back) == text
