"""The waitlist in headless Chromium: the demo phone's "Free a slot (waitlist)" puts the
phone on the waitlist, frees a slot and texts it; a YES books it. Free of serious axe
findings; staff put a patient on the waitlist from the patient page at phone and desk
size."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Phone
from tests.conftest import Service
from tests.e2e.test_waitlist import patient_id
from tests.support.booking import scheduling
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
    sign_in,
    texts_from_spa,
)
from tests.twilio_payloads import caller_number

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


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1366, 768)])
def test_staff_put_a_patient_on_the_waitlist_from_the_patient_page(
    make_service: Callable[..., Service], browser: Browser, width: int, height: int
) -> None:
    service = make_service(edit=scheduling([{"id": "anna", "name": "Anna"}]))
    add_user_named(service, OWNER, "Dana Reyes")
    pid = patient_id(service, caller_number(4801))
    context = open_context(browser, width, height, is_mobile=width < 800)
    page = context.new_page()
    console = Console()
    page.on("console", console.message)
    page.on("pageerror", console.page_error)
    try:
        sign_in(page, service)
        page.goto(f"{service.url}/staff/patients/{pid}")
        form = page.locator("#waitlist-form")
        form.get_by_label("Treatment").select_option("Filler")
        form.get_by_label("Sat").check()
        form.get_by_label("From").fill("10:00")
        form.get_by_label("To").fill("14:00")
        form.get_by_role("button", name="Add to the waitlist").click()
        expect(page.locator("#patient-waitlist")).to_contain_text("Filler · Sat 10:00-14:00")
        no_sideways_scroll(page, "patient page")
        assert_accessible(page, "patient page")
        assert console.errors == []
    finally:
        context.close()
