"""Staff → Calendar in headless Chromium: appointments ahead, a failing calendar write with
its Retry button, the feed URLs; usable at phone width and free of serious axe findings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from ringback.models import CalendarSync
from tests.conftest import Service, free_port, wait_for
from tests.support.booking import scheduling
from tests.support.browser import (
    OWNER,
    Console,
    add_user_named,
    assert_accessible,
    no_sideways_scroll,
    open_context,
    sign_in,
)
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

pytestmark = pytest.mark.slow


@pytest.fixture
def service(make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch) -> Service:
    monkeypatch.setenv("BROWSER_CALDAV_PW", "x")
    down = f"http://127.0.0.1:{free_port()}/maya/work/"  # a calendar that never answers

    def edit(config: dict[str, Any]) -> None:
        scheduling()(config)
        config["locations"][0]["providers"][0]["calendar"] = {
            "url": down,
            "username": "maya",
            "password_env": "BROWSER_CALDAV_PW",
        }

    served = make_service(edit=edit)
    add_user_named(served, OWNER, "Dana Reyes")
    return served


@pytest.fixture
def phone_page(browser: Browser, service: Service) -> Iterator[tuple[Page, Console]]:
    context = open_context(browser, 390, 844, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    console = Console()
    page.on("console", console.message)
    page.on("pageerror", console.page_error)
    try:
        yield page, console
    finally:
        context.close()


def test_calendar_page_shows_the_booking_and_the_failing_calendar(
    service: Service, phone_page: tuple[Page, Console]
) -> None:
    caller = caller_number(701)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday afternoon, first visit")
    next_text(service, caller, 2)
    text_in(service, caller, "1")
    assert "You're booked!" in next_text(service, caller, 3)
    sync = wait_for(
        lambda: (row := service.scalar(select(CalendarSync))) and row.last_error and row,
        what="a failed calendar write",
    )
    page, console = phone_page
    sign_in(page, service)
    page.goto(f"{service.url}/staff/calendar")
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendar")
    problem = page.locator(f"#sync-{sync.id}")
    expect(problem).to_contain_text("calendar unreachable")
    expect(problem.get_by_role("button", name="Retry now")).to_be_visible()
    expect(page.locator("#upcoming")).to_contain_text("Botox")
    expect(page.get_by_text("/calendar/glow-downtown/anna.ics?token=")).to_be_visible()
    no_sideways_scroll(page, "calendar page")
    assert_accessible(page, "calendar page")
    problem.get_by_role("button", name="Retry now").click()
    expect(page.locator("p.done")).to_contain_text(f"Calendar write {sync.id} queued again")
    assert console.errors == []
