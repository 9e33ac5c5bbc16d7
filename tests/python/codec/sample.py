"""The classes the reference vectors (shared/data/jsonpickle-vectors.json) were made with.

The vectors name them "sample.X", so this module must be importable as `sample`.
"""
import collections
import dataclasses
import enum


class Plain:
    def __init__(self, a=None, b=None):
        self.a = a
        self.b = b

    def __eq__(self, other):
        return type(other) is type(self) and (self.a, self.b) == (other.a, other.b)

    def __repr__(self):
        return f"sample.Plain(a={self.a!r}, b={self.b!r})"


class Empty:
    def __eq__(self, other):
        return type(other) is type(self)


class Node:
    def __init__(self, name, next=None):
        self.name = name
        self.next = next


@dataclasses.dataclass
class DC:
    name: str
    value: int
    tags: list


@dataclasses.dataclass(frozen=True)
class FrozenDC:
    k: str
    v: float


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return type(other) is type(self) and (self.x, self.y) == (other.x, other.y)


class MyError(Exception):
    pass


class CodeError(Exception):
    def __init__(self, message, code):
        super().__init__(message, code)
        self.code = code


Point = collections.namedtuple("Point", "x y")


class WithState:
    def __init__(self, v):
        self.v = v

    def __getstate__(self):
        return {"v": self.v, "extra": True}

    def __setstate__(self, state):
        self.v = state["v"]

    def __eq__(self, other):
        return type(other) is type(self) and self.v == other.v


class ListSub(list):
    pass


class DictSub(dict):
    pass


class Color(enum.Enum):
    RED = 1
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 10


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


def helper():
    return 1


ALL_CLASSES = [Plain, Empty, Node, DC, FrozenDC, Slotted, MyError, CodeError, Point, WithState,
               ListSub, DictSub]
