"""The shared reference vectors and the Python values they were made from."""
import collections
import datetime
import decimal
import json
import os
import re
import uuid
import zoneinfo

import sample


def _find_vectors():
    """shared/ sits beside the project checkout; look upwards from here for it."""
    if os.environ.get("PRPC_JSONPICKLE_VECTORS"):
        return os.environ["PRPC_JSONPICKLE_VECTORS"]
    here = os.path.dirname(os.path.abspath(__file__))
    while True:
        candidate = os.path.join(here, "shared", "data", "jsonpickle-vectors.json")
        if os.path.exists(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            raise FileNotFoundError("shared/data/jsonpickle-vectors.json beside the checkout")
        here = parent


VECTORS_PATH = _find_vectors()


def load():
    with open(VECTORS_PATH, encoding="utf-8") as f:
        return json.load(f)


# Vectors whose python_repr is not an expression, or does not name the object.
_MANUAL = {
    "cyclic_list": "l=[1]; l.append(l); __value__ = l",
    "cyclic_objects": "n1=Node('a'); n2=Node('b', n1); n1.next=n2; __value__ = n1",
    "enum": "__value__ = Color.RED",
    "enum_str_value": "__value__ = Color.GREEN",
    "intenum": "__value__ = Level.LOW",
    "flag": "__value__ = Perm.R | Perm.W",
    "enum_in_list_twice": "__value__ = [Color.RED, Color.RED]",
    "list_subclass": "__value__ = ListSub([1, 2])",
    "dict_subclass": "__value__ = DictSub(a=1)",
    "class_ref": "__value__ = Plain",
    "builtin_type_ref": "__value__ = int",
    "function_ref": "__value__ = sample.helper",
    "module_ref": "__value__ = datetime",
    "defaultdict_list": "__value__ = collections.defaultdict(list, {'a': [1]})",
    "float_nan": "__value__ = float('nan')",
    "float_inf": "__value__ = float('inf')",
    "float_neginf": "__value__ = float('-inf')",
    "datetime_zoneinfo": "__value__ = datetime.datetime(2024, 7, 1, 12, 0, "
                         "tzinfo=zoneinfo.ZoneInfo(key='Europe/Berlin'))",
}


def namespace():
    ns = {name: getattr(sample, name) for name in dir(sample) if not name.startswith("_")}
    ns.update(sample=sample, datetime=datetime, decimal=decimal, uuid=uuid, re=re,
              collections=collections, zoneinfo=zoneinfo, Decimal=decimal.Decimal,
              UUID=uuid.UUID, OrderedDict=collections.OrderedDict, Counter=collections.Counter,
              deque=collections.deque, timezone=datetime.timezone)
    return ns


def value_of(name, vector):
    ns = namespace()
    code = _MANUAL.get(name)
    if code is None:
        text = vector["python_repr"].split("  #")[0].strip()
        *statements, last = [s.strip() for s in text.split(";")]
        code = "; ".join([*statements, f"__value__ = {last}"])
    exec(code, ns)  # the vectors file is the project's own reference data
    return ns["__value__"]


# Vectors made with non-default settings: encode/decode kwargs we do not offer.
def uses_default_settings(vector):
    return "encode_kwargs" not in vector and "decode_kwargs" not in vector


def expected_encoding(vector):
    """What jsonpickle 4.x writes on the running Python (enum reduce changed in 3.11.7)."""
    import sys

    if sys.version_info >= (3, 11, 7) and "encoded_python_3_11_7_3_12_3_13" in vector:
        return vector["encoded_python_3_11_7_3_12_3_13"]
    return vector["encoded_jsonpickle_4_1_2"]
