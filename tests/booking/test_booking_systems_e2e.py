"""Booking into the clinic's own system, end to end: signed Twilio webhooks in, offers read
from the fake Google Calendar / fake Square, the booking written there exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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
from ringback.models import Appointment, CalendarSync, Conversation
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.booking import offered_times, scheduling
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

LA = ZoneInfo("America/Los_Angeles")
ANNA = "anna@glow.example"
BEA = "bea@glow.example"
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
        glow["google_calendar"] = {"calendars": {"anna": ANNA, "bea": BEA}}

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
            "team_members": {"anna": square.anna, "bea": square.bea},
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
    from ringback.fakes.square import SquareService

    botox = next(
        s
        for s in square.state.seller.services.values()
        if isinstance(s, SquareService) and s.variation_id == square.botox
    )
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


def _unused(*_: object) -> None:  # keep imports used while the file grows
    _ = (threading, Conversation, run_sweep, texts_to)
