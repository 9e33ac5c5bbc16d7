"""The 123 shared reference vectors against our converter.

What applies to default settings:
- Vectors with encode_kwargs / decode_kwargs (use_base85, keys=True, make_refs=False,
  unpicklable=False) are made with options we do not offer; our encoder is checked only on the
  default ones. Our decoder still reads every default-settings output.
- Enum vectors depend on the Python version (Enum.__reduce_ex__ changed in 3.11.7): we expect the
  form the running Python gives (the same as jsonpickle on that Python), and decode both forms.
- module_ref: we never encode modules (EncodeError) nor decode py/mod / py/repr (refused).
- regex, bytearray: re.Pattern is not on the default allow-list; bytearray contents are lost by
  jsonpickle 3.x/4.x itself, so decoding it is refused rather than silently emptied.
- datetime_zoneinfo: the 3.0.0 form names 'builtins.ZoneInfo._unpickle', which 3.0.0 itself
  cannot decode; we read the 4.x form only.
"""
import collections
import datetime
import re

import pytest
import sample
import vectors

import jsonpickle

VECTORS = vectors.load()
DEFAULT = {k: v for k, v in VECTORS.items() if vectors.uses_default_settings(v)}
NOT_ENCODED = {"module_ref"}
NOT_DECODED = {"module_ref", "regex", "bytearray"}

# Classes an application would register to receive these vectors.
APP_CLASSES = [*sample.ALL_CLASSES, collections.OrderedDict, collections.defaultdict,
               collections.Counter, collections.deque]


@pytest.fixture(scope="module", autouse=True)
def registered(codec):
    for cls in APP_CLASSES:
        codec.register(cls)
    codec.register(sample.helper)
    yield
    for cls in APP_CLASSES:
        codec.unregister(cls)
    codec.unregister(sample.helper)


def test_vector_count():
    assert len(VECTORS) == 123


@pytest.mark.parametrize("name", sorted(set(DEFAULT) - NOT_ENCODED))
def test_encode_matches_jsonpickle_4(codec, name):
    vector = DEFAULT[name]
    value = vectors.value_of(name, vector)
    ours = codec.encode(value)
    assert ours == vectors.expected_encoding(vector)
    # And the installed jsonpickle agrees with the vector on this Python.
    assert jsonpickle.encode(value) == ours


def _same(a, b):
    """Equal values, with sharing and cycles: jsonpickle's own encoding is the comparison."""
    return jsonpickle.encode(a) == jsonpickle.encode(b)


def _decode_forms(name, vector):
    forms = {vector["encoded_jsonpickle_4_1_2"]}
    if name != "datetime_zoneinfo":
        forms.add(vector["encoded"])
    if "encoded_python_3_11_7_3_12_3_13" in vector:
        forms.add(vector["encoded_python_3_11_7_3_12_3_13"])
    return sorted(forms)


@pytest.mark.parametrize("name", sorted(set(DEFAULT) - NOT_DECODED))
def test_decode_reads_3x_and_4x_forms(codec, name):
    vector = DEFAULT[name]
    for text in _decode_forms(name, vector):
        ours = codec.decode(text)
        theirs = jsonpickle.decode(text)
        assert type(ours) is type(theirs)
        assert _same(ours, theirs), text


@pytest.mark.parametrize("name", sorted(set(DEFAULT) - NOT_DECODED - NOT_ENCODED))
def test_round_trip_through_ours(codec, name):
    value = vectors.value_of(name, DEFAULT[name])
    back = codec.decode(codec.encode(value))
    assert _same(back, jsonpickle.decode(jsonpickle.encode(value)))


@pytest.mark.parametrize("name", sorted(NOT_DECODED))
def test_refused_vectors_fail_cleanly(codec, name):
    with pytest.raises(codec.DecodeError, match="refusing"):
        codec.decode(VECTORS[name]["encoded_jsonpickle_4_1_2"])


def test_module_is_not_encodable(codec):
    with pytest.raises(codec.EncodeError):
        codec.encode(datetime)


def test_non_default_vectors_still_decode(codec):
    """Outputs made with other encode options are still read (keys=True aside)."""
    for name, vector in VECTORS.items():
        if "decode_kwargs" in vector or name in NOT_DECODED:
            continue
        if "encode_kwargs" not in vector:
            continue
        text = vector["encoded_jsonpickle_4_1_2"]
        assert _same(codec.decode(text), jsonpickle.decode(text)), name


def test_regex_decodes_once_registered(codec):
    codec.register(re.Pattern)
    try:
        text = VECTORS["regex"]["encoded_jsonpickle_4_1_2"]
        with pytest.raises(codec.DecodeError):
            codec.decode(text)  # a handler class: registration does not make it generic
    finally:
        codec.unregister(re.Pattern)
