"""The staff inbox in headless Chromium against the real service: sign in, watch a handoff
arrive without a reload, reply from the keyboard, see the patient's answer arrive, mark
booked; axe-core finds no serious or critical accessibility problem on any page; the
layout holds at phone width.

axe-core is vendored (``vendor/axe.min.js``, axe-core 4.14.1 from npm, MPL-2.0, header
kept) and injected into each page, so the test needs no network and no npm at run time.
Screenshots for the README are written only with ``RINGBACK_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from ringback.db import transaction
from ringback.models import Conversation, Patient
from tests.conftest import Service, wait_for
from tests.staff.conftest import PASSWORD
from tests.support.browser import (
    OWNER,
    Console,
    assert_accessible,
    no_sideways_scroll,
    open_context,
    sign_in,
)
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
TAKE_SCREENSHOTS = os.environ.get("RINGBACK_SCREENSHOTS") == "1"
LIVE_TIMEOUT_MS = 15_000


# --- the browser ------------------------------------------------------------------------


@pytest.fixture
def desk(browser: Browser, service: Service) -> Iterator[tuple[Page, Console]]:
    """A laptop-sized page. Depends on ``service`` so it closes (and with it the page's
    event stream) before the server stops."""
    context = open_context(browser, 1280, 900, device_scale_factor=1)
    page = context.new_page()
    console = Console()
    page.on("console", console.message)
    page.on("pageerror", console.page_error)
    try:
        yield page, console
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    if TAKE_SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


# --- driving conversations ----------------------------------------------------------------


def conversation_id(service: Service, caller: str) -> int:
    found: int = wait_for(
        lambda: service.scalar(
            select(Conversation.id)
            .join(Patient, Patient.id == Conversation.patient_id)
            .where(Patient.phone == caller)
        ),
        what="conversation",
    )
    return found


def name_patient(service: Service, caller: str, first: str, last: str) -> None:
    """As an import from the clinic's records would."""
    with transaction(service.runtime.deps.sessions) as session:
        session.execute(
            update(Patient)
            .where(Patient.phone == caller)
            .values(first_name=first, last_name=last, status="returning")
        )


def wait_status(service: Service, cid: int, status: str) -> None:
    wait_for(
        lambda: service.scalar(select(Conversation.status).where(Conversation.id == cid)) == status,
        what=f"conversation {cid} {status}",
    )


def minutes_pass(service: Service, minutes: int) -> None:
    """Move the service's clock, so the times on the pages read like a real morning."""
    service.clock.advance(timedelta(minutes=minutes))


def converse(service: Service, index: int, *texts: str) -> str:
    """A missed call, the text-back, then the patient's texts, each answered by the bot."""
    caller = caller_number(index)
    miss(service, caller)
    next_text(service, caller, 1)
    for n, body in enumerate(texts, start=2):
        minutes_pass(service, 2)
        text_in(service, caller, body)
        next_text(service, caller, n)
    minutes_pass(service, 7)
    return caller


def a_busy_morning(service: Service) -> None:
    """Some history, so the inbox looks like a working day."""
    caller = converse(service, 301, "my lip is really swollen and turning white after filler")
    name_patient(service, caller, "Maya", "Chen")
    wait_status(service, conversation_id(service, caller), "urgent")
    caller = converse(service, 302, "do you do consults for cheek filler?")
    name_patient(service, caller, "Priya", "Shah")
    converse(service, 303, "hydrafacial", "saturday morning")
    caller = converse(service, 304, "botox")
    name_patient(service, caller, "Jordan", "Lee")


# --- the test -------------------------------------------------------------------------------


