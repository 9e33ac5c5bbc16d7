"""The dashboard tests' helpers: `prpc dashboard` as a process, screenshots, DOM reads."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.remote.webdriver import WebDriver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from sdk_fixtures import wait_until

BIN_DIR = Path(os.environ.get("PRPC_BIN_DIR",
                              Path(__file__).resolve().parents[3] / "build/ci/bin"))
ARTEFACTS = Path(os.environ.get("PRPC_DASHBOARD_ARTEFACTS",
                                BIN_DIR.parent / "test-artefacts/dashboard"))


class Dashboard:
    """`prpc dashboard --listen 127.0.0.1:0 ...`; the address is read from its first line."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self.log = open(log, "w")
        full_env = dict(os.environ)
        full_env.update(env)
        self.proc = subprocess.Popen(
            [str(BIN_DIR / "prpc"), "dashboard", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=self.log, env=full_env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once it listens; EOF if it exits
        found = re.search(r"http://\S+/", line)
        assert found, f"no address from the dashboard: {line!r}\n{self.output()}"
        self.url = found.group(0)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def request(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
                method: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers.update(headers or {})
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=all_headers,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw = e.read()
            status = e.code
            e.close()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


def screenshot(driver: WebDriver, name: str, width: int, height: int) -> Path:
    """A screenshot of the whole page at width x height (CSS pixels), kept as a test artefact."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(width, height)
    # Headless Chromium's window size includes no browser UI, so the viewport is width x height;
    # the emulated metrics make a phone's width exact.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    try:
        wait_until(lambda: driver.execute_script("return window.innerWidth") == width, 10,
                   f"the viewport to be {width} px wide")
        driver.execute_script("window.scrollTo(0, 0)")
        path = ARTEFACTS / f"{name}-{width}x{height}.png"
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.set_window_size(1400, 900)
    return path


def text_of(driver: WebDriver, css: str) -> str:
    """The text of the first element matching css, or '' (without waiting). The page redraws
    a table when its data change, so an element found may be gone when it is read: '' too."""
    try:
        found = driver.find_elements("css selector", css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def attr_of(driver: WebDriver, css: str, name: str, timeout: float = 10) -> str:
    """An attribute of the first element matching css (found again if a redraw replaced it)."""
    def read() -> str | None:
        try:
            found = driver.find_elements("css selector", css)
            return found[0].get_attribute(name) if found else None
        except StaleElementReferenceException:
            return None

    value = wait_until(read, timeout, f"{name} of {css}")
    assert isinstance(value, str)
    return value


def click(driver: WebDriver, css: str, timeout: float = 10) -> None:
    """Clicks the first element matching css, finding it again if a redraw replaced it."""
    def clicked() -> bool:
        try:
            found = driver.find_elements("css selector", css)
            if not found:
                return False
            found[0].click()
            return True
        except StaleElementReferenceException:
            return False

    wait_until(clicked, timeout, f"a click on {css}")


def wait_for_text(driver: WebDriver, css: str, predicate: Callable[[str], bool], timeout: float,
                  what: str) -> str:
    def check() -> str | None:
        t = text_of(driver, css)
        return t if predicate(t) else None

    result = wait_until(check, timeout, what)
    assert isinstance(result, str)
    return result
