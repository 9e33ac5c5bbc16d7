"""`prpc dashboard` over a real Apache Kafka broker (librdkafka's mock cluster lives inside one
process, and the dashboard, the server and the test are three): the queue's numbers, the
announced server and its function, a dead letter after a malformed record, the requeue button
off with Kafka's reason, and a call through the form, in headless Chromium."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_support import attr_of, screenshot, text_of, wait_for_text
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

import prpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from kafka_fixture import kafka_server  # noqa: F401 - a session fixture
from sdk_fixtures import ServerProcess, wait_until

# kafka-python itself uses deprecated importlib APIs.
pytestmark = [pytest.mark.kafka, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

APP = """
import datetime
from prpc import AppServer

app = AppServer("kafka", "{URL}", "thread", 4, datetime.timedelta(seconds=30), "{QUEUE}")

@app.decorator_reg_func()
def add(a: int, b: int = 0) -> int:
    return a + b

if __name__ == "__main__":
    app.start()
"""

TOKEN = "kafka-dashboard-token"


@pytest.fixture
def kafka_env(kafka_server, monkeypatch, queue) -> Iterator[dict[str, str]]:
    values = {"PRPC_TYPE_BROKER": "kafka", "PRPC_URL_BROKER": kafka_server.bootstrap,
              "PRPC_QUEUE_NAME": queue}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    prpc.client.close_shared_clients()


@pytest.fixture
def kafka_app(kafka_env, tmp_path) -> Iterator[ServerProcess]:
    path = tmp_path / "kafka_app.py"
    path.write_text(APP.replace("{URL}", kafka_env["PRPC_URL_BROKER"])
                    .replace("{QUEUE}", kafka_env["PRPC_QUEUE_NAME"]))
    server = ServerProcess(path, kafka_env)
    probe = prpc.Client()

    def answers() -> bool:
        assert server.proc.poll() is None, server.output()
        try:
            return probe.ping(timeout=2) == "pong"
        except prpc.ClientTimeOutError:
            return False

    try:
        wait_until(answers, 120, "the Kafka server to answer ping")
    except BaseException:
        server.terminate()
        raise
    finally:
        probe.close()
    yield server
    output = server.output()
    assert server.terminate() == 0, output


def test_dashboard_over_kafka(kafka_app, kafka_env, start_dashboard, page: WebDriver) -> None:
    queue = kafka_env["PRPC_QUEUE_NAME"]
    d = start_dashboard(["--queue", queue, "--token", TOKEN], kafka_env)
    page.get(d.url + f"?token={TOKEN}")
    section = f'section[data-queue="{queue}"]'
    wait_for_text(page, f'{section} [data-stat="consumers"] dd', lambda t: t not in ("", "\u2013"),
                  60, "the queue's numbers from Kafka")

    # The server's announcement, through Kafka: its function with the signature.
    wait_for_text(page, f'{section} tr[data-function="add"]',
                  lambda t: "(a: int, b: int = 0) -> int" in t, 60, "the function add")
    assert "alive" in text_of(page, f"{section} tr[data-server]")

    # Kafka cannot delete a record: the requeue buttons are off and say why.
    wait_for_text(page, f"{section} .panel-head .note", lambda t: "requeue" in t, 30,
                  "the reason requeue is off")
    status, state = d.request("/api/state", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and state["actions"]["requeue"] is False
    status, body = d.request("/api/requeue", {"queue": queue, "all": True},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 501, body

    # A malformed record on the raw topic becomes a dead letter on the page.
    subprocess.run(["kcat", "-P", "-b", kafka_env["PRPC_URL_BROKER"], "-t", f"prpc_raw_{queue}"],
                   input=b"definitely not json", check=True, timeout=60)
    row_css = f"{section} tr[data-dead-letter]"
    wait_for_text(page, row_css, bool, 60, "the dead letter from Kafka")
    assert attr_of(page, f"{row_css} button", "disabled") == "true"

    # A call through the form, over Kafka.
    form = page.find_element(By.CSS_SELECTOR, f"{section} form")
    WebDriverWait(page, 20).until(
        lambda _: form.find_element(By.CSS_SELECTOR, "button[type=submit]").is_enabled())
    form.find_element(By.NAME, "function").send_keys("add")
    args = form.find_element(By.NAME, "args")
    args.clear()
    args.send_keys("[40, 2]")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    result = wait_for_text(page, f"{section} output.result",
                           lambda t: bool(t) and not t.startswith("Calling"), 60, "the result")
    assert result.splitlines()[0] == "42", result
    assert text_of(page, "#status").startswith("kafka")
    screenshot(page, "kafka", 1400, 900)
