"""Calendar sync against a real Radicale CalDAV server: bookings written, cancellations
removed, busy time read back into offers, failures retried and shown to staff; ICS feeds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from ringback.booking import calendar_sync
from ringback.booking import service as booking
from ringback.booking.availability import Window
from ringback.models import Appointment, CalendarSync
from tests.booking.radicale_server import RadicaleCalendar
from tests.conftest import Service, free_port, wait_for
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.booking import offered_times, scheduling
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

LA = ZoneInfo("America/Los_Angeles")


def with_calendar(url: str, username: str) -> Callable[[dict[str, Any]], None]:
    base = scheduling()

    def edit(config: dict[str, Any]) -> None:
        base(config)
        anna = config["locations"][0]["providers"][0]
        anna["calendar"] = {"url": url, "username": username, "password_env": "TEST_CALDAV_PW"}

    return edit


def book_by_text(
    service: Service, caller: str, wish: str = "botox thursday at 3pm, first visit"
) -> None:
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, wish)
    offer = next_text(service, caller, 2)
    times = offered_times(offer)
    pick = next((n for n, t in enumerate(times, 1) if "3:00pm" in t), 1)
    text_in(service, caller, str(pick))
    assert "You're booked!" in next_text(service, caller, 3)


def sync_row(service: Service) -> CalendarSync:
    return service.scalar(select(CalendarSync).order_by(CalendarSync.id.desc()))


def test_booking_is_written_to_the_providers_calendar_and_removed_on_cancel(
    make_service: Callable[..., Service],
    radicale: RadicaleCalendar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_CALDAV_PW", radicale.password)
    service = make_service(edit=with_calendar(radicale.url, radicale.username))
    caller = caller_number(601)
    book_by_text(service, caller)
    wait_for(lambda: sync_row(service) and sync_row(service).status == "done", what="sync")
    appointment = service.scalar(select(Appointment))
    uid = calendar_sync.event_uid(appointment, service.public_url)
    with radicale.client() as client:
        event = client.get(f"{radicale.url}{uid}.ics")
    assert event.status_code == 200
    assert "SUMMARY:Patient - Botox" in event.text
    assert "DTSTART:20261126T230000Z" in event.text  # 3:00pm in LA
    assert caller[-7:] not in event.text  # no phone number on the calendar
    text_in(service, caller, "X")
    assert "Reply X again" in next_text(service, caller, 4)
    text_in(service, caller, "X")
    next_text(service, caller, 5)
    wait_for(
        lambda: (
            service.scalar(
                select(CalendarSync.status).where(CalendarSync.appointment_id == appointment.id)
            )
            == "done"
            and service.scalar(select(CalendarSync.synced_at)) is not None
            and httpx.get(
                f"{radicale.url}{uid}.ics", auth=(radicale.username, radicale.password)
            ).status_code
            == 404
        ),
        what="event removed",
    )


def test_busy_time_on_the_providers_calendar_is_never_offered(
    make_service: Callable[..., Service],
    radicale: RadicaleCalendar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_CALDAV_PW", radicale.password)
    service = make_service(edit=with_calendar(radicale.url, radicale.username), run_worker=False)
    # Another app books Anna on Thursday 3-4pm.
    other = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Other//EN\r\nBEGIN:VEVENT\r\n"
        "UID:dentist-1\r\nDTSTAMP:20261120T000000Z\r\n"
        "DTSTART;TZID=America/Los_Angeles:20261126T150000\r\n"
        "DTEND;TZID=America/Los_Angeles:20261126T160000\r\nSUMMARY:Busy\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with radicale.client() as client:
        put = client.put(
            f"{radicale.url}dentist-1.ics",
            content=other,
            headers={"Content-Type": "text/calendar"},
        )
    assert put.status_code in (200, 201)
    deps = service.runtime.deps
    counts = calendar_sync.sweep(deps, force=True)
    assert counts["calendar_reads"] == 1
    location = service.locations.get("glow-downtown")
    assert location is not None
    botox = location.service_named("Botox")
    assert botox is not None
    three = datetime(2026, 11, 26, 15, tzinfo=LA)
    with service.db() as session:
        slots = booking.offer(
            session,
            location,
            botox,
            service.clock(),
            windows=[Window(three, three + timedelta(hours=1))],
            limit=3,
        )
    starts = [s.start.astimezone(LA) for s in slots]
    assert starts
    assert all(not (three - timedelta(minutes=30) < s < three + timedelta(hours=1)) for s in starts)


def test_unreachable_calendar_never_loses_the_booking_and_staff_see_and_retry(
    make_service: Callable[..., Service],
    radicale: RadicaleCalendar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_CALDAV_PW", "wrong password")
    service = make_service(edit=with_calendar(radicale.url, radicale.username))
    caller = caller_number(602)
    book_by_text(service, caller)
    appointment = service.scalar(select(Appointment))
    assert appointment.status == "booked"  # the booking stands whatever the calendar says
    failed = wait_for(
        lambda: (row := sync_row(service)) and row.status == "failed" and row,
        what="failed sync",
    )
    assert "refused" in (failed.last_error or "")
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    page = client.get("/staff/calendar")
    assert page.status_code == 200
    assert f'id="sync-{failed.id}"' in page.text
    assert "refused" in page.text
    # The clinic fixes the password; staff press Retry.
    monkeypatch.setenv("TEST_CALDAV_PW", radicale.password)
    csrf = page_csrf(client, "/staff/calendar")
    retried = client.post(f"/staff/calendar/syncs/{failed.id}/retry", data={"csrf_token": csrf})
    assert retried.status_code == 303
    wait_for(lambda: sync_row(service).status == "done", what="sync after retry")
    assert f'id="sync-{failed.id}"' not in client.get("/staff/calendar").text
    # Nothing left to retry, an unknown write, another location's staff: refused, no change.
    for sync_id in (failed.id, 999999):
        again = client.post(f"/staff/calendar/syncs/{sync_id}/retry", data={"csrf_token": csrf})
        assert again.status_code == 404
        assert "Nothing to retry" in again.text
    add_user(service, "westside@glow.example", role="staff", locations=["glow-westside"])
    other = sign_in(service, "westside@glow.example")
    other_csrf = page_csrf(other, "/staff/calendar")
    refused = other.post(
        f"/staff/calendar/syncs/{failed.id}/retry", data={"csrf_token": other_csrf}
    )
    assert refused.status_code == 404
    no_csrf = client.post(f"/staff/calendar/syncs/{failed.id}/retry", data={})
    assert no_csrf.status_code == 403
    assert sync_row(service).attempts == 1  # the one successful retry only


def test_calendar_down_is_retried_with_backoff(
    make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_CALDAV_PW", "x")
    closed = f"http://127.0.0.1:{free_port()}/anna/cal/"
    service = make_service(edit=with_calendar(closed, "anna"))
    book_by_text(service, caller_number(603))
    row = wait_for(
        lambda: (r := sync_row(service)) and r.attempts >= 1 and r,
        what="first attempt",
    )
    assert row.status == "pending"
    assert row.last_error
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > service.clock()


def test_ics_feed_lists_bookings_and_refuses_a_wrong_token(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    book_by_text(service, caller_number(604))
    deps = service.runtime.deps
    from ringback.booking.feeds import feed_url

    url = feed_url(deps, "glow-downtown", "anna")
    feed = service.http.get(url.replace(service.public_url, service.url))
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VEVENT" in feed.text
    assert "SUMMARY:Patient - Botox" in feed.text
    bea = service.http.get(
        feed_url(deps, "glow-downtown", "bea").replace(service.public_url, service.url)
    )
    assert "BEGIN:VEVENT" not in bea.text
    forged = url.rsplit("=", 1)[0] + "=AAAAAAAAAAAAAAAAAAAAAAAA"
    assert service.http.get(forged.replace(service.public_url, service.url)).status_code == 404
    other = url.replace("/anna.ics", "/bea.ics").replace(service.public_url, service.url)
    assert service.http.get(other).status_code == 404  # anna's token does not open bea's feed
