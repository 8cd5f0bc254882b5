"""A real browser on the demo phone page: ``ringback demo``'s app served on a free port,
and Debian's Chromium driven by Playwright at phone size.

Chromium comes from the system (``apt-get install chromium``); Playwright's own browser
downloads are not used. Without it these tests fail, they are not skipped: CI installs it
(``scripts/test.sh`` does when run as root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

from ringback.demo.run import build_demo_app
from ringback.runtime import Runtime
from tests.conftest import ServerThread, Service, free_port

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's services,
# which on a closed network is a stream of refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The front desk rings for 2 s instead of the demo's 8: long enough to see and hang up.
RING_SECONDS = 2


@pytest.fixture
def demo_url(tmp_path: Path) -> Iterator[str]:
    """The demo app on 127.0.0.1, fresh for each test (its own database and phone network).

    The port is chosen before the app is built because the app must know its own public
    URL: the simulated network signs its webhooks for that address.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_demo_app(public_url=url, data_dir=tmp_path / "demo", ring_seconds=RING_SECONDS)
    runtime: Runtime = app.state.runtime
    try:
        with ServerThread(app, port):
            yield url
    finally:
        runtime.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. "
            "Install it with `apt-get install chromium` (scripts/test.sh does this when "
            "run as root; CI installs it).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Phone:
    """A phone-sized page, and the console errors and uncaught exceptions it has shown."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def _page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
def phone(browser: Browser) -> Iterator[Phone]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-US",
        timezone_id="America/Los_Angeles",
    )
    page = context.new_page()
    phone = Phone(page)
    page.on("console", phone._console)
    page.on("pageerror", phone._page_error)
    try:
        yield phone
    finally:
        context.close()


@pytest.fixture
def service(make_service: Any) -> Service:
    """The demo service with an owner account (Dana) to sign in as."""
    from tests.support.browser import OWNER, add_user_named

    served: Service = make_service()
    add_user_named(served, OWNER, "Dana Reyes")
    return served


# The pages render the same on either database; what differs between backends is tested over
# HTTP in both passes. So the browser tests run in the SQLite pass, and only the first-run test
# (a fresh install, end to end) repeats on PostgreSQL: that keeps CI well under an hour.
# RINGBACK_TEST_BROWSER_BOTH=1 runs every browser test on PostgreSQL too.
BOTH_BACKENDS = {"test_first_run.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RINGBACK_TEST_DATABASE", "sqlite") != "postgres":
        return
    if os.environ.get("RINGBACK_TEST_BROWSER_BOTH") == "1":
        return
    here = Path(__file__).parent
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        path = Path(str(item.path))
        if path.parent == here and path.name not in BOTH_BACKENDS:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
