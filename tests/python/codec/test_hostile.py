"""Hostile payloads: refused cleanly with a DecodeError that names what was refused; nothing
runs, nothing is imported, nothing crashes."""
import json
import sys

import pytest


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran code"


def reduce_of(kind, name, *args):
    return json.dumps({"py/reduce": [{kind: name}, {"py/tuple": list(args)}]})


def attacks(marker):
    cmd = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').write('x')"
    return {
        "os.system": (reduce_of("py/function", "os.system", cmd), "os.system"),
        "posix.system": (reduce_of("py/function", "posix.system", cmd), "posix.system"),
        "subprocess.call": (json.dumps({"py/reduce": [
            {"py/function": "subprocess.call"},
            {"py/tuple": [["sh", "-c", cmd]]}]}), "subprocess.call"),
        "subprocess.Popen type": (json.dumps({"py/reduce": [
            {"py/type": "subprocess.Popen"},
            {"py/tuple": [["sh", "-c", cmd]]}]}), "subprocess.Popen"),
        "builtins.eval": (reduce_of("py/function", "builtins.eval", code), "builtins.eval"),
        "builtins.exec": (reduce_of("py/function", "builtins.exec", code), "builtins.exec"),
        "builtins.exec as type": (reduce_of("py/type", "builtins.exec", code), "builtins.exec"),
        "builtins.open": (reduce_of("py/function", "builtins.open", str(marker), "w"),
                          "builtins.open"),
        "getattr on os": (json.dumps({"py/reduce": [
            {"py/function": "builtins.getattr"},
            {"py/tuple": [{"py/mod": "os/os"}, "system"]}]}), "py/mod"),
        "getattr on a class": (json.dumps({"py/reduce": [
            {"py/function": "builtins.getattr"},
            {"py/tuple": [{"py/type": "builtins.int"}, "__subclasses__"]}]}), "builtins.getattr"),
        "nested callable": (json.dumps({"py/reduce": [
            {"py/reduce": [{"py/function": "builtins.getattr"},
                           {"py/tuple": [{"py/type": "builtins.object"}, "__subclasses__"]}]},
            {"py/tuple": []}]}), "computed value"),
        "py/function value": (json.dumps({"py/function": "os.system"}), "os.system"),
        "py/type value": (json.dumps({"py/type": "subprocess.Popen"}), "subprocess.Popen"),
        "py/repr": (json.dumps({"py/repr": f"os/os.system({cmd!r})"}), "py/repr"),
        "py/mod": (json.dumps({"py/mod": "os/os"}), "py/mod"),
        "py/object with state": (json.dumps({"py/object": "subprocess.Popen",
                                             "py/state": {"args": cmd}}), "subprocess.Popen"),
        "py/object with __reduce__": (json.dumps({
            "py/object": "os._wrap_close",
            "__reduce__": [{"py/function": "os.system"}, [cmd]]}), "os._wrap_close"),
        "py/newobj of a foreign class": (json.dumps({"py/reduce": [
            "py/newobj", {"py/tuple": [{"py/type": "subprocess.Popen"}, ["sh"]]}]}),
            "subprocess.Popen"),
        "datetime handler with a foreign class": (json.dumps({
            "py/object": "datetime.datetime",
            "__reduce__": [{"py/type": "os.system"}, ["B+gBAgMEBQAAAA=="]]}), "os.system"),
        "unknown module": (reduce_of("py/type", "definitely_not_imported_mod.Evil", 1),
                           "definitely_not_imported_mod.Evil"),
        "inside a list": (json.dumps([1, {"a": json.loads(reduce_of("py/function", "os.system",
                                                                    cmd))}]), "os.system"),
    }


def test_code_execution_attempts_are_refused(codec, marker):
    modules_before = set(sys.modules)
    for label, (payload, named) in attacks(marker).items():
        with pytest.raises(codec.DecodeError) as info:
            codec.decode(payload)
        message = str(info.value)
        assert "refus" in message, (label, message)
        assert named in message, (label, message)
    assert set(sys.modules) == modules_before, "decoding imported a module"


def test_registered_classes_only(codec):
    import sample

    payload = json.dumps({"py/object": "sample.Plain", "a": 1, "b": 2})
    with pytest.raises(codec.DecodeError, match="sample.Plain"):
        codec.decode(payload)
    codec.register(sample.Plain)
    try:
        assert codec.decode(payload) == sample.Plain(1, 2)
        assert "sample.Plain" in codec.allowed()
    finally:
        codec.unregister(sample.Plain)
    with pytest.raises(codec.DecodeError):
        codec.decode(payload)


