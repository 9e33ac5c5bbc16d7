"""`prpc dashboard` in a real headless Chromium against a real redis-server and a Python
AppServer: what the page shows (the queue, the functions, the counts after N calls, a dead
letter), and what it does (requeue with a token, a call through the form, the token's refusal).
Screenshots at 1400x900 and 390x844 go to the build tree (PRPC_DASHBOARD_ARTEFACTS)."""

from __future__ import annotations

import socket

import pytest
import redis
from dashboard_support import attr_of, click, screenshot, text_of, wait_for_text
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import prpc

APP = """
import datetime
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 4, datetime.timedelta(seconds=30), "{QUEUE}")

@app.decorator_reg_func()
def add(a: int, b: int = 0) -> int:
    \"\"\"Adds two numbers.\"\"\"
    return a + b

@app.decorator_reg_func("process")
def boom(reason: str):
    raise ValueError(reason)

if __name__ == "__main__":
    app.start()
"""

TOKEN = "t0k3n-for-tests"


def queue_css(queue: str) -> str:
    return f'section[data-queue="{queue}"]'


def wait_for_servers(d, queue: str, timeout: float = 30) -> None:
    """Until the dashboard's own API lists an alive server with functions (its announcements)."""
    from sdk_fixtures import wait_until

    def listed() -> bool:
        status, state = d.request("/api/state", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, state
        q = next(q for q in state["queues"] if q["name"] == queue)
        if q.get("servers_error") and "does not keep a list" in q["servers_error"]:
            pytest.skip("this build's Redis broker does not list servers yet")
        return any(s["alive"] for s in q.get("servers", [])) and bool(q.get("functions"))

    wait_until(listed, timeout, "the server's announcement on the dashboard")


@pytest.fixture
def served(start_app, env, start_dashboard):
    """A Python server on the test's queue and a dashboard with a token watching it."""
    start_app(APP)
    d = start_dashboard(["--queue", env["PRPC_QUEUE_NAME"], "--token", TOKEN], env)
    return d


def test_queue_functions_and_counts(served, env, page: WebDriver) -> None:
    queue = env["PRPC_QUEUE_NAME"]
    page.get(served.url + f"?token={TOKEN}")
    # The token moved into a cookie and off the address bar.
    assert "token=" not in page.current_url
    section = queue_css(queue)
    wait_for_text(page, f"{section} h2", lambda t: queue in t, 20, "the queue's section")
    wait_for_servers(served, queue)
    wait_for_text(page, f'{section} tr[data-function="add"]', lambda t: "add" in t, 20,
                  "the function add in the table")
    row = text_of(page, f'{section} tr[data-function="add"]')
    assert "(a: int, b: int = 0) -> int" in row
    assert "thread" in row
    assert "process" in text_of(page, f'{section} tr[data-function="boom"]')
    assert "alive" in text_of(page, f"{section} tr[data-server]")

    calls = 7
    with prpc.Client() as c:
        for i in range(calls):
            assert c.call("add", i, 1).result(30) == i + 1
        with pytest.raises(prpc.RemoteError):
            c.call("boom", "on purpose").result(30)
    wait_for_text(page, f'{section} tr[data-function="add"] td.calls', lambda t: t == str(calls),
                  20, f"add's calls to read {calls}")
    wait_for_text(page, f'{section} tr[data-function="boom"] td.errors', lambda t: t == "1", 20,
                  "boom's error count")
    # The queue's rate over the last minute is no longer zero.
    wait_for_text(page, f'{section} [data-stat="calls-per-s"] dd',
                  lambda t: t.split()[0] not in ("0.00", "\u2013"), 20, "a calls/s above zero")
    assert text_of(page, f'{section} [data-stat="consumers"] dd') != "\u2013"
    screenshot(page, "dashboard", 1400, 900)
    screenshot(page, "dashboard", 390, 844)


def test_dead_letter_and_requeue(served, env, redis_server, page: WebDriver) -> None:
    queue = env["PRPC_QUEUE_NAME"]
    r = redis.Redis(port=redis_server.port)
    r.xadd(f"prpc_raw_{queue}", {"message": "this is not json"})
    page.get(served.url + f"?token={TOKEN}")
    section = queue_css(queue)
    row_css = f"{section} tr[data-dead-letter]"
    wait_for_text(page, row_css, lambda t: "this is not json" not in t and bool(t), 30,
                  "the dead letter on the page")
    letter_id = attr_of(page, row_css, "data-dead-letter")
    assert letter_id
    this_row = f'{row_css}[data-dead-letter="{letter_id}"]'
    assert "invalid JSON" in text_of(page, f"{this_row} .reason")  # the reason is shown
    assert text_of(page, f'{section} [data-stat="dead-letters"] dd') == "1"
    screenshot(page, "dead-letter", 1400, 900)

    before = int(r.xlen(f"prpc_dead_{queue}"))
    click(page, f"{this_row} button")
    alert = WebDriverWait(page, 10).until(lambda d: d.switch_to.alert)
    assert "Requeue dead letter" in alert.text
    alert.accept()
    wait_for_text(page, "#banner", lambda t: "Requeued 1 dead letter" in t, 20,
                  "the requeue's confirmation")
    # The letter left the dead letters and went back to the server, which refused it again:
    # a new dead letter with a new id.
    def requeued_and_refused() -> bool:
        try:
            ids = [e.get_attribute("data-dead-letter")
                   for e in page.find_elements(By.CSS_SELECTOR, row_css)]
        except StaleElementReferenceException:
            return False
        return letter_id not in ids and len(ids) == 1

    from sdk_fixtures import wait_until
    wait_until(requeued_and_refused, 30, "the requeued letter to come back with a new id")
    assert int(r.xlen(f"prpc_dead_{queue}")) == before


def test_requeue_cancelled_in_the_dialog(served, env, redis_server, page: WebDriver) -> None:
    queue = env["PRPC_QUEUE_NAME"]
    redis.Redis(port=redis_server.port).xadd(f"prpc_raw_{queue}", {"message": "[1, 2"})
    page.get(served.url + f"?token={TOKEN}")
    row_css = f"{queue_css(queue)} tr[data-dead-letter]"
    wait_for_text(page, row_css, bool, 30, "the dead letter")
    letter_id = attr_of(page, row_css, "data-dead-letter")
    click(page, f"{row_css} button")
    WebDriverWait(page, 10).until(lambda d: d.switch_to.alert).dismiss()
    status, state = served.request("/api/state", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    q = state["queues"][0]
    assert [d["id"] for d in q["dead_letters"]] == [letter_id]


def test_call_through_the_form(served, env, page: WebDriver) -> None:
    queue = env["PRPC_QUEUE_NAME"]
    page.get(served.url + f"?token={TOKEN}")
    section = queue_css(queue)
    wait_for_text(page, f"{section} h2", lambda t: queue in t, 20, "the queue's section")
    form = page.find_element(By.CSS_SELECTOR, f"{section} form")
    WebDriverWait(page, 20).until(
        lambda d: form.find_element(By.CSS_SELECTOR, "button[type=submit]").is_enabled())

    def call(function: str, args: str) -> str:
        for name, value in (("function", function), ("args", args)):
            field = form.find_element(By.NAME, name)
            field.clear()
            field.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        return wait_for_text(page, f"{section} output.result",
                             lambda t: bool(t) and not t.startswith("Calling"), 40,
                             f"the result of {function}")

    assert call("add", "[2, 3]").splitlines()[0] == "5"
    assert "round trip" in text_of(page, f"{section} output.result")
    failed = call("boom", '["from the form"]')
    assert "ValueError" in failed and "from the form" in failed
    assert "bad" in (page.find_element(By.CSS_SELECTOR, f"{section} output.result")
                     .get_attribute("class") or "")
    bad_args = call("add", "[1,")
    assert "arguments" in bad_args
    screenshot(page, "call-form", 390, 844)


def test_token_refusal(served, page: WebDriver) -> None:
    # Without the token: 401 for the API, the page and the actions.
    status, body = served.request("/api/state")
    assert status == 401 and "token" in body["error"]
    status, body = served.request("/")
    assert status == 401 and "needs its token" in body
    status, body = served.request("/api/call", {"queue": "x", "function": "add"})
    assert status == 401
    status, body = served.request("/api/state", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, body = served.request("/?token=wrong")
    assert status == 401
    status, body = served.request("/api/state", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body["actions"]["enabled"] is True
    # The browser without the cookie sees the explanation, not the dashboard.
    page.get(served.url)
    assert "needs its token" in page.find_element(By.TAG_NAME, "h1").text
    assert not page.find_elements(By.CSS_SELECTOR, "section[data-queue]")


def test_actions_off_without_a_token(start_app, env, start_dashboard, page: WebDriver) -> None:
    queue = env["PRPC_QUEUE_NAME"]
    start_app(APP)
    d = start_dashboard(["--queue", queue], env)
    status, body = d.request("/api/call", {"queue": queue, "function": "add", "args": "[1]"})
    assert status == 403 and "--allow-actions" in body["error"]
    status, body = d.request("/api/requeue", {"queue": queue, "all": True})
    assert status == 403
    page.get(d.url)
    section = queue_css(queue)
    wait_for_text(page, f"{section} h2", lambda t: queue in t, 20, "the queue's section")
    button = page.find_element(By.CSS_SELECTOR, f"{section} form button[type=submit]")
    assert not button.is_enabled()
    assert "--allow-actions" in text_of(page, f"{section} form .note")
    # --allow-actions turns them on without a token.
    d2 = start_dashboard(["--queue", queue, "--allow-actions"], env)
    status, body = d2.request("/api/call", {"queue": queue, "function": "add", "args": "[1, 2]"})
    assert status == 200 and body["ok"] and body["result"] == "3", body
    # Only this dashboard's queues, and JSON bodies only (a form post from another site is not).
    status, body = d2.request("/api/call", {"queue": "elsewhere", "function": "add"})
    assert status == 400
    status, _ = d2.request("/api/call", None, method="POST",
                           headers={"Content-Type": "text/plain"})
    assert status == 415


def test_a_token_must_fit_in_a_cookie(env) -> None:
    import os
    import subprocess

    from dashboard_support import BIN_DIR

    for bad in ("short", "has space in it", "semi;colon-token"):
        r = subprocess.run([str(BIN_DIR / "prpc"), "dashboard", "--listen", "127.0.0.1:0",
                            "--token", bad], env={**os.environ, **env}, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "token" in r.stderr


def test_requests_are_bounded(start_dashboard, env) -> None:
    d = start_dashboard(["--queue", env["PRPC_QUEUE_NAME"], "--allow-actions"], env)
    status, _ = d.request("/api/call", {"queue": env["PRPC_QUEUE_NAME"], "args": "x" * 100_000})
    assert status == 413
    # A name of another site pointed at 127.0.0.1 (DNS rebinding) is refused.
    status, _ = d.request("/api/state", headers={"Host": "attacker.example:80"})
    assert status == 421
    status, _ = d.request("/nothing-here")
    assert status == 404
    status, body = d.request("/api/state")
    assert status == 200 and body["queues"][0]["name"] == env["PRPC_QUEUE_NAME"]


def test_broker_down_and_no_servers(start_dashboard, queue, page: WebDriver) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PRPC_TYPE_BROKER": "redis", "PRPC_URL_BROKER": f"redis://127.0.0.1:{port}/0",
           "PRPC_QUEUE_NAME": queue}
    d = start_dashboard([], env)
    page.get(d.url)
    wait_for_text(page, "#banner", lambda t: "cannot be reached" in t, 30,
                  "the broker-down banner")
    assert "unreachable" in text_of(page, "#status")
    screenshot(page, "broker-down", 1400, 900)


def wait_for_servers_listing(d, queue: str) -> None:
    from sdk_fixtures import wait_until

    def polled() -> dict | None:
        status, state = d.request("/api/state")
        q = state["queues"][0]
        return q if status == 200 and "servers" in q else None

    q = wait_until(polled, 20, "the dashboard's first poll")
    assert isinstance(q, dict)
    if q.get("servers_error") and "does not keep a list" in q["servers_error"]:
        pytest.skip("this build's Redis broker does not list servers yet")


def test_empty_queue(start_dashboard, env, page: WebDriver) -> None:
    queue = env["PRPC_QUEUE_NAME"]
    d = start_dashboard(["--queue", queue, "--queue", queue + "_other"], env)
    wait_for_servers_listing(d, queue)
    page.get(d.url)
    for q in (queue, queue + "_other"):
        wait_for_text(page, f'{queue_css(q)} [data-empty="servers"]',
                      lambda t: "No servers announced" in t, 20, f"{q}: no servers")
        assert "No dead letters" in text_of(page, f'{queue_css(q)} [data-empty="dead-letters"]')
    nav = page.find_elements(By.CSS_SELECTOR, "#queue-nav a")
    assert [a.text for a in nav] == [queue, queue + "_other"]
