"""The demo phone page in headless Chromium at phone size: call, miss, text-back, reply."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Phone
from tests.support.browser import (
    TEXTBACK_TIMEOUT_MS,
    body_of,
    expect_textback,
    open_demo,
    send,
    texts_from_spa,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "screenshots" / "demo-phone.png"


def test_page_basics(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)

    # Every form control has a visible label a screen reader announces.
    for control, label in (
        ("#my-number", "Your number"),
        ("#location", "Call"),
        ("#reply-body", "Text the spa"),
    ):
        expect(page.get_by_label(label, exact=True)).to_have_attribute("id", control[1:])
    expect(page.get_by_role("button", name="Call")).to_be_enabled()
    expect(page.get_by_role("button", name="Hang up")).to_be_disabled()
    expect(page.get_by_role("status")).to_have_text("No call yet.")
    expect(page.locator("#thread")).to_contain_text("No texts yet.")
    # Nothing sticks out sideways at phone width.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone"
    # One more round of the page's polling, so an error in rendering its answer would show.
    with page.expect_response(lambda response: "/demo/api/phone/" in response.url):
        pass
    assert phone.errors == []


def test_missed_call_gets_a_textback_and_help_answers(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)
    status = page.get_by_role("status")

    page.get_by_role("button", name="Call").click()
    expect(status).to_contain_text("Ringing")
    expect(page.get_by_role("button", name="Hang up")).to_be_enabled()
    expect_textback(page)
    # The network then plays Ringback's spoken greeting, which replaces "Nobody picked up."
    expect(status).to_contain_text("Thanks for calling Glow Med Spa")

    page.get_by_label("Text the spa").fill("HELP")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread .bubble.out").filter(has_text="HELP")).to_have_count(1)
    answer = texts_from_spa(page).filter(has_text=re.compile(r"^Glow Med Spa: "))
    expect(answer).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    assert "Glow Med Spa" in body_of(answer)
    expect(page.get_by_label("Text the spa")).to_have_value("")
    expect(status).to_contain_text("Call ended", timeout=TEXTBACK_TIMEOUT_MS)

    if os.environ.get("RINGBACK_SCREENSHOTS") == "1":
        # Wait for the delivery receipts, so the picture shows "delivered", not "queued".
        expect(texts_from_spa(page).filter(has_text="delivered")).to_have_count(2)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
    assert phone.errors == []


def test_hanging_up_while_it_rings_still_gets_a_textback(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)
    status = page.get_by_role("status")

    page.get_by_role("button", name="Call").click()
    expect(status).to_contain_text("Ringing")
    page.get_by_role("button", name="Hang up").click()
    expect(status).to_contain_text("You hung up while it rang.")

    # A caller who gives up while it rings is a recoverable miss: texted all the same.
    expect_textback(page)
    expect(status).to_contain_text("Call ended", timeout=TEXTBACK_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Call")).to_be_enabled()
    assert phone.errors == []


def test_the_same_conversation_shows_in_the_staff_inbox(demo_url: str, phone: Phone) -> None:
    from ringback.demo import DEMO_OWNER_EMAIL, DEMO_OWNER_PASSWORD

    page = open_demo(phone, demo_url)
    page.get_by_role("button", name="Call").click()
    expect_textback(page)
    page.locator("#reply-body").fill("can someone call me about botox?")
    page.get_by_role("button", name="Send").click()
    expect(texts_from_spa(page).filter(has_text="Someone from our team")).to_have_count(
        1, timeout=TEXTBACK_TIMEOUT_MS
    )
    # Another tab: the front desk signs in with the demo's printed account.
    inbox = page.context.new_page()
    inbox.goto(f"{demo_url}/staff")
    inbox.get_by_label("Email").fill(DEMO_OWNER_EMAIL)
    inbox.get_by_label("Password").fill(DEMO_OWNER_PASSWORD)
    inbox.get_by_role("button", name="Sign in").click()
    expect(inbox.locator("#queue-needs_staff .count")).to_have_text("1", timeout=10_000)
    inbox.locator("#queue-needs_staff").click()
    inbox.get_by_text("(213) 555-0123").first.click()
    expect(inbox.get_by_text("can someone call me about botox?")).to_be_visible()


def test_the_demo_patient_books_a_slot_by_text(demo_url: str, phone: Phone) -> None:
    """The demo spa books itself: real times offered by text, one reply books one."""
    page = open_demo(phone, demo_url)
    page.get_by_role("button", name="Call").click()
    expect_textback(page)

    send(page, "botox thursday afternoon please, first time")
    offer = texts_from_spa(page).filter(has_text="Reply 1, 2 or 3")
    expect(offer).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    times = re.findall(r"\d\) ([^,]+?)(?=, \d\)|\. Reply)", body_of(offer))
    assert len(times) == 3, body_of(offer)
    assert all(t.startswith("Thu ") and " with Maya" in t for t in times), times

    send(page, "2")
    booked = texts_from_spa(page).filter(has_text="You're booked!")
    expect(booked).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    confirmation = body_of(booked)
    assert confirmation.startswith("Glow Med Spa: You're booked! Botox on "), confirmation
    assert times[1].removesuffix(" with Maya") in confirmation
    assert "Please skip alcohol the day before." in confirmation
    assert phone.errors == []
