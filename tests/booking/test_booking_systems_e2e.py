"""Booking into the clinic's own system, end to end: signed Twilio webhooks in, offers read
from the fake Google Calendar / fake Square, the booking written there exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from ringback.booking import credentials, systems
from ringback.db import transaction
from ringback.fakes.google_calendar import (
    EVENTS_SCOPE,
    FREEBUSY_SCOPE,
    FakeGoogleCalendar,
    FakeGoogleCalendarServer,
)
from ringback.fakes.square import SELLER_SCOPES, FakeSquare, FakeSquareServer
from ringback.integrations.google_calendar import GoogleOAuth
from ringback.models import (
    Appointment,
    BookingSystemState,
    CalendarSync,
    Conversation,
    Note,
    Patient,
)
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.staff.conftest import add_user, sign_in
from tests.support.api import make_token
from tests.support.booking import offered_times, scheduling
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

LA = ZoneInfo("America/Los_Angeles")
ANNA = "anna@glow.example"
BEA = "bea@glow.example"
ANNA_BOTOX = {"id": "anna", "name": "Anna", "services": ["Botox", "Filler"]}
THURSDAY_3PM = datetime(2026, 11, 26, 15, tzinfo=LA).astimezone(UTC)


class Clock:
    """The service's clock, for fakes started before the service is."""

    def __init__(self) -> None:
        self.source: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.source()


@dataclass
class Google:
    server: FakeGoogleCalendarServer
    clock: Clock

    @property
    def state(self) -> FakeGoogleCalendar:
        return self.server.state

    def ours(self, calendar: str = ANNA) -> list[dict[str, Any]]:
        return [e for e in self.state.events(calendar) if e.get("extendedProperties")]


@dataclass
class Square:
    server: FakeSquareServer
    clock: Clock
    anna: str
    bea: str
    botox: str

    @property
    def state(self) -> FakeSquare:
        return self.server.state

    def live(self) -> list[dict[str, Any]]:
        return [b for b in self.state.bookings() if not str(b["status"]).startswith("CANCELLED")]


@pytest.fixture
def google() -> Iterator[Google]:
    clock = Clock()
    state = FakeGoogleCalendar(calendar_ids=(ANNA, BEA), clock=clock)
    with FakeGoogleCalendarServer(state) as server:
        yield Google(server, clock)
        assert state.violations == []


@pytest.fixture
def square(monkeypatch: pytest.MonkeyPatch) -> Iterator[Square]:
    clock = Clock()
    state = FakeSquare(scopes=SELLER_SCOPES, clock=clock)
    anna = state.add_team_member("Anna", opens=datetime.min.time().replace(hour=9))
    bea = state.add_team_member("Bea")
    botox = state.add_service("Botox", 30, (anna,))
    filler = state.add_service("Filler", 60, (anna, bea))
    hydra = state.add_service("HydraFacial", 60, (bea,))
    monkeypatch.setenv("SQUARE_TEST_TOKEN", state.access_token)
    with FakeSquareServer(state) as server:
        fixture = Square(server, clock, anna, bea, botox.variation_id)
        fixture.filler = filler.variation_id  # type: ignore[attr-defined]
        fixture.hydra = hydra.variation_id  # type: ignore[attr-defined]
        yield fixture
        assert state.violations == []


