"""Chromium (Playwright) helpers: sign in, accessibility checks, the demo phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, expect
from sqlalchemy import update

from ringback.db import transaction
from tests.browser.conftest import Phone
from tests.conftest import Service
from tests.staff.conftest import PASSWORD, add_user

AXE = Path(__file__).parents[1] / "browser" / "vendor" / "axe.min.js"


OWNER = "dana@glow.example"


class Console:
    """Console errors and uncaught exceptions a page showed (a missing favicon included)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


def open_context(browser: Browser, width: int, height: int, **extra: Any) -> BrowserContext:
    return browser.new_context(
        viewport={"width": width, "height": height},
        locale="en-US",
        timezone_id="America/Los_Angeles",
        **extra,
    )


def add_user_named(service: Service, email: str, name: str) -> None:
    from ringback.models import StaffUser

    add_user(service, email)
    with transaction(service.runtime.deps.sessions) as session:
        session.execute(update(StaffUser).where(StaffUser.email == email).values(name=name))


def sign_in(page: Page, service: Service) -> None:
    page.goto(f"{service.url}/staff")
    expect(page).to_have_url(re.compile(r"/staff/login\?next=/staff$"))
    assert_accessible(page, "sign-in page")
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{service.url}/staff")
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")


def assert_accessible(page: Page, what: str) -> None:
    """Run axe-core on the page: no violation of serious or critical impact."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated by the driver, not added as an inline <script>: the app's
        # Content-Security-Policy (script-src 'self') refuses inline scripts, as it should.
        page.evaluate(AXE.read_text())
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
            }));
        }"""
    )
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], f"accessibility problems on the {what}: {serious}"


def no_sideways_scroll(page: Page, what: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the {what} is {overflow}px wider than the screen"


SPA_NUMBER = "+13105550100"  # glow-downtown: rings the front desk before the miss


# Ring (2 s), the dial-result webhook, screening and the send: well under this.
TEXTBACK_TIMEOUT_MS = 15_000


def open_demo(phone: Phone, url: str) -> Page:
    page = phone.page
    page.goto(f"{url}/demo")
    expect(page).to_have_title("Ringback demo phone")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ringback demo phone")
    page.locator("#location").select_option(SPA_NUMBER)
    return page


def texts_from_spa(page: Page) -> Locator:
    return page.locator("#thread .bubble.in").filter(has_text=f"from {SPA_NUMBER}")


def body_of(bubble: Locator) -> str:
    """A bubble's message, without the sender/time/status line rendered under it."""
    return str(bubble.evaluate("el => el.firstChild.textContent"))


def expect_textback(page: Page) -> None:
    textback = texts_from_spa(page).filter(has_text="Hi, this is Glow Med Spa")
    expect(textback).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    body = body_of(textback)
    assert body.startswith("Hi, this is Glow Med Spa"), body
    assert body.endswith("Reply STOP to opt out."), body


def send(page: Page, body: str) -> None:
    page.get_by_label("Text the spa").fill(body)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread .bubble.out").filter(has_text=body)).not_to_have_count(0)
