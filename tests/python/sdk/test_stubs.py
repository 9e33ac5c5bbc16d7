"""python -m prpc.create_server_func: exact signatures, and only passed arguments are sent."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import typing

import pytest

APP = '''
import datetime, typing
from decimal import Decimal
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 2, None, "{QUEUE}")

@app.decorator_reg_func()
def everything(a: int, b: "str" = "x", /, c: float = 0.5, *args: int, d: datetime.date,
               e: typing.Optional[Decimal] = None, **kwargs: bool) -> dict:
    """Returns what it was given.

    Second paragraph."""
    return {"a": a, "b": b, "c": c, "args": list(args), "d": d, "e": e, "kwargs": kwargs}

@app.decorator_reg_func()
def defaults(x=datetime.timedelta(seconds=5), y="it's", z=None, w=(1, "two")):
    return [str(x), y, z, w]

@app.decorator_reg_func()
def keyword_only(*, flag: bool = False, name: str):
    return [flag, name]

if __name__ == "__main__":
    app.start()
'''


@pytest.fixture
def server_func(start_app, tmp_path, monkeypatch):
    start_app(APP)
    out = tmp_path / "gen" / "remote_api.py"
    out.parent.mkdir()
    done = subprocess.run([sys.executable, "-m", "prpc.create_server_func", "--output", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 functions" in done.stdout
    monkeypatch.syspath_prepend(str(out.parent))
    module = importlib.import_module("remote_api")
    yield module
    sys.modules.pop("remote_api", None)


def test_signatures_are_exact(server_func):
    sig = inspect.signature(server_func.everything)
    assert str(sig) == ("(a: 'int', b: 'str' = 'x', /, c: 'float' = 0.5, *args: 'int', "
                        "d: 'datetime.date', e: 'typing.Optional[decimal.Decimal]' = None, "
                        "**kwargs: 'bool') -> 'AwaitableTask'")
    assert inspect.getdoc(server_func.everything).startswith("Returns what it was given.")
    assert str(inspect.signature(server_func.keyword_only)) == \
        "(*, flag: 'bool' = False, name: 'str') -> 'AwaitableTask'"
    assert str(inspect.signature(server_func.defaults)) == \
        "(x=datetime.timedelta(seconds=5), y=\"it's\", z=None, w=(1, 'two')) -> 'AwaitableTask'"


def test_annotations_are_importable(server_func):
    hints = typing.get_type_hints(server_func.everything)
    import datetime
    from decimal import Decimal
    assert hints["d"] is datetime.date
    assert hints["e"] == typing.Optional[Decimal]  # noqa: UP045 - what the stub spells


def test_calls_send_only_what_was_passed(server_func):
    import datetime
    out = server_func.everything(1, d=datetime.date(2024, 1, 2)).result(10)
    assert out == {"a": 1, "b": "x", "c": 0.5, "args": [], "d": datetime.date(2024, 1, 2),
                   "e": None, "kwargs": {}}
    task = server_func.everything(1, "y", 2.0, 3, 4, d=datetime.date(2024, 1, 2), flag=True)
    out = task.result(10)
    assert out["b"] == "y" and out["args"] == [3, 4] and out["kwargs"] == {"flag": True}
    task = server_func.defaults(y="mine")
    assert task.result(10) == ["0:00:05", "mine", None, (1, "two")]
    # x, z and w were not passed, so they were not sent: the server used its own defaults.
    assert task.message.func_args == []
    assert task.message.func_kwargs == {"y": "mine"}
    assert server_func.keyword_only(name="n").result(10) == [False, "n"]


def test_mistakes_fail_locally_like_a_local_call(server_func):
    with pytest.raises(TypeError):
        server_func.keyword_only(True)
    with pytest.raises(TypeError):
        server_func.everything(1)  # d is required
