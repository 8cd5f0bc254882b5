"""The settings pages in Chromium at desk and phone size: each passes axe-core, fits the
screen, and works the way an owner on a phone uses it (a bad hour named at its field,
a service row added with the button, a template previewed as it is typed)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Service
from tests.settings.conftest import store_settings
from tests.support.browser import (
    OWNER,
    Console,
    add_user_named,
    assert_accessible,
    no_sideways_scroll,
    open_context,
    sign_in,
)

pytestmark = pytest.mark.slow

SIZES = {
    "desk": ((1280, 900), {"device_scale_factor": 1}),
    "phone": ((390, 844), {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}),
}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TAKE_SCREENSHOTS = os.environ.get("RINGBACK_SCREENSHOTS") == "1"
BASE = "/staff/settings/locations/glow-downtown"


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    served = make_service()
    store_settings(served)
    add_user_named(served, OWNER, "Dana Reyes")
    return served


@pytest.fixture(params=list(SIZES))
def screen(
    request: pytest.FixtureRequest, browser: Browser, service: Service
) -> Iterator[tuple[Page, Console, str]]:
    (width, height), extra = SIZES[request.param]
    context = open_context(browser, width, height, **extra)
    page = context.new_page()
    console = Console()
    page.on("console", console.message)
    page.on("pageerror", console.page_error)
    try:
        yield page, console, request.param
    finally:
        context.close()


def screenshot(page: Page, size: str, name: str) -> None:
    if TAKE_SCREENSHOTS and size == "desk":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def checked(page: Page, what: str) -> None:
    assert_accessible(page, what)
    no_sideways_scroll(page, what)


def test_the_location_page_names_a_bad_hour_and_saves_a_good_one(
    service: Service, screen: tuple[Page, Console, str]
) -> None:
    page, console, size = screen
    sign_in(page, service)
    page.get_by_role("link", name="Settings").first.click() if size == "desk" else page.goto(
        f"{service.url}/staff/settings"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    checked(page, "settings overview")
    page.goto(f"{service.url}{BASE}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Glow Med Spa: location")
    checked(page, "location settings")
    page.get_by_label("Sunday").fill("noon till late")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved.")
    expect(page.locator('[data-field="hours.sun"]')).to_contain_text("expected 'HH:MM-HH:MM'")
    expect(page.get_by_label("Sunday")).to_have_attribute("aria-invalid", "true")
    checked(page, "location settings with an error")
    page.get_by_label("Sunday").fill("10:00-14:00")
    page.get_by_label("Ring the front desk for (seconds)").fill("22")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(page.get_by_label("Sunday")).to_have_value("10:00-14:00")
    screenshot(page, size, "settings-location.png")
    downtown = service.runtime.deps.locations.get("glow-downtown")
    assert downtown is not None
    assert downtown.ring_seconds == 22
    page.goto(f"{service.url}/staff/settings/changes")
    expect(page.locator("tr.change").first).to_contain_text("dana@glow.example")
    expect(page.locator("tbody")).to_contain_text("ring seconds")
    checked(page, "changes page")
    screenshot(page, size, "settings-changes.png")
    assert [e for e in console.errors if "status of 400" not in e] == []


def test_services_and_providers_rows_on_a_phone(
    service: Service, screen: tuple[Page, Console, str]
) -> None:
    page, console, size = screen
    sign_in(page, service)
    page.goto(f"{service.url}{BASE}/services")
    expect(page.get_by_role("heading", level=1)).to_have_text("Glow Med Spa: services")
    checked(page, "services settings")
    rows = page.locator(".repeat-row")
    before = rows.count()
    page.get_by_role("button", name="Add a service").click()
    expect(rows).to_have_count(before + 1)
    last = rows.last
    last.get_by_label("Name", exact=True).fill("Lash Lift")
    last.get_by_label("Minutes", exact=True).fill("45")
    last.get_by_label("Price ($)", exact=True).fill("120")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    downtown = service.runtime.deps.locations.get("glow-downtown")
    assert downtown is not None
    assert downtown.services[-1].name == "Lash Lift"
    screenshot(page, size, "settings-services.png")

    page.goto(f"{service.url}{BASE}/providers")
    checked(page, "providers settings")
    row = page.locator(".repeat-row").first
    row.get_by_label("Name", exact=True).fill("Maya")
    row.get_by_label("Services", exact=True).fill("Botox, Lash Lift")
    row.get_by_label("Monday", exact=True).fill("12:00-18:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(page.locator(".repeat-row").first.get_by_label("Monday", exact=True)).to_have_value(
        "12:00-18:00"
    )
    checked(page, "providers settings after saving")
    assert console.errors == []


def test_templates_preview_segments_as_the_owner_types(
    service: Service, screen: tuple[Page, Console, str]
) -> None:
    page, console, size = screen
    sign_in(page, service)
    page.goto(f"{service.url}{BASE}/templates")
    expect(page.get_by_role("heading", level=1)).to_have_text("Glow Med Spa: messages")
    first = page.locator("#preview-textback")
    expect(first).to_contain_text("Reply STOP to opt out.")
    expect(first).to_contain_text("GSM-7 · 1 segment")
    checked(page, "message settings")
    page.get_by_label("Text-back (the first text to a missed caller)").fill(
        "Hola de {location} 😊 ¿en qué le ayudamos?"
    )
    expect(first).to_contain_text("Hola de Glow Med Spa 😊", timeout=5000)
    expect(first).to_contain_text("UCS-2")
    screenshot(page, size, "settings-messages.png")
    page.get_by_text("The bot's replies, in English and Spanish").click()
    expect(page.locator(".replies tbody")).to_contain_text("¿Qué tratamiento le interesa?")
    checked(page, "message settings with the bot's replies open")
    assert re.search(r"\d+ characters", first.inner_text())
    assert console.errors == []
