"""Property tests against jsonpickle from PyPI (4.x): byte-identical encoding, and both
cross-decodings round-trip to equal values."""
import json

import pytest
import strategies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jsonpickle

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


APP_CLASSES = strategies.APP_CLASSES


@pytest.fixture(scope="module", autouse=True)
def registered(codec):
    for cls in APP_CLASSES:
        codec.register(cls)
    yield
    for cls in APP_CLASSES:
        codec.unregister(cls)


@SETTINGS
@given(strategies.values)
def test_encoding_is_byte_identical(codec, value):
    assert codec.encode(value) == jsonpickle.encode(value)


def _dict_subclass_collisions():
    """Dict subclasses holding items under the keys jsonpickle assigns afterwards ("__dict__",
    "default_factory"): the item keeps its place, takes the new value, and its own value still
    numbers the py/ids (found by hypothesis)."""
    import collections

    import sample
    with_attr = sample.DictSub({"__dict__": [1, 2], "b": [3]})
    with_attr.extra = [4]
    shared = [1]
    return [
        sample.DictSub({"__dict__": None}),
        sample.DictSub({"a": 1, "__dict__": None, "z": 2}),
        with_attr,
        [with_attr, with_attr.__dict__],
        sample.DictSub({"__dict__": shared, "q": shared}),
        sample.DictSub({None: 1, "__dict__": 2}),
        collections.defaultdict(list, {"default_factory": 1, "x": 2}),
        collections.defaultdict(list, {"default_factory": [9], "x": 2, "__dict__": 5}),
    ]


@pytest.mark.parametrize("value", _dict_subclass_collisions(), ids=repr)
def test_items_named_like_what_jsonpickle_adds_are_overwritten_in_place(codec, value):
    assert codec.encode(value) == jsonpickle.encode(value)


@SETTINGS
@given(strategies.values)
def test_ours_then_jsonpickle_decode(codec, value):
    ours = jsonpickle.decode(codec.encode(value))
    theirs = jsonpickle.decode(jsonpickle.encode(value))
    assert strategies.deep_equal(ours, theirs)


@SETTINGS
@given(strategies.values)
def test_jsonpickle_then_ours_decode(codec, value):
    text = jsonpickle.encode(value)
    assert strategies.deep_equal(codec.decode(text), jsonpickle.decode(text))


@SETTINGS
@given(strategies.values)
def test_round_trip_equals_the_value_when_lossless(codec, value):
    back = codec.decode(codec.encode(value))
    # Non-str dict keys become their repr (jsonpickle's keys=False): compare to jsonpickle then.
    assert strategies.deep_equal(back, jsonpickle.decode(jsonpickle.encode(value)))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              strategies.text),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(strategies.text, c, max_size=4)),
    max_leaves=30)


@SETTINGS
@given(json_values)
def test_raw_matches_json_module(codec, value):
    text = codec.raw_encode(value)
    assert text == json.dumps(value)
    assert codec.raw_decode(text) == json.loads(text)


@SETTINGS
@given(json_values)
def test_plain_json_is_the_same_in_both_dialects(codec, value):
    # Lists and str-keyed dicts: jsonpickle writes plain JSON, and so do we.
    assert codec.encode(value) == json.dumps(value)
