"""The booking page in headless Chromium at phone size: from the link the demo spa texts,
pick a time, confirm, and the phone gets the confirmation text.

Screenshots for the README are written only with ``RINGBACK_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Phone
from tests.support.browser import (
    TEXTBACK_TIMEOUT_MS,
    assert_accessible,
    body_of,
    expect_textback,
    open_demo,
    send,
    texts_from_spa,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
TAKE_SCREENSHOTS = os.environ.get("RINGBACK_SCREENSHOTS") == "1"


def screenshot(page: Page, name: str) -> None:
    if TAKE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone"


def test_the_texted_link_books_a_time_on_a_phone(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)
    page.get_by_role("button", name="Call").click()
    expect_textback(page)
    send(page, "botox thursday afternoon please, first time")
    expect(texts_from_spa(page).filter(has_text="Reply 1, 2 or 3")).to_have_count(
        1, timeout=TEXTBACK_TIMEOUT_MS
    )
    send(page, "none of those work")
    with_link = texts_from_spa(page).filter(has_text="/book/")
    expect(with_link).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    link = with_link.get_by_role("link")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{demo_url}/book/"), href
    # Opens at the day and part of day the patient asked for.
    assert re.search(
        r"\?service=Botox&day=\d{4}-\d{2}-\d{2}&part=(morning|afternoon|evening)#asked$", href
    ), href
    assert href in body_of(with_link)

    # The link opens in a new tab, as a tapped link in a text would.
    with page.context.expect_page() as opened:
        link.click()
    booking = opened.value
    booking.wait_for_load_state()
    booking.on("console", phone._console)
    booking.on("pageerror", phone._page_error)
    expect(booking.get_by_role("heading", level=1)).to_have_text("Book at Glow Med Spa")
    expect(booking.get_by_label("Treatment")).to_have_value("Botox")
    first_day = booking.locator(".slots").first
    expect(first_day.get_by_role("button").first).to_be_visible()
    no_sideways_scroll(booking)
    assert_accessible(booking, "booking page")
    screenshot(booking, "booking-page.png")

    chosen = first_day.get_by_role("button").first
    chosen_time = str(chosen.evaluate("el => el.firstChild.textContent")).strip()
    chosen.click()
    expect(booking.get_by_role("heading", level=1)).to_have_text("Confirm your booking")
    expect(booking.get_by_role("status")).to_contain_text(
        "We're holding this time for you for 10 minutes"
    )
    details = booking.locator("dl")
    expect(details).to_contain_text(f"at {chosen_time}")
    expect(details).to_contain_text("Maya")
    expect(details).to_contain_text("1200 Main St")
    expect(details).to_contain_text("Please skip alcohol the day before.")
    no_sideways_scroll(booking)
    assert_accessible(booking, "booking confirmation step")
    screenshot(booking, "booking-confirm.png")

    booking.get_by_role("button", name="Confirm booking").click()
    expect(booking.get_by_role("heading", level=1)).to_have_text("You're booked")
    expect(booking.locator("dl")).to_contain_text(f"at {chosen_time}")
    assert_accessible(booking, "booked page")

    # Back on the phone: the same thread confirms by text.
    confirmation = texts_from_spa(page).filter(has_text="You're booked!")
    expect(confirmation).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    assert f"at {chosen_time} with Maya" in body_of(confirmation)

    # The link opened again says so, rather than offering more times.
    booking.goto(href)
    expect(booking.get_by_role("heading", level=1)).to_have_text("You're already booked")
    assert phone.errors == []


def test_a_changed_treatment_shows_its_own_times(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)
    page.get_by_role("button", name="Call").click()
    expect_textback(page)
    send(page, "hydrafacial friday morning, first time")
    expect(texts_from_spa(page).filter(has_text="Reply 1, 2 or 3")).to_have_count(
        1, timeout=TEXTBACK_TIMEOUT_MS
    )
    send(page, "none of those")
    with_link = texts_from_spa(page).filter(has_text="/book/")
    expect(with_link).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    booking = page.context.new_page()
    booking.goto(with_link.get_by_role("link").get_attribute("href") or "")
    expect(booking.get_by_label("Treatment")).to_have_value("HydraFacial")
    expect(booking.locator(".slots button").first).to_contain_text("Lena")
    # Choosing a treatment reloads its times (a small script; the button works without it).
    booking.get_by_label("Treatment").select_option("Botox")
    expect(booking).to_have_url(re.compile(r"[?&]service=Botox"))
    expect(booking.locator(".slots button").first).to_contain_text("Maya")
    assert phone.errors == []