def google_spa(make_service: Callable[..., Service], google: Google, **options: Any) -> Service:
    base = scheduling(options.pop("providers", None))

    def edit(config: dict[str, Any]) -> None:
        base(config)
        glow = config["locations"][0]
        glow["booking_system"] = "google_calendar"
        mapping = {"anna": ANNA, "bea": BEA}
        glow["google_calendar"] = {
            "calendars": {p["id"]: mapping[p["id"]] for p in glow["providers"]}
        }

    state = google.state
    service = make_service(
        edit=edit,
        settings_overrides={
            "GOOGLE_CALENDAR_API_BASE_URL": google.server.api_base,
            "GOOGLE_OAUTH_TOKEN_URL": google.server.token_url,
            "GOOGLE_OAUTH_CLIENT_ID": state.client_id,
            "GOOGLE_OAUTH_CLIENT_SECRET": state.client_secret,
        },
        **options,
    )
    google.clock.source = service.clock
    # What `ringback calendars connect google` does: the consent's code for tokens, sealed.
    oauth = GoogleOAuth(
        state.client_id,
        state.client_secret,
        "http://127.0.0.1/oauth",
        token_url=google.server.token_url,
    )
    tokens = oauth.exchange_code(
        state.authorize("http://127.0.0.1/oauth", (EVENTS_SCOPE, FREEBUSY_SCOPE))
    )
    oauth.close()
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        credentials.save(
            session,
            deps.link_secret,
            "glow-downtown",
            "google_calendar",
            {"refresh_token": tokens.refresh_token},
            deps.clock(),
        )
    systems.reload_credentials(deps)  # what the sweep does every few seconds
    return service


def square_spa(make_service: Callable[..., Service], square: Square, **options: Any) -> Service:
    base = scheduling(options.pop("providers", None))

    def edit(config: dict[str, Any]) -> None:
        base(config)
        glow = config["locations"][0]
        glow["booking_system"] = "square"
        glow["square"] = {
            "location_id": square.state.location_id,
            "access_token_env": "SQUARE_TEST_TOKEN",
            "team_members": {
                p["id"]: {"anna": square.anna, "bea": square.bea}[p["id"]]
                for p in glow["providers"]
            },
            "services": {
                "Botox": square.botox,
                "Filler": square.filler,  # type: ignore[attr-defined]
                "HydraFacial": square.hydra,  # type: ignore[attr-defined]
            },
        }

    service = make_service(
        edit=edit, settings_overrides={"SQUARE_API_BASE_URL": square.server.url}, **options
    )
    square.clock.source = service.clock
    return service


def book_by_text(service: Service, caller: str, wish: str, choice: str = "2") -> list[str]:
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, wish)
    times = offered_times(next_text(service, caller, 2))
    text_in(service, caller, choice)
    return times


# --- Google Calendar -------------------------------------------------------------------------


def test_google_offers_avoid_busy_time_and_the_booking_is_one_event(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google)
    # Anna's own calendar says she is out Thursday 1-3pm (nothing in Ringback says so).
    out = datetime(2026, 11, 26, 13, tzinfo=LA)
    google.state.add_event(out, out + timedelta(hours=2), calendar_id=ANNA, summary="Dentist")
    caller = caller_number(701)
    times = book_by_text(service, caller, "botox thursday afternoon please, first time")
    assert len(times) == 3
    assert not any(t.startswith(("Thu Nov 26 at 1:", "Thu Nov 26 at 2:")) for t in times), times
    confirmation = next_text(service, caller, 3)
    assert "You're booked!" in confirmation
    appointment = wait_for(
        lambda: service.scalar(select(Appointment).where(Appointment.status == "booked")),
        what="appointment",
    )
    (event,) = google.ours(ANNA)
    assert (
        event["start"]["dateTime"].startswith(
            appointment.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        )
        or datetime.fromisoformat(event["start"]["dateTime"]) == appointment.starts_at
    )
    assert event["summary"] == "Patient - Botox"
    row = service.scalar(select(CalendarSync).where(CalendarSync.calendar_key == "booking-system"))
    assert row.status == "done"
    assert row.external_ref.startswith(f"{ANNA}/")
    settle()
    assert len(google.ours(ANNA)) == 1


# --- Square ----------------------------------------------------------------------------------


