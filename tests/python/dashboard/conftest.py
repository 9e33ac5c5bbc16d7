"""Fixtures of the dashboard's browser tests: `prpc dashboard` as a process on a free port, and a
real headless Chromium driven through Debian's chromedriver (selenium's WebDriver API)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_support import Dashboard
from sdk_fixtures import *  # noqa: F403 - the shared fixtures


@pytest.fixture
def start_dashboard(tmp_path: Path) -> Iterator[Callable[..., Dashboard]]:
    started: list[Dashboard] = []

    def start(args: list[str], env: dict[str, str]) -> Dashboard:
        d = Dashboard(args, env, tmp_path / f"dashboard-{len(started)}.log")
        started.append(d)
        return d

    yield start
    for d in started:
        code = d.stop()
        assert code == 0, f"the dashboard exited with {code}:\n{d.output()}"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return browser, driver


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--no-first-run", "--disable-extensions", "--lang=en-US"):
        options.add_argument(arg)
    # The path to Debian's chromedriver: selenium then never looks for a driver of its own.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The session's browser, at the desktop size and without cookies from earlier tests."""
    browser.set_window_size(1400, 900)
    yield browser
    browser.delete_all_cookies()
    browser.get("about:blank")


