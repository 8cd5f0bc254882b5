"""Time to offer slots when a location books into Google Calendar or Square (read live).

Run from the repository root::

    .venv/bin/python bench/booking_system_offers.py [--runs 200]

It starts the fake Google Calendar and the fake Square on loopback (real HTTP, every
request checked against the vendors' published contracts), fills two providers' calendars
(Google: about 120 busy events over a month; Square: about 120 bookings), and times
``ringback.booking.service.offer`` for a location on each system: one live read (Google's
``freebusy.query`` over the 31-day horizon; Square's availability search, one call per 32
days) plus Ringback's slot choice. The figure is Ringback's own cost plus a loopback round
trip; a real vendor adds its network latency (typically 100-400 ms) on top. Prints p50 and
p99 in milliseconds; exits 0 (a measurement).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ringback.booking import credentials, systems
from ringback.booking import service as booking
from ringback.config import Location, Settings
from ringback.db import make_engine, make_sessionmaker, transaction
from ringback.deps import Deps
from ringback.fakes.google_calendar import (
    EVENTS_SCOPE,
    FREEBUSY_SCOPE,
    FakeGoogleCalendar,
    FakeGoogleCalendarServer,
)
from ringback.fakes.square import SELLER_SCOPES, FakeSquare, FakeSquareServer
from ringback.integrations.google_calendar import GoogleOAuth
from ringback.schema import upgrade

ZONE = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=ZONE).astimezone(UTC)
SECRET = b"bench-secret"


def clock() -> datetime:
    return NOW


def spa(system: dict[str, Any]) -> Location:
    return Location.model_validate(
        {
            "id": "bench-spa",
            "name": "Bench Spa",
            "phone_number": "+13105550100",
            "timezone": "America/Los_Angeles",
            "services": [{"name": "Botox", "minutes": 30, "price": 480}],
            "providers": [{"id": "anna", "name": "Anna"}, {"id": "bea", "name": "Bea"}],
            "booking": {"lead_minutes": 60},
            **system,
        }
    )


def busy_starts(rng: random.Random) -> list[datetime]:
    starts = []
    for day in range(31):
        base = (NOW + timedelta(days=day)).astimezone(ZONE).replace(hour=9, minute=0)
        for hour in rng.sample(range(9), 4):
            starts.append(base + timedelta(hours=hour))
    return starts


READS: list[float] = []
_read_outside = systems.read_outside


def _timed_read(*args: Any, **kwargs: Any) -> Any:
    began = time.perf_counter()
    try:
        return _read_outside(*args, **kwargs)
    finally:
        READS.append((time.perf_counter() - began) * 1000)


def timed(deps: Deps, location: Location, runs: int) -> tuple[list[float], list[float]]:
    """(whole offers, the live reads inside them) in milliseconds."""
    service = location.service_named("Botox")
    assert service is not None
    figures = []
    READS.clear()
    systems.read_outside = _timed_read  # measure the read apart from Ringback's own work
    try:
        with deps.sessions() as session:
            for _ in range(runs):
                began = time.perf_counter()
                slots = booking.offer(session, location, service, NOW, deps=deps)
                figures.append((time.perf_counter() - began) * 1000)
                assert slots, "no offers"
    finally:
        systems.read_outside = _read_outside
    return figures, list(READS)


def _p(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report(name: str, measured: tuple[list[float], list[float]]) -> None:
    offers, reads = measured
    own = sorted(o - r for o, r in zip(offers, reads, strict=True))
    offers, reads = sorted(offers), sorted(reads)
    print(
        f"[{name}] offer: p50 {statistics.median(offers):.1f} ms, p99 {_p(offers, 0.99):.1f} ms; "
        f"of which the live read from the fake: p50 {statistics.median(reads):.1f} ms; "
        f"Ringback's own part: p50 {statistics.median(own):.1f} ms, p99 {_p(own, 0.99):.1f} ms "
        f"({len(offers)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(16)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        upgrade(engine)
        sessions = make_sessionmaker(engine)

        google_state = FakeGoogleCalendar(calendar_ids=("anna@b", "bea@b"), clock=clock)
        for calendar in ("anna@b", "bea@b"):
            for start in busy_starts(rng)[:60]:
                google_state.add_event(start, start + timedelta(minutes=45), calendar_id=calendar)
        square_state = FakeSquare(scopes=SELLER_SCOPES, clock=clock)
        anna = square_state.add_team_member("Anna")
        bea = square_state.add_team_member("Bea")
        botox = square_state.add_service("Botox", 30, (anna, bea))
        for member in (anna, bea):
            for start in busy_starts(rng)[:60]:
                square_state.book_directly(member, botox, start)

        with (
            FakeGoogleCalendarServer(google_state) as google,
            FakeSquareServer(square_state) as square,
        ):
            settings = Settings(
                GOOGLE_OAUTH_CLIENT_ID=google_state.client_id,
                GOOGLE_OAUTH_CLIENT_SECRET=google_state.client_secret,
                GOOGLE_CALENDAR_API_BASE_URL=google.api_base,
                GOOGLE_OAUTH_TOKEN_URL=google.token_url,
                SQUARE_API_BASE_URL=square.url,
            )
            oauth = GoogleOAuth(
                google_state.client_id,
                google_state.client_secret,
                "http://127.0.0.1/",
                token_url=google.token_url,
            )
            tokens = oauth.exchange_code(
                google_state.authorize("http://127.0.0.1/", (EVENTS_SCOPE, FREEBUSY_SCOPE))
            )
            oauth.close()
            with transaction(sessions) as session:
                credentials.save(
                    session,
                    SECRET,
                    "bench-spa",
                    "google_calendar",
                    {"refresh_token": tokens.refresh_token},
                    NOW,
                )
                credentials.save(
                    session,
                    SECRET,
                    "bench-square",
                    "square",
                    {"access_token": square_state.access_token},
                    NOW,
                )
            opener = systems.OpenBookingSystems(settings, sessions, SECRET, clock)
            deps = Deps(
                locations=None,  # type: ignore[arg-type]
                sessions=sessions,
                sms=None,  # type: ignore[arg-type]
                lookup=None,
                jobs=None,  # type: ignore[arg-type]
                public_url="http://127.0.0.1",
                clock=clock,
                booking_systems=opener,
            )
            google_spa = spa(
                {
                    "booking_system": "google_calendar",
                    "google_calendar": {"calendars": {"anna": "anna@b", "bea": "bea@b"}},
                }
            )
            square_spa = spa(
                {
                    "id": "bench-square",
                    "booking_system": "square",
                    "square": {
                        "location_id": square_state.location_id,
                        "team_members": {"anna": anna, "bea": bea},
                        "services": {"Botox": botox.variation_id},
                    },
                }
            )
            report("google_calendar", timed(deps, google_spa, args.runs))
            report("square", timed(deps, square_spa, args.runs))
        engine.dispose()


if __name__ == "__main__":
    main()
