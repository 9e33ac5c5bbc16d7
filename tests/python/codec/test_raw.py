"""The raw (any-language) dialect converter."""
import datetime
import decimal
import json
import uuid

import pytest
import sample


def test_json_types_both_ways(codec):
    value = {"a": [1, 2.5, None, True, False, "h\u00e9"], "b": {"c": []}, "big": 2 ** 70}
    text = codec.raw_encode(value)
    assert text == json.dumps(value)
    assert codec.raw_decode(text) == value


def test_tuples_and_subclasses_as_json_does(codec):
    value = {"t": (1, 2), "lvl": sample.Level.LOW, 1: "int key", None: "n", False: "b", 2.5: "f"}
    assert codec.raw_encode(value) == json.dumps(value)


def test_datetimes_become_iso_text(codec):
    tz = datetime.timezone(datetime.timedelta(hours=3))
    value = [datetime.datetime(2024, 11, 6, 12, 0, 0, 1, tzinfo=tz), datetime.date(2024, 1, 2),
             datetime.time(3, 4, 5)]
    assert codec.raw_decode(codec.raw_encode(value)) == [
        "2024-11-06T12:00:00.000001+03:00", "2024-01-02", "03:04:05"]


@pytest.mark.parametrize("value", [decimal.Decimal("1.1"), uuid.uuid4(), {1, 2}, b"x",
                                   sample.Plain(1, 2), sample.Color.RED, object(), 1 + 2j,
                                   {(1, 2): "tuple key"}])
def test_anything_else_is_an_encode_error(codec, value):
    with pytest.raises(codec.EncodeError):
        codec.raw_encode(value)
    with pytest.raises(codec.EncodeError):
        codec.raw_encode({"nested": [value]})


def test_cycles_are_errors_not_crashes(codec):
    loop = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        codec.raw_encode(loop)
    shared = [1]
    assert codec.raw_encode([shared, shared]) == "[[1], [1]]"


def test_non_finite_floats_as_python_json_writes_them(codec):
    text = codec.raw_encode([float("nan"), float("inf"), -float("inf")])
    assert text == "[NaN, Infinity, -Infinity]"


def test_malformed_input(codec):
    for bad in ("", "[1,", '{"a" 1}', "[1] 2", '"\\q"'):
        with pytest.raises(codec.DecodeError, match="offset"):
            codec.raw_decode(bad)
