"""Registration mistakes are refused at once, with a clear message; nothing connects."""

from __future__ import annotations

import datetime

import pytest

import prpc
from prpc import AppServer


@pytest.fixture
def app() -> AppServer:
    return AppServer("redis", "redis://127.0.0.1:1/0", "thread", 2, datetime.timedelta(seconds=5))


def test_seed_constructor_keywords_keep_working():
    app = AppServer(type_broker="redis", broker_url="redis://h:1/0", default_type_worker="process",
                    max_number_worker=8, timeout_worker=None, name_queue="orders",
                    group_name="workers")
    assert (app.default_type_worker, app.max_number_worker, app.name_queue) == (
        "process", 8, "orders")
    from prpc.app_server import AppServer as Same
    assert Same is prpc.AppServer


def test_coroutine_on_thread_or_process_worker(app):
    async def co():
        return 1
    for worker in ("thread", "process"):
        with pytest.raises(prpc.RegistrationError, match="coroutine function"):
            app.register_func(co, worker)


def test_plain_function_on_async_worker(app):
    def plain():
        return 1
    with pytest.raises(prpc.RegistrationError, match="not a coroutine function"):
        app.register_func(plain, "async")


def test_duplicate_name(app):
    def f():
        return 1
    app.register_func(f)
    with pytest.raises(prpc.RegistrationError, match="already registered"):
        app.register_func(f)
    with pytest.raises(prpc.RegistrationError, match="already registered"):
        app.decorator_reg_func()(f)


def test_unknown_worker_type(app):
    def f():
        return 1
    with pytest.raises(prpc.RegistrationError, match="unknown worker type 'gpu'"):
        app.register_func(f, "gpu")
    with pytest.raises(prpc.ConfigurationError, match="unknown worker type"):
        AppServer("redis", "redis://h:1/0", "fiber")


def test_reserved_names_and_unimportable_process_functions(app):
    def ping():
        return "mine"
    with pytest.raises(prpc.RegistrationError, match="reserved"):
        app.register_func(ping)

    def outer():
        def nested():
            return 1
        return nested
    with pytest.raises(prpc.RegistrationError, match="module level"):
        app.register_func(outer(), "process")
    with pytest.raises(prpc.RegistrationError, match="module level"):
        app.register_func(lambda: 1, "process", name="anon")


def test_decorator_without_parentheses_is_explained(app):
    def f():
        return 1
    with pytest.raises(prpc.RegistrationError, match="parentheses"):
        app.decorator_reg_func(f)


def test_register_funcs_and_the_decorator_return_the_function(app):
    def a():
        return 1

    def b():
        return 2
    app.register_funcs(a, b, worker_type="thread")

    @app.decorator_reg_func()
    def c():
        return 3
    assert c() == 3
    assert app.functions == {"a": "thread", "b": "thread", "c": "thread"}


def test_bad_constructor_values():
    with pytest.raises(prpc.ConfigurationError):
        AppServer("redis", "redis://h:1/0", "thread", 0)
    with pytest.raises(prpc.ConfigurationError):
        AppServer("redis", "redis://h:1/0", "thread", 4, "100 seconds")
    with pytest.raises(prpc.ConfigurationError):
        AppServer("", "redis://h:1/0")
