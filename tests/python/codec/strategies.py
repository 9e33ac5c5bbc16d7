"""Hypothesis strategies for nested Python values of the types the converter supports."""
import collections
import datetime
import decimal
import enum
import math

import sample
from hypothesis import strategies as st

# Strings with the characters that stress escaping: controls, quotes, BMP, astral, surrogates.
text = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.sampled_from('"\\/\x00\x01\x1f\x7f\u2028\u00e9\uffff\U0001F600\ud800\udfff'),
            max_size=6),
)

offsets = st.integers(min_value=-(24 * 3600 - 1), max_value=24 * 3600 - 1).map(
    lambda s: datetime.timezone(datetime.timedelta(seconds=s)))
tzinfos = st.one_of(st.none(), st.just(datetime.timezone.utc), offsets)

datetimes = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)),
    tzinfos)
times = st.builds(lambda t, tz: t.replace(tzinfo=tz), st.times(), tzinfos)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10 ** 60), max_value=10 ** 60),
    st.floats(),
    text,
    st.binary(max_size=16),
    datetimes,
    st.dates(),
    times,
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.complex_numbers(allow_nan=False),
    st.sampled_from([sample.Color.RED, sample.Color.GREEN, sample.Level.LOW,
                     sample.Perm.R, sample.Perm.R | sample.Perm.W]),
)

hashables = st.one_of(st.none(), st.booleans(), st.integers(), text,
                      st.floats(allow_nan=False), st.uuids(), st.dates())

keys = st.one_of(text, text, st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False),
                 st.tuples(st.integers(), st.integers()),
                 st.sampled_from(["py/object", "py/id", "py/tuple", "json://1", "__dict__"]))


def _share(items):
    """Repeat some containers so the value holds shared references (py/id)."""
    extra = [x for x in items if isinstance(x, (list, dict, sample.Plain))][:2]
    return items + extra


def containers(children):
    return st.one_of(
        st.lists(children, max_size=4).map(_share),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(text, children, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.builds(sample.Plain, children, children),
        st.builds(sample.DC, text, st.integers(), st.lists(children, max_size=3)),
        st.builds(sample.Point, children, children),
        st.builds(ValueError, text, children),
        st.builds(sample.CodeError, text, children),
        st.builds(sample.WithState, children),
        st.builds(sample.Slotted, children, children),
        st.builds(sample.ListSub, st.lists(children, max_size=3)),
        st.builds(sample.DictSub, st.dictionaries(text, children, max_size=3)),
        st.builds(collections.OrderedDict, st.dictionaries(text, children, max_size=3)),
        st.builds(collections.deque, st.lists(children, max_size=3)),
        st.builds(_cycle, children),
    )


def _cycle(value):
    """A list that contains itself, and an object graph with a cycle."""
    loop = [value]
    loop.append(loop)
    node = sample.Node("a")
    node.next = sample.Node("b", node)
    return [loop, node]


values = st.recursive(scalars, containers, max_leaves=25)

# The classes `values` instantiates, which a receiving application would register.
APP_CLASSES = (sample.Plain, sample.DC, sample.Point, sample.CodeError, sample.WithState,
               sample.Slotted, sample.ListSub, sample.DictSub, sample.Node,
               collections.OrderedDict, collections.deque)


def deep_equal(a, b, seen=None):
    """Structural equality: NaN equals NaN, sets by content, objects by type and attributes."""
    if seen is None:
        seen = set()
    if type(a) is not type(b):
        return False
    key = (id(a), id(b))
    if key in seen:
        return True
    if isinstance(a, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, complex):
        return deep_equal(a.real, b.real) and deep_equal(a.imag, b.imag)
    if isinstance(a, (datetime.datetime, datetime.time)):
        if isinstance(a, datetime.time) and a.tzinfo is not None:
            same = a.replace(tzinfo=None) == b.replace(tzinfo=None)
        else:
            same = a == b
        return same and a.utcoffset() == b.utcoffset()
    if isinstance(a, (list, tuple, collections.deque)):
        seen.add(key)
        return len(a) == len(b) and all(deep_equal(x, y, seen) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        seen.add(key)
        return (list(a.keys()) == list(b.keys())
                and all(deep_equal(a[k], b[k], seen) for k in a))
    if isinstance(a, (set, frozenset)):
        return a == b
    if isinstance(a, BaseException):
        seen.add(key)
        return deep_equal(a.args, b.args, seen) and deep_equal(a.__dict__, b.__dict__, seen)
    if hasattr(a, "__dict__") and not isinstance(a, type):
        seen.add(key)
        return deep_equal(vars(a), vars(b), seen)
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    slots = [n for cls in type(a).__mro__ for n in getattr(cls, "__slots__", ())]
    if slots and not isinstance(a, (tuple, enum.Enum)):
        seen.add(key)
        missing = object()
        return all(deep_equal(getattr(a, n, missing), getattr(b, n, missing), seen)
                   if hasattr(a, n) or hasattr(b, n) else True for n in slots)
    return a == b
