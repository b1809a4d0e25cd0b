"""A real headless Chromium (Debian's chromium + chromium-driver) for the kiosk pages' tests.

One browser per test session (``browser``: starting Chromium takes a second or two), a fresh tab
per test (``page``: no cookies, storage or history from the test before). The browser records
its network log, so a test can read what a page *received* (:func:`event_stream_messages`), not
only what it shows.

Nothing is downloaded: the driver and the browser are the system's. A browser that cannot
start fails the tests that need it, with its reason; it is never a skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OPTIONS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)


def start_browser() -> WebDriver:
    """Chromium under chromedriver, headless, with its network log kept for the tests."""
    for tool, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not tool.exists():
            raise RuntimeError(f"{tool} not found: apt-get install -y {package}")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for option in OPTIONS:
        options.add_argument(option)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    try:
        driver = start_browser()
    except (WebDriverException, RuntimeError, OSError) as exc:
        pytest.fail(f"headless Chromium did not start: {exc}", pytrace=False)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The session's browser on a new, empty tab; closed (and its cookies cleared) after."""
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    # Cookies ignore the port: clear every one, or the last test's server's session would show.
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.get_log("performance")  # forget the previous test's network log
    try:
        yield browser
    finally:
        tab = browser.current_window_handle
        if tab != first:
            browser.close()
        browser.switch_to.window(first)
        browser.get("about:blank")


def wait_until(driver: WebDriver, condition: Any, timeout: float = 5.0, message: str = "") -> Any:
    """Wait for ``condition(driver)`` to be truthy (a page following a live stream)."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message)


#: Request id -> URL, over the whole session: a stream's request may predate the last read.
_REQUEST_URLS: dict[str, str] = {}


def event_stream_messages(driver: WebDriver, url_part: str = "") -> list[dict[str, Any]]:
    """Every Server-Sent Event the browser received since the last call (on a stream whose URL
    contains ``url_part``), decoded from JSON.

    Read from Chromium's own network log (``Network.eventSourceMessageReceived``), so it is the
    bytes that reached the browser, whatever the page's script did with them.
    """
    messages = []
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            _REQUEST_URLS[params["requestId"]] = params["request"]["url"]
        elif event.get("method") == "Network.eventSourceMessageReceived" and url_part in (
            _REQUEST_URLS.get(params["requestId"], "\0unknown")
        ):
            messages.append(json.loads(params["data"]))
    return messages
