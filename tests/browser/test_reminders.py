"""Reminders in headless Chromium: the demo phone's "Book and remind me" shows a reminder
and a C confirms it; Staff → Calendar and the conversation show each appointment's status
(unconfirmed, confirmed, cancelled) at phone and desk size, free of serious axe findings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from ringback.models import Appointment, Conversation
from tests.browser.conftest import Phone
from tests.conftest import Service
from tests.e2e.test_reminders import THURSDAY_3PM, at, book, sweep
from tests.support.browser import (
    OWNER,
    TEXTBACK_TIMEOUT_MS,
    Console,
    add_user_named,
    assert_accessible,
    no_sideways_scroll,
    open_context,
    open_demo,
    send,
    texts_from_spa,
)
from tests.support.phone import next_text, text_in
from tests.twilio_payloads import caller_number

pytestmark = pytest.mark.slow


def test_the_demo_phone_books_and_shows_a_reminder(demo_url: str, phone: Phone) -> None:
    page = open_demo(phone, demo_url)
    page.get_by_role("button", name="Book and remind me").click()
    expect(page.get_by_role("status")).to_contain_text("its reminder is on its way")
    reminder = texts_from_spa(page).filter(has_text="a reminder of your appointment on")
    expect(reminder).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    expect(reminder).to_contain_text("Reply C to confirm")
    send(page, "C")
    confirmed = texts_from_spa(page).filter(has_text="you're confirmed for")
    expect(confirmed).to_have_count(1, timeout=TEXTBACK_TIMEOUT_MS)
    assert_accessible(page, "demo phone")
    assert phone.errors == []


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1366, 768)])
def test_status_on_the_calendar_and_the_conversation(
    make_service: Callable[..., Service], browser: Browser, width: int, height: int
) -> None:
    service = make_service()
    add_user_named(service, OWNER, "Dana Reyes")
    confirming, cancelling, quiet = caller_number(4301), caller_number(4302), caller_number(4303)
    ids = {c: book(service, c, THURSDAY_3PM) for c in (confirming, cancelling, quiet)}
    sweep(service)
    at(service, THURSDAY_3PM - timedelta(hours=2))
    sweep(service)
    for caller in ids:
        next_text(service, caller, 1)
    text_in(service, confirming, "see you then")
    next_text(service, confirming, 2)
    text_in(service, cancelling, "X")
    next_text(service, cancelling, 2)
    text_in(service, cancelling, "X")
    assert "is cancelled" in next_text(service, cancelling, 3)

    context = open_context(browser, width, height, is_mobile=width < 800)
    page = context.new_page()
    console = Console()
    page.on("console", console.message)
    page.on("pageerror", console.page_error)
    try:
        # Signed in after the clock's jump, so the session is fresh.
        from tests.support.browser import sign_in

        sign_in(page, service)
        page.goto(f"{service.url}/staff/calendar")
        upcoming = page.locator("#upcoming")
        for status, label in (
            ("confirmed", "Confirmed"),
            ("cancelled", "Cancelled"),
            ("unconfirmed", "Unconfirmed"),
        ):
            expect(upcoming.locator(f'[data-status="{status}"]')).to_have_text(label)
        no_sideways_scroll(page, "calendar page")
        assert_accessible(page, "calendar page")

        thread = service.scalar(
            select(Conversation.id)
            .join(Appointment, Appointment.patient_id == Conversation.patient_id)
            .where(Appointment.id == ids[confirming])
        )
        page.goto(f"{service.url}/staff/conversations/{thread}")
        expect(page.locator("#appointment-status")).to_have_text("Confirmed")
        no_sideways_scroll(page, "conversation page")
        assert_accessible(page, "conversation page")
        assert console.errors == []
    finally:
        context.close()