def test_handoff_arrives_live_then_reply_and_book(
    service: Service, desk: tuple[Page, Console], browser: Browser
) -> None:
    page, console = desk
    a_busy_morning(service)
    sign_in(page, service)
    nav = page.get_by_role("navigation", name="Queues")
    expect(nav.get_by_role("link", name=re.compile(r"^Urgent 1"))).to_be_visible()
    expect(nav.get_by_role("link", name=re.compile(r"^Needs staff 1"))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Urgent: 1 waiting"))).to_be_visible()
    assert_accessible(page, "inbox")

    # A new caller asks for a person while the inbox is open: it appears without a reload.
    page.evaluate("window.__sameDocument = true")
    caller = caller_number(310)
    miss(service, caller)
    next_text(service, caller, 1)
    minutes_pass(service, 3)
    text_in(service, caller, "botox for my forehead lines. can someone call me?")
    cid = conversation_id(service, caller)
    row = page.locator(f"#conv-{cid}")
    expect(row).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(row).to_have_text("(213) 555-0310")
    expect(nav.get_by_role("link", name=re.compile(r"^Needs staff 2"))).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    expect(page.get_by_role("status").filter(has_text="Updated")).to_contain_text("2 need staff")
    screenshot(page, "inbox.png")

    # Open it; reply from the keyboard.
    row.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("(213) 555-0310")
    expect(page.locator("#conv-head")).to_contain_text("Needs staff")
    expect(page.locator("#facts")).to_contain_text("Asked for a person")
    assert_accessible(page, "conversation page")
    minutes_pass(service, 4)
    reply = page.get_by_label("Reply to (213) 555-0310")
    reply.fill("Hi, this is Dana at Glow! I can call you at 11. Does that work?")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send reply")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Reply queued")).to_be_visible()
    thread = page.locator("#thread")
    expect(thread.locator(".msg.k-staff")).to_contain_text("I can call you at 11")
    wait_for(
        lambda: any("call you at 11" in m.body for m in texts_to(service, caller)),
        what="the reply at Twilio",
    )
    expect(page.locator("#conv-head")).to_contain_text("Bot paused")

    # The patient answers: it shows up in the thread without a reload; the bot stays quiet.
    page.evaluate("window.__sameDocument = true")
    minutes_pass(service, 2)
    text_in(service, caller, "11 is perfect, thank you!")
    expect(thread.locator(".msg.in").last).to_contain_text("11 is perfect", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    expect(thread.locator(".msg.k-staff .delivery")).to_contain_text(re.compile("Sent|Deliver"))
    assert len(texts_to(service, caller)) == 3

    # A note for colleagues.
    page.get_by_label("Add a note").fill("First visit. Asked about forehead lines; call at 11.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_role("status").filter(has_text="Note added.")).to_be_visible()
    expect(page.locator("#notes-list")).to_contain_text("Dana Reyes")
    screenshot(page, "conversation.png")

    # Mark booked, with a value.
    value = page.get_by_label("Booked value in dollars")
    expect(value).to_have_value("480.00")  # Botox's price, to start from
    value.fill("520")
    page.get_by_role("button", name="Mark booked").click()
    expect(page.get_by_role("status").filter(has_text="Marked booked.")).to_be_visible()
    expect(page.locator("#conv-head .badge")).to_have_text("Booked")
    booked = service.scalar(select(Conversation).where(Conversation.id == cid))
    assert (booked.status, booked.booked_value_cents, booked.booked_by) == (
        "booked",
        52000,
        "staff",
    )
    assert_accessible(page, "booked conversation")
    assert console.errors == []

    # At phone width nothing sticks out sideways, and the thread comes before the actions.
    phone = open_context(browser, 390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        small = phone.new_page()
        small.goto(page.url.split("?")[0])
        if "/login" in small.url:
            small.get_by_label("Email").fill(OWNER)
            small.get_by_label("Password").fill(PASSWORD)
            small.get_by_role("button", name="Sign in").click()
        expect(small.get_by_role("heading", level=1)).to_have_text("(213) 555-0310")
        no_sideways_scroll(small, "conversation page")
        thread_top = small.locator("#thread").bounding_box()
        actions_top = small.get_by_role("heading", name="Actions").bounding_box()
        assert thread_top is not None
        assert actions_top is not None
        assert thread_top["y"] < actions_top["y"]
        small.goto(f"{service.url}/staff")
        expect(small.get_by_role("heading", level=1)).to_have_text("Inbox")
        no_sideways_scroll(small, "inbox")
        assert_accessible(small, "inbox at phone width")
    finally:
        phone.close()


def test_keyboard_use_and_a_refused_action(service: Service, desk: tuple[Page, Console]) -> None:
    page, console = desk
    caller = converse(service, 320, "can someone call me")
    sign_in(page, service)
    # The first Tab reaches "Skip to content", which moves past the navigation.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("#main$"))
    # The conversation is reached by keyboard alone.
    link = page.locator(f"#conv-{conversation_id(service, caller)}")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("(213) 555-0320")

    # A bad value: the page says what was wrong next to the field, which gets the focus.
    page.get_by_label("Booked value in dollars").fill("about 500")
    page.get_by_role("button", name="Mark booked").click()
    error = page.get_by_role("alert")
    expect(error).to_have_text(
        "Booked value: expected an amount in dollars like 480 or 480.00, got 'about 500'"
    )
    value = page.get_by_label("Booked value in dollars")
    expect(value).to_be_focused()
    expect(value).to_have_attribute("aria-invalid", "true")
    expect(value).to_have_value("about 500")
    assert_accessible(page, "conversation page with an error")
    # The browser logs the 400 itself; nothing else may go wrong.
    assert [e for e in console.errors if "status of 400" not in e] == []
