"""The waitlist in headless Chromium: the demo phone's "Free a slot (waitlist)" puts the
phone on the waitlist, frees a slot and texts it; a YES books it. Free of serious axe
findings."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Phone
from tests.support.browser import (
    TEXTBACK_TIMEOUT_MS,
    assert_accessible,
    open_demo,
    send,
    texts_from_spa,
)

pytestmark = pytest.mark.slow


def test_the_demo_phone_frees_a_slot_and_a_yes_books_it(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)
    page.get_by_role("button", name="Free a slot (waitlist)").click()
    expect(page.get_by_role("status")).to_contain_text("reply YES to take it")
    offer = texts_from_spa(page).filter(has_text="a time just opened")
    expect(offer).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    expect(offer).to_contain_text("Reply YES to book it")
    send(page, "yes")
    booked = texts_from_spa(page).filter(has_text="You're booked")
    expect(booked).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    assert_accessible(page, "demo phone")
    assert phone.errors == []