def test_enum_members_only_through_getattr(codec):
    import sample

    member = json.dumps({"py/reduce": [{"py/function": "builtins.getattr"},
                                       {"py/tuple": [{"py/type": "sample.Color"}, "RED"]}]})
    assert codec.decode(member) is sample.Color.RED
    other = json.dumps({"py/reduce": [{"py/function": "builtins.getattr"},
                                      {"py/tuple": [{"py/type": "sample.Color"}, "__class__"]}]})
    with pytest.raises(codec.DecodeError, match="enum member"):
        codec.decode(other)


def test_a_million_levels_of_nesting(codec):
    for text in ("[" * 1_000_000, "[" * 1_000_000 + "]" * 1_000_000,
                 '{"a": ' * 1_000_000 + "1" + "}" * 1_000_000):
        with pytest.raises(codec.DecodeError, match="nesting deeper than"):
            codec.decode(text)
        with pytest.raises(codec.DecodeError, match="nesting deeper than"):
            codec.raw_decode(text)
        with pytest.raises(codec.DecodeError):
            codec.envelope_decode(text)


def test_deep_values_do_not_encode(codec):
    deep = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(codec.EncodeError, match="deeper than"):
        codec.encode(deep)
    with pytest.raises(codec.EncodeError, match="deeper than"):
        codec.raw_encode(deep)


def test_a_100_mb_string(codec):
    text = '"' + "a" * (100 * 1024 * 1024) + '"'
    with pytest.raises(codec.DecodeError, match="exceeds the limit"):
        codec.decode(text)
    # Allowed when the limit says so, and exact.
    assert len(codec.decode(text, max_bytes=len(text))) == 100 * 1024 * 1024


def test_invalid_utf8_and_truncated_input(codec):
    for bad in (b'"\xff"', b'["\xc3"]', b'{"a": "\xed\xa0\x80"}', b'"\xc0\xaf"'):
        with pytest.raises(codec.DecodeError, match="UTF-8"):
            codec.decode(bad)
    with pytest.raises(codec.DecodeError, match="offset 0"):
        codec.decode(b"\xfe\xff")
    good = json.dumps({"py/reduce": [{"py/type": "decimal.Decimal"}, {"py/tuple": ["1.5"]}]})
    for cut in range(len(good)):
        with pytest.raises(codec.DecodeError):
            codec.decode(good[:cut])


def test_big_numbers_are_bounded(codec):
    with pytest.raises(codec.DecodeError, match="digits"):
        codec.decode("1" * 5000)
    assert codec.decode("1" * 50, max_int_digits=50) == int("1" * 50)
    with pytest.raises(codec.EncodeError, match="digits"):
        codec.encode(10 ** 5000)


def test_malformed_known_types(codec):
    for payload in (
        {"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"},
                                                          ["AAAA"]]},
        {"py/object": "datetime.datetime", "__reduce__": "x"},
        {"py/object": "uuid.UUID", "hex": "zz"},
        {"py/reduce": [{"py/type": "decimal.Decimal"}, {"py/tuple": [[1, 2, 3]]}]},
        {"py/reduce": [{"py/type": "datetime.timedelta"}, {"py/tuple": ["x"]}]},
        {"py/tuple": 5},
        {"py/reduce": []},
    ):
        with pytest.raises(codec.DecodeError):
            codec.decode(json.dumps(payload))


def test_self_reference_during_construction(codec):
    payload = json.dumps({"py/reduce": [{"py/type": "builtins.frozenset"},
                                        {"py/tuple": [[{"py/id": 0}]]}]})
    with pytest.raises(codec.DecodeError, match="still being constructed"):
        codec.decode(payload)


def test_a_generous_depth_limit_is_still_stack_safe(codec):
    deep = "[" * 200_000 + "]" * 200_000
    with pytest.raises(codec.DecodeError, match="nesting deeper than 2000"):
        codec.decode(deep, max_depth=10 ** 9)
    with pytest.raises(codec.DecodeError, match="nesting deeper than 2000"):
        codec.raw_decode(deep, max_depth=10 ** 9)
    value = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(codec.EncodeError, match="deeper than 2000"):
        codec.encode(value, max_depth=10 ** 9)