def test_square_offers_are_squares_slots_and_the_booking_is_one_square_booking(
    make_service: Callable[..., Service], square: Square
) -> None:
    service = square_spa(make_service, square)
    # The front desk booked Anna in Square at 3pm Thursday.
    botox = square.state.seller.services[square.botox]
    square.state.book_directly(square.anna, botox, THURSDAY_3PM)
    caller = caller_number(711)
    times = book_by_text(service, caller, "botox thursday afternoon please, first time")
    assert len(times) == 3
    assert not any("3:00pm" in t for t in times), times
    # Square offers on its own grid (every 30 minutes here), never Ringback's 15.
    assert all(":15" not in t and ":45" not in t for t in times), times
    assert "You're booked!" in next_text(service, caller, 3)
    appointment = wait_for(
        lambda: service.scalar(
            select(Appointment).where(Appointment.status == "booked", Appointment.source == "bot")
        ),
        what="appointment",
    )
    ours = [b for b in square.live() if "ringback:" in str(b.get("seller_note"))]
    assert len(ours) == 1
    assert ours[0]["start_at"].startswith(
        appointment.starts_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    )
    assert ours[0]["appointment_segments"][0]["team_member_id"] == square.anna
    settle()
    assert len([b for b in square.live() if "ringback:" in str(b.get("seller_note"))]) == 1


def funnel_now(service: Service) -> dict[str, Any]:
    token = make_token(service, "cfo@glow.example")
    response = service.http.get(
        service.url + "/api/v1/funnel",
        params={"since": "2026-11-24", "until": "2026-11-24"},
        headers=token.headers,
    )
    assert response.status_code == 200, response.text
    total: dict[str, Any] = response.json()["total"]
    return total


def staff_notes(service: Service, conversation_id: int) -> list[str]:
    return [
        n.body for n in service.rows(select(Note).where(Note.conversation_id == conversation_id))
    ]


