"""The Reminders and Booking system settings pages in Chromium at desk and phone size:
each passes axe-core and fits the screen; a reminder's preview follows what is typed; a
bad daily cap or an unready booking system is named at its field and nothing is saved."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_settings_pages import (  # noqa: F401 - the fixtures
    BASE,
    checked,
    screen,
    screenshot,
    service,
)
from tests.conftest import Service
from tests.support.browser import Console, sign_in

pytestmark = pytest.mark.slow


def test_reminders_preview_as_typed_and_a_bad_cap_saves_nothing(
    service: Service,  # noqa: F811
    screen: tuple[Page, Console, str],  # noqa: F811
) -> None:
    page, console, size = screen
    sign_in(page, service)
    page.goto(f"{service.url}{BASE}/reminders")
    expect(page.get_by_role("heading", level=1)).to_have_text("Glow Med Spa: reminders")
    checked(page, "reminder settings")
    preview = page.locator("#preview-reminders-0-text")
    expect(preview).to_contain_text("a reminder of your appointment on Wed Nov 25 at 12:00pm")
    expect(preview).to_contain_text("GSM-7")
    first = page.locator(".repeat-row").first
    first.get_by_label("English wording", exact=True).fill("{location} 😊 see you {when}")
    expect(preview).to_contain_text("Glow Med Spa 😊 see you Wed Nov 25", timeout=5000)
    expect(preview).to_contain_text("UCS-2")
    cap = page.get_by_label("At most this many automated texts per patient per day")
    cap.fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved.")
    expect(page.locator('[data-field="automated_texts_per_day"]')).to_contain_text(
        "greater than or equal to 1"
    )
    checked(page, "reminder settings with an error")
    downtown = service.runtime.deps.locations.get("glow-downtown")
    assert downtown is not None
    assert downtown.automated_texts_per_day == 1
    cap.fill("2")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    downtown = service.runtime.deps.locations.get("glow-downtown")
    assert downtown is not None
    assert downtown.automated_texts_per_day == 2
    assert downtown.reminders[0].text == "{location} 😊 see you {when}"
    screenshot(page, size, "settings-reminders.png")
    assert [e for e in console.errors if "status of 400" not in e] == []


def test_the_booking_system_page_says_what_each_can_do(
    service: Service,  # noqa: F811
    screen: tuple[Page, Console, str],  # noqa: F811
) -> None:
    page, console, size = screen
    sign_in(page, service)
    page.goto(f"{service.url}{BASE}/booking-system")
    expect(page.get_by_role("heading", level=1)).to_have_text("Glow Med Spa: booking system")
    expect(page.locator("#can-square")).to_contain_text("computes slots itself")
    checked(page, "booking system settings")
    page.get_by_label("Google Calendar", exact=True).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved.")
    expect(page.locator('[data-field="booking_system"]')).to_contain_text("needs providers")
    checked(page, "booking system settings with an error")
    downtown = service.runtime.deps.locations.get("glow-downtown")
    assert downtown is not None
    assert downtown.booking_system == "ringback"
    screenshot(page, size, "settings-booking-system.png")
    assert [e for e in console.errors if "status of 400" not in e] == []