def test_google_twenty_patients_at_one_slot_make_one_booking_and_one_event(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google, providers=[{"id": "anna", "name": "Anna"}])
    callers = [caller_number(720 + n) for n in range(20)]
    for caller in callers:
        miss(service, caller)
    for caller in callers:
        next_text(service, caller, 1)
    for caller in callers:
        text_in(service, caller, "botox thursday at 3pm, first visit")
    choices: dict[str, str] = {}
    for caller in callers:
        times = offered_times(next_text(service, caller, 2))
        choices[caller] = str(next(n for n, t in enumerate(times, 1) if "3:00pm" in t))
    barrier = threading.Barrier(len(callers))

    def choose(caller: str) -> None:
        barrier.wait()
        text_in(service, caller, choices[caller])

    threads = [threading.Thread(target=choose, args=(c,)) for c in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies = {c: next_text(service, c, 3) for c in callers}
    winners = [c for c, text in replies.items() if "You're booked!" in text]
    losers = [c for c, text in replies.items() if "that time was just taken" in text]
    assert (len(winners), len(losers)) == (1, 19), replies
    assert len(service.rows(select(Appointment).where(Appointment.status == "booked"))) == 1
    (event,) = google.ours(ANNA)
    assert datetime.fromisoformat(event["start"]["dateTime"]) == THURSDAY_3PM


def test_google_slot_taken_in_google_after_the_offer_is_just_taken_with_new_times(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google, providers=[{"id": "anna", "name": "Anna"}])
    caller = caller_number(741)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday at 3pm, first visit")
    times = offered_times(next_text(service, caller, 2))
    choice = str(next(n for n, t in enumerate(times, 1) if "3:00pm" in t))
    # Meanwhile the front desk puts someone in Anna's calendar at 3pm.
    google.state.add_event(THURSDAY_3PM, THURSDAY_3PM + timedelta(hours=1), calendar_id=ANNA)
    text_in(service, caller, choice)
    reply = next_text(service, caller, 3)
    assert "that time was just taken" in reply, reply
    assert "3:00pm" not in reply.split("We can do")[1]
    assert google.ours(ANNA) == []
    assert service.rows(select(Appointment).where(Appointment.status == "booked")) == []


def test_google_a_move_and_a_cancel_in_google_reach_the_thread_and_the_funnel(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google, providers=[{"id": "anna", "name": "Anna"}])
    deps = service.runtime.deps
    moves, cancels = caller_number(751), caller_number(752)
    book_by_text(service, moves, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(service, moves, 3)
    book_by_text(service, cancels, "botox friday at 11am, first visit", "1")
    assert "You're booked!" in next_text(service, cancels, 3)
    # The sweep opens a push channel on Anna's calendar and takes the first full read.
    counts = run_sweep(deps)
    assert counts.get("system_channels") == 1, counts
    (channel,) = google.state.channels
    assert channel.address == f"{service.public_url}/booking-systems/google/glow-downtown"
    by_caller = {
        caller: service.scalar(
            select(Appointment)
            .join(Conversation, Conversation.id == Appointment.conversation_id)
            .join(Patient, Patient.id == Conversation.patient_id)
            .where(Patient.phone == caller)
        )
        for caller in (moves, cancels)
    }
    events = {e["id"]: e for e in google.ours(ANNA)}
    assert len(events) == 2
    # The front desk drags one booking to 4:30pm and deletes the other, in Google.
    token = google.state.issue_access_token()
    api = httpx.Client(
        base_url=google.server.api_base, headers={"Authorization": f"Bearer {token}"}
    )
    rows = {
        r.appointment_id: r.external_ref
        for r in service.rows(
            select(CalendarSync).where(CalendarSync.calendar_key == "booking-system")
        )
    }
    moved_id = rows[by_caller[moves].id].rsplit("/", 1)[1]
    cancelled_id = rows[by_caller[cancels].id].rsplit("/", 1)[1]
    half_past_four = THURSDAY_3PM + timedelta(minutes=90)
    patched = api.patch(
        f"/calendars/{ANNA}/events/{moved_id}",
        json={
            "start": {"dateTime": half_past_four.isoformat()},
            "end": {"dateTime": (half_past_four + timedelta(minutes=30)).isoformat()},
        },
    )
    assert patched.status_code == 200, patched.text
    assert api.delete(f"/calendars/{ANNA}/events/{cancelled_id}").status_code == 204
    api.close()
    # Google pushes "something changed" to Ringback; the next sweep reads what.
    google.state.wait_for_pushes(2)
    wait_for(
        lambda: service.scalar(select(BookingSystemState.read_at)) is None,
        what="the push marking changes due",
    )
    counts = run_sweep(deps)
    assert counts.get("system_changes") == 2, counts
    moved = service.scalar(
        select(Appointment).where(Appointment.rescheduled_from_id == by_caller[moves].id)
    )
    assert moved is not None
    assert moved.status == "booked"
    assert moved.starts_at == half_past_four
    cancelled = service.scalar(select(Appointment).where(Appointment.id == by_caller[cancels].id))
    assert (cancelled.status, cancelled.cancelled_by) == ("cancelled", "outside")
    assert staff_notes(service, moved.conversation_id) == [
        "Google Calendar: this booking was moved there to Thu Nov 26 at 4:30pm."
    ]
    assert staff_notes(service, cancelled.conversation_id) == [
        "Google Calendar: this booking was cancelled there."
    ]
    f = funnel_now(service)
    assert (f["booked"], f["cancelled"], f["still_booked"], f["rebooked"]) == (2, 1, 1, 1)
    # Read again: nothing changes twice.
    assert run_sweep(deps).get("system_changes") is None
    # A push with another token is refused.
    refused = service.http.post(
        service.url + "/booking-systems/google/glow-downtown",
        headers={
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-State": "exists",
            "X-Goog-Channel-Token": "guess",
        },
    )
    assert refused.status_code == 403


# --- Square: outages, cancels, webhooks --------------------------------------------------------


def test_square_500_keeps_the_booking_shows_it_to_staff_and_the_sweep_books_it_once(
    make_service: Callable[..., Service], square: Square
) -> None:
    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    square.state.fail_next(2, status=500, operation="CreateBooking")
    caller = caller_number(761)
    book_by_text(service, caller, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(service, caller, 3)

    def row() -> CalendarSync:
        found: CalendarSync = service.scalar(
            select(CalendarSync).where(CalendarSync.calendar_key == "booking-system")
        )
        return found

    wait_for(lambda: row() is not None and row().attempts == 1, what="the first attempt")
    assert row().status == "pending"
    assert row().last_error
    assert square.live() == []
    add_user(service, "desk@glow.example")
    page = sign_in(service, "desk@glow.example").get("/staff/calendar")
    assert "Square" in page.text
    assert "Botox" in page.text
    for attempt in (2, 3):  # one more 500, then Square takes it
        service.clock.advance(timedelta(minutes=61))
        run_sweep(service.runtime.deps)
        wait_for(lambda a=attempt: row().attempts >= a, what=f"attempt {attempt}")
    wait_for(lambda: len(square.live()) == 1, what="the booking in Square")
    wait_for(lambda: row().status == "done", what="the row done")
    assert row().external_ref == square.live()[0]["id"]
    settle()
    assert len(square.live()) == 1


def test_square_timeout_keeps_the_booking_and_the_retry_finds_it_not_a_second(
    make_service: Callable[..., Service], square: Square
) -> None:
    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    # Square books it but the answer comes after Ringback stopped waiting (2 s).
    square.state.hold_next(1, seconds=3, operation="CreateBooking")
    caller = caller_number(762)
    book_by_text(service, caller, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(
        service,
        caller,
        3,
    )
    row = wait_for(
        lambda: service.scalar(
            select(CalendarSync).where(
                CalendarSync.calendar_key == "booking-system", CalendarSync.attempts > 0
            )
        ),
        what="the booking-system row",
    )
    assert row.status == "pending"
    service.clock.advance(timedelta(minutes=2))
    run_sweep(service.runtime.deps)
    wait_for(
        lambda: service.scalar(
            select(CalendarSync).where(CalendarSync.id == row.id, CalendarSync.status == "done")
        ),
        what="the retried write",
    )
    assert len(square.live()) == 1


def test_square_cancel_by_text_cancels_in_square_and_a_cancel_in_square_reaches_the_thread(
    make_service: Callable[..., Service], square: Square, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    key = square.state.subscribe(f"{service.public_url}/booking-systems/square/glow-downtown")
    monkeypatch.setenv("SQUARE_WEBHOOK_SIGNATURE_KEY", key)
    by_text, in_square = caller_number(771), caller_number(772)
    book_by_text(service, by_text, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(service, by_text, 3)
    book_by_text(service, in_square, "botox friday at 11am, first visit", "1")
    assert "You're booked!" in next_text(service, in_square, 3)
    wait_for(lambda: len(square.live()) == 2, what="two bookings in Square")
    text_in(service, by_text, "X")
    next_text(service, by_text, 4)
    text_in(service, by_text, "X")
    assert "is cancelled" in next_text(service, by_text, 5)
    wait_for(lambda: len(square.live()) == 1, what="the cancel in Square")
    # The front desk cancels the other in Square; Square's signed webhook tells Ringback.
    (left,) = square.live()
    api = httpx.Client(
        base_url=square.server.url,
        headers={
            "Authorization": f"Bearer {square.state.access_token}",
            "Square-Version": "2025-08-20",
        },
    )
    cancelled = api.post(
        f"/v2/bookings/{left['id']}/cancel", json={"booking_version": left["version"]}
    )
    api.close()
    assert cancelled.status_code == 200, cancelled.text
    appointment = wait_for(
        lambda: service.scalar(select(Appointment).where(Appointment.cancelled_by == "outside")),
        what="the cancel from Square",
    )
    assert staff_notes(service, appointment.conversation_id) == [
        "Square: this booking was cancelled there."
    ]
    f = funnel_now(service)
    assert (f["booked"], f["cancelled"], f["still_booked"]) == (2, 2, 0)
    # A webhook with a bad signature is refused and changes nothing.
    forged = service.http.post(
        service.url + "/booking-systems/square/glow-downtown",
        content=b'{"type": "booking.updated"}',
        headers={"x-square-hmacsha256-signature": "AAAA", "content-type": "application/json"},
    )
    assert forged.status_code == 403


def test_square_booking_page_shows_squares_times_and_books_there_once(
    make_service: Callable[..., Service], square: Square
) -> None:
    from tests.booking.test_booking_page import forms, get, link_for, post, slot_forms

    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    botox = square.state.seller.services[square.botox]
    square.state.book_directly(square.anna, botox, THURSDAY_3PM)
    link = link_for(service, caller_number(781))
    page = get(service, link)
    assert page.status_code == 200, page.text
    starts = [datetime.fromisoformat(f.fields["start"]) for f in slot_forms(page)]
    assert starts
    assert THURSDAY_3PM not in starts
    assert all(s.minute in (0, 30) for s in starts), starts
    chosen = slot_forms(page)[0]
    held = post(service, chosen.action, chosen.fields)
    assert held.status_code == 303, held.text
    assert square.live() == [square.state.bookings()[0]]  # a hold is not written to Square
    step = get(service, held.headers["location"])
    (confirm,) = [f for f in forms(step) if f.method == "post"]
    done = post(service, confirm.action, confirm.fields)
    assert done.status_code == 303, done.text
    ours = [b for b in square.live() if "ringback:" in str(b.get("seller_note"))]
    assert len(ours) == 1
    assert datetime.fromisoformat(ours[0]["start_at"].replace("Z", "+00:00")) == starts[0]


def test_an_owner_connects_google_from_the_settings_page_and_bookings_go_there(
    make_service: Callable[..., Service], google: Google
) -> None:
    state = google.state
    service = make_service(
        edit=lambda config: (
            scheduling([{"id": "anna", "name": "Anna"}])(config),
            config["locations"][0].update(
                booking_system="google_calendar", google_calendar={"default_calendar": ANNA}
            ),
        ),
        settings_overrides={
            "GOOGLE_CALENDAR_API_BASE_URL": google.server.api_base,
            "GOOGLE_OAUTH_TOKEN_URL": google.server.token_url,
            "GOOGLE_OAUTH_CLIENT_ID": state.client_id,
            "GOOGLE_OAUTH_CLIENT_SECRET": state.client_secret,
        },
    )
    google.clock.source = service.clock
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    assert (
        sign_in(service, "desk@glow.example").get("/staff/settings/booking-systems").status_code
        == 403
    )
    owner = sign_in(service, "owner@glow.example")
    page = owner.get("/staff/settings/booking-systems")
    assert page.status_code == 200
    assert "booking system google_calendar: busy-only" in page.text
    assert "Connect Google Calendar" in page.text
    start = owner.get("/staff/settings/booking-systems/google/connect?location=glow-downtown")
    assert start.status_code == 303
    consent = parse_qs(urlsplit(start.headers["location"]).query)
    redirect = consent["redirect_uri"][0]
    assert redirect == f"{service.public_url}/staff/settings/booking-systems/google/callback"
    # Google sends the browser back; a forged state (another browser's) is refused first.
    code = state.authorize(redirect, (EVENTS_SCOPE, FREEBUSY_SCOPE))
    forged = owner.get(
        "/staff/settings/booking-systems/google/callback", params={"state": "x", "code": code}
    )
    assert forged.status_code == 303
    assert "does+not+match" in forged.headers["location"]
    back = owner.get(
        "/staff/settings/booking-systems/google/callback",
        params={"state": consent["state"][0], "code": code},
    )
    assert back.status_code == 303, back.text
    assert back.headers["location"].endswith("?connected=glow-downtown")
    assert "Google Calendar connected" in owner.get(back.headers["location"]).text
    caller = caller_number(791)
    book_by_text(service, caller, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(service, caller, 3)
    wait_for(lambda: len(google.ours(ANNA)) == 1, what="the event in Google")


def test_square_a_booking_moved_in_square_is_rescheduled_here_by_its_webhook(
    make_service: Callable[..., Service], square: Square, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    key = square.state.subscribe(f"{service.public_url}/booking-systems/square/glow-downtown")
    monkeypatch.setenv("SQUARE_WEBHOOK_SIGNATURE_KEY", key)
    caller = caller_number(782)
    book_by_text(service, caller, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(service, caller, 3)
    wait_for(lambda: len(square.live()) == 1, what="the booking in Square")
    (ours,) = square.live()
    four = THURSDAY_3PM + timedelta(hours=1)
    api = httpx.Client(
        base_url=square.server.url,
        headers={
            "Authorization": f"Bearer {square.state.access_token}",
            "Square-Version": "2025-08-20",
        },
    )
    moved = api.put(
        f"/v2/bookings/{ours['id']}",
        json={"booking": {"version": ours["version"], "start_at": four.isoformat()}},
    )
    api.close()
    assert moved.status_code == 200, moved.text
    new = wait_for(
        lambda: service.scalar(
            select(Appointment).where(Appointment.rescheduled_from_id.is_not(None))
        ),
        what="the move from Square",
    )
    assert new.starts_at == four
    assert new.status == "booked"
    old = service.scalar(select(Appointment).where(Appointment.id == new.rescheduled_from_id))
    assert (old.status, old.cancelled_by) == ("cancelled", "outside")
    assert staff_notes(service, new.conversation_id) == [
        "Square: this booking was moved there to Thu Nov 26 at 4:00pm."
    ]
    f = funnel_now(service)
    assert (f["booked"], f["cancelled"], f["still_booked"], f["rebooked"]) == (1, 0, 1, 1)
    # The move was not echoed back: Square still holds the one booking, at 4pm.
    settle()
    (still,) = square.live()
    assert still["id"] == ours["id"]


def test_google_push_channels_are_renewed_before_they_expire(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google)
    deps = service.runtime.deps
    assert run_sweep(deps).get("system_channels") == 2  # Anna's and Bea's calendars
    first = {c.calendar_id: c.id for c in google.state.channels}
    assert set(first) == {ANNA, BEA}
    assert run_sweep(deps).get("system_channels") is None  # still fresh
    service.clock.advance(timedelta(days=6, hours=13))  # within 12 h of a week's end
    assert run_sweep(deps).get("system_channels") == 2
    second = {c.calendar_id: c.id for c in google.state.channels}
    assert set(second) == {ANNA, BEA}
    assert not set(second.values()) & set(first.values())  # the old ones were stopped


def test_google_unreadable_at_offer_time_the_busy_time_read_last_stands_in(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google, providers=[{"id": "anna", "name": "Anna"}])
    out = datetime(2026, 11, 26, 13, tzinfo=LA)
    google.state.add_event(out, out + timedelta(hours=3), calendar_id=ANNA, summary="Dentist")
    assert run_sweep(service.runtime.deps).get("calendar_reads") == 1  # busy time kept
    google.state.fail_next(1, status=503, operation="calendar.freebusy.query")
    caller = caller_number(795)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday afternoon please, first time")
    times = offered_times(next_text(service, caller, 2))
    assert times
    assert not any(
        t.startswith(("Thu Nov 26 at 1:", "Thu Nov 26 at 2:", "Thu Nov 26 at 3:")) for t in times
    ), times
    failed = [r for r in google.state.requests if r.status_code == 503]
    assert [r.operation for r in failed] == ["calendar.freebusy.query"]


def choose_together(service: Service, callers: list[str], choices: dict[str, str]) -> None:
    """Every caller sends their choice at the same moment."""
    barrier = threading.Barrier(len(callers))

    def choose(caller: str) -> None:
        barrier.wait()
        text_in(service, caller, choices[caller])

    threads = [threading.Thread(target=choose, args=(c,)) for c in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_square_twenty_patients_at_one_slot_make_one_booking_in_square(
    make_service: Callable[..., Service], square: Square
) -> None:
    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    callers = [caller_number(800 + n) for n in range(20)]
    for caller in callers:
        miss(service, caller)
    for caller in callers:
        next_text(service, caller, 1)
    for caller in callers:
        text_in(service, caller, "botox thursday at 3pm, first visit")
    choices: dict[str, str] = {}
    for caller in callers:
        times = offered_times(next_text(service, caller, 2))
        choices[caller] = str(next(n for n, t in enumerate(times, 1) if "3:00pm" in t))
    choose_together(service, callers, choices)
    replies = {c: next_text(service, c, 3) for c in callers}
    winners = [c for c, text in replies.items() if "You're booked!" in text]
    losers = [c for c, text in replies.items() if "that time was just taken" in text]
    assert (len(winners), len(losers)) == (1, 19), replies
    assert len(service.rows(select(Appointment).where(Appointment.status == "booked"))) == 1
    settle()
    (booking,) = square.live()
    assert datetime.fromisoformat(booking["start_at"].replace("Z", "+00:00")) == THURSDAY_3PM


def test_square_slot_taken_in_square_after_the_offer_is_just_taken_with_new_times(
    make_service: Callable[..., Service], square: Square
) -> None:
    service = square_spa(make_service, square, providers=[ANNA_BOTOX])
    caller = caller_number(821)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday at 3pm, first visit")
    times = offered_times(next_text(service, caller, 2))
    choice = str(next(n for n, t in enumerate(times, 1) if "3:00pm" in t))
    # Meanwhile the front desk books Anna at 3pm in Square.
    square.state.book_directly(
        square.anna, square.state.seller.services[square.botox], THURSDAY_3PM
    )
    text_in(service, caller, choice)
    reply = next_text(service, caller, 3)
    assert "that time was just taken" in reply, reply
    assert "3:00pm" not in reply.split("We can do")[1]
    assert [b for b in square.live() if "ringback:" in str(b.get("seller_note"))] == []
    assert service.rows(select(Appointment).where(Appointment.status == "booked")) == []


def test_google_500_and_a_timeout_keep_the_booking_and_it_is_written_once(
    make_service: Callable[..., Service], google: Google
) -> None:
    service = google_spa(make_service, google, providers=[{"id": "anna", "name": "Anna"}])

    def rows() -> list[CalendarSync]:
        return service.rows(
            select(CalendarSync).where(CalendarSync.calendar_key == "booking-system")
        )

    # A 500 on the insert: the patient is booked here, the write waits for the sweep.
    google.state.fail_next(2, status=500, operation="calendar.events.insert")
    first = caller_number(831)
    book_by_text(service, first, "botox thursday at 3pm, first visit", "1")
    assert "You're booked!" in next_text(service, first, 3)
    wait_for(lambda: [r.attempts for r in rows()] == [1], what="the first attempt")
    assert rows()[0].status == "pending"
    assert google.ours(ANNA) == []
    # A timeout: Google made the event but Ringback stopped waiting (2 s).
    google.state.hold_next(1, seconds=3, operation="calendar.events.insert")
    second = caller_number(832)
    book_by_text(service, second, "botox friday at 11am, first visit", "1")
    assert "You're booked!" in next_text(service, second, 3)
    wait_for(lambda: len(rows()) == 2 and min(r.attempts for r in rows()) >= 1, what="both")
    for _ in range(3):
        service.clock.advance(timedelta(minutes=61))
        run_sweep(service.runtime.deps)
        settle()
        if all(r.status == "done" for r in rows()):
            break
    wait_for(lambda: all(r.status == "done" for r in rows()), what="both writes done")
    settle()
    assert len(google.ours(ANNA)) == 2  # one event each, none twice
    assert {r.external_ref for r in rows()} == {f"{ANNA}/{e['id']}" for e in google.ours(ANNA)}
