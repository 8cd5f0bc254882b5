"""The Google Calendar booking system against the fake Google over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ringback.fakes.google_calendar import (
    EVENTS_SCOPE,
    FREEBUSY_SCOPE,
    FakeGoogleCalendar,
    FakeGoogleCalendarServer,
)
from ringback.integrations.google_calendar import (
    GoogleCalendarBookingSystem,
    GoogleOAuth,
    ServiceAccountCredentials,
    StaticAccessToken,
    WatchChannel,
    channel_needs_renewal,
    event_id_for,
    parse_push_notification,
    push_token_matches,
)
from ringback.ports import (
    BookingConflict,
    BookingSystem,
    BookingSystemUnavailable,
    ExternalBookingRef,
)
from tests.support.booking_systems import booking, hmac_signer, running_receiver

CALENDAR = "clinic@example.com"
REDIRECT = "https://ringback.test/google/callback"
START = datetime(2030, 3, 5, 17, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FakeGoogleCalendarServer]:
    with FakeGoogleCalendarServer(FakeGoogleCalendar(calendar_ids=(CALENDAR,))) as running:
        yield running
        assert running.state.violations == []


@pytest.fixture
def state(server: FakeGoogleCalendarServer) -> FakeGoogleCalendar:
    return server.state


def connect(server: FakeGoogleCalendarServer, **options: float) -> GoogleCalendarBookingSystem:
    token = StaticAccessToken(server.state.issue_access_token())
    return GoogleCalendarBookingSystem(
        token,
        default_calendar=CALENDAR,
        api_base=server.api_base,
        timeout=options.get("timeout", 5.0),
    )


@pytest.fixture
def google(server: FakeGoogleCalendarServer) -> Iterator[GoogleCalendarBookingSystem]:
    system = connect(server)
    yield system
    system.close()


def live_events(state: FakeGoogleCalendar) -> list[dict[str, object]]:
    return state.events(CALENDAR)


def test_it_satisfies_the_port(google: GoogleCalendarBookingSystem) -> None:
    system: BookingSystem = google
    assert system.capabilities.offers_availability is False
    assert system.capabilities.incremental_sync is True
    with pytest.raises(NotImplementedError):
        system.availability(START, START + timedelta(hours=1), "botox", [CALENDAR])


def test_busy_reads_freebusy(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    state.add_event(START, START + timedelta(minutes=45))
    busy = google.busy(START - timedelta(hours=1), START + timedelta(hours=3), [CALENDAR])
    assert [(b.uid, b.start, b.end) for b in busy] == [
        (CALENDAR, START, START + timedelta(minutes=45))
    ]


def test_busy_on_an_unknown_calendar_is_not_retried(google: GoogleCalendarBookingSystem) -> None:
    with pytest.raises(BookingSystemUnavailable) as failure:
        google.busy(START, START + timedelta(hours=1), ["nobody@example.com"])
    assert failure.value.retry is False


def test_create_writes_one_event_with_our_id(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    ref = google.create(booking("appt-1", START))
    again = google.create(booking("appt-1", START))
    assert again.external_id == ref.external_id == f"{CALENDAR}/{event_id_for('appt-1')}"
    (event,) = live_events(state)
    assert event["extendedProperties"] == {"private": {"ringbackId": "appt-1"}}
    assert event["summary"] == "Maria - Botox consult"
    inserts = [r for r in state.requests if r.operation == "calendar.events.insert"]
    assert len(inserts) == 1
    assert inserts[0].query["sendUpdates"] == ("none",)


def test_a_create_whose_answer_was_lost_is_found_on_retry(
    server: FakeGoogleCalendarServer, state: FakeGoogleCalendar
) -> None:
    impatient = connect(server, timeout=0.5)
    state.hold_next(operation="calendar.events.insert", seconds=3)
    with pytest.raises(BookingSystemUnavailable) as failure:
        impatient.create(booking("appt-1", START))
    assert failure.value.retry is True
    ref = impatient.create(booking("appt-1", START))
    assert ref.external_id.endswith(event_id_for("appt-1"))
    assert len(live_events(state)) == 1
    impatient.close()


def test_a_cancelled_appointment_booked_again_restores_its_event(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    ref = google.create(booking("appt-1", START))
    google.cancel(ref)
    assert live_events(state) == []
    again = google.create(booking("appt-1", START + timedelta(hours=1)))
    assert again.external_id == ref.external_id
    (event,) = live_events(state)
    assert event["start"] == {"dateTime": "2030-03-05T18:00:00Z"}


def test_our_own_event_missed_by_the_lookup_does_not_block_itself(
    server: FakeGoogleCalendarServer, google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    # An earlier try wrote the event without the extended property the lookup uses.
    headers = {"Authorization": f"Bearer {state.issue_access_token()}"}
    body = {
        "id": event_id_for("appt-1"),
        "start": {"dateTime": "2030-03-05T17:00:00Z"},
        "end": {"dateTime": "2030-03-05T17:30:00Z"},
    }
    inserted = httpx.post(
        f"{server.api_base}/calendars/{CALENDAR}/events", json=body, headers=headers
    )
    assert inserted.status_code == 200, inserted.text
    ref = google.create(booking("appt-1", START))
    assert ref.external_id == f"{CALENDAR}/{event_id_for('appt-1')}"
    assert len(live_events(state)) == 1


def test_someone_elses_event_is_a_conflict(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    state.add_event(START + timedelta(minutes=15), START + timedelta(minutes=45))
    with pytest.raises(BookingConflict):
        google.create(booking("appt-1", START))
    assert len(live_events(state)) == 1


def test_a_transparent_event_does_not_block(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    state.add_event(START, START + timedelta(hours=8), summary="Working", transparent=True)
    google.create(booking("appt-1", START))
    assert len(live_events(state)) == 2


def test_twenty_concurrent_creates_at_one_slot_book_once(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    def attempt(number: int) -> str:
        try:
            google.create(booking(f"appt-{number}", START))
        except BookingConflict:
            return "conflict"
        return "booked"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("booked") == 1
    assert outcomes.count("conflict") == 19
    assert len(live_events(state)) == 1


def test_reschedule_moves_the_event_unless_the_new_time_is_taken(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    ref = google.create(booking("appt-1", START))
    moved = google.reschedule(ref, booking("appt-1", START + timedelta(minutes=15)))
    assert moved.external_id == ref.external_id
    assert moved.version != ref.version
    state.add_event(START + timedelta(hours=2), START + timedelta(hours=3))
    with pytest.raises(BookingConflict):
        google.reschedule(ref, booking("appt-1", START + timedelta(hours=2)))
    (ours,) = [e for e in live_events(state) if "extendedProperties" in e]
    assert ours["start"] == {"dateTime": "2030-03-05T17:15:00Z"}


def test_cancel_twice_is_fine(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    ref = google.create(booking("appt-1", START))
    google.cancel(ref)
    google.cancel(ref)
    google.cancel(ExternalBookingRef(f"{CALENDAR}/neverexisted0"))
    assert live_events(state) == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, "rateLimitExceeded"),
        (503, "backendError"),
        (500, "backendError"),
        (403, "userRateLimitExceeded"),
    ],
)
def test_slow_down_and_server_errors_are_retryable(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar, status: int, reason: str
) -> None:
    state.fail_next(status=status, reason=reason, retry_after_seconds=7)
    with pytest.raises(BookingSystemUnavailable) as failure:
        google.busy(START, START + timedelta(hours=1), [CALENDAR])
    assert failure.value.retry is True
    assert failure.value.retry_after == 7
    assert str(status) in failure.value.detail


def test_a_forbidden_calendar_is_not_retryable(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    state.fail_next(status=403, reason="forbidden", message="Forbidden")
    with pytest.raises(BookingSystemUnavailable) as failure:
        google.create(booking("appt-1", START))
    assert failure.value.retry is False


def test_a_timeout_is_retryable(
    server: FakeGoogleCalendarServer, state: FakeGoogleCalendar
) -> None:
    impatient = connect(server, timeout=0.3)
    state.hold_next(seconds=2)
    with pytest.raises(BookingSystemUnavailable) as failure:
        impatient.busy(START, START + timedelta(hours=1), [CALENDAR])
    assert failure.value.retry is True
    impatient.close()


# --- OAuth ----------------------------------------------------------------------------------


def oauth(server: FakeGoogleCalendarServer) -> GoogleOAuth:
    return GoogleOAuth(
        server.state.client_id, server.state.client_secret, REDIRECT, token_url=server.token_url
    )


def test_the_consent_url_asks_for_offline_access_and_least_scopes(
    server: FakeGoogleCalendarServer,
) -> None:
    flow = oauth(server)
    state_param = flow.new_state()
    url = urlsplit(flow.consent_url(state_param))
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert url.netloc == "accounts.google.com"
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert query["state"] == state_param
    assert query["response_type"] == "code"
    assert query["scope"].split() == [EVENTS_SCOPE, FREEBUSY_SCOPE]
    flow.close()


def test_a_401_refreshes_the_token_once_and_carries_on(
    server: FakeGoogleCalendarServer, state: FakeGoogleCalendar
) -> None:
    flow = oauth(server)
    tokens = flow.exchange_code(state.authorize(REDIRECT, (EVENTS_SCOPE, FREEBUSY_SCOPE)))
    assert tokens.refresh_token is not None
    google = GoogleCalendarBookingSystem(
        flow.provider(tokens.refresh_token), default_calendar=CALENDAR, api_base=server.api_base
    )
    google.busy(START, START + timedelta(hours=1), [CALENDAR])
    state.expire_access_tokens()
    google.create(booking("appt-1", START))
    assert len(live_events(state)) == 1
    token_calls = [r for r in state.requests if r.operation == "oauth.token"]
    assert len(token_calls) == 3  # the code exchange, the first token, the renewal
    state.revoke_refresh_tokens()
    with pytest.raises(BookingSystemUnavailable) as failure:
        google.busy(START, START + timedelta(hours=1), [CALENDAR])
    assert failure.value.retry is False
    assert "reconnect" in failure.value.detail
    google.close()
    flow.close()


def test_a_consent_without_the_freebusy_scope_is_refused(
    server: FakeGoogleCalendarServer, state: FakeGoogleCalendar
) -> None:
    flow = oauth(server)
    with pytest.raises(BookingSystemUnavailable, match=r"calendar\.freebusy"):
        flow.exchange_code(state.authorize(REDIRECT, (EVENTS_SCOPE,)))
    flow.close()


def test_a_service_account_gets_a_token_with_a_signed_jwt(server: FakeGoogleCalendarServer) -> None:
    sign, verify = hmac_signer(b"stand-in key")
    server.state.service_account_verifier = verify
    credentials = ServiceAccountCredentials(
        server.state.service_account_email, sign, token_url=server.token_url
    )
    google = GoogleCalendarBookingSystem(
        credentials.provider(), default_calendar=CALENDAR, api_base=server.api_base
    )
    assert google.busy(START, START + timedelta(hours=1), [CALENDAR]) == []
    forged = ServiceAccountCredentials(
        server.state.service_account_email, hmac_signer(b"other key")[0], token_url=server.token_url
    )
    with pytest.raises(BookingSystemUnavailable) as failure:
        forged.fetch()
    assert failure.value.retry is False
    google.close()
    credentials.close()
    forged.close()


# --- changes and push -----------------------------------------------------------------------


def test_changes_follow_sync_tokens_and_resync_after_410(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    now = datetime.now(UTC)
    state.add_event(now + timedelta(days=1), now + timedelta(days=1, hours=1))
    first, cursor = google.changes(None)
    assert [change.kind for change in first] == ["updated"]
    assert first[0].ringback_id is None

    ref = google.create(booking("appt-1", START))
    created, cursor = google.changes(cursor)
    assert [(c.kind, c.ringback_id, c.start) for c in created] == [("created", "appt-1", START)]

    google.cancel(ref)
    cancelled, cursor = google.changes(cursor)
    assert [(c.kind, c.external_id) for c in cancelled] == [("cancelled", ref.external_id)]

    nothing, cursor = google.changes(cursor)
    assert nothing == []

    state.expire_sync_tokens()
    resynced, cursor = google.changes(cursor)
    # A full read again: the live events (the cancelled one is gone from it).
    assert [c.kind for c in resynced] == ["updated"]
    google.create(booking("appt-2", START))
    after, _ = google.changes(cursor)
    assert [(c.kind, c.ringback_id) for c in after] == [("created", "appt-2")]


def test_push_channels_notify_and_stop(
    google: GoogleCalendarBookingSystem, state: FakeGoogleCalendar
) -> None:
    with running_receiver() as (receiver, url):
        channel = google.watch("chan-1", f"{url}/google/push", "s3cret", timedelta(days=2))
        google.create(booking("appt-1", START))
        sync, exists = receiver.wait_for(2)
    assert receiver.received[0].path == "/google/push"
    push = parse_push_notification(exists.headers)
    assert push is not None
    assert push.channel_id == "chan-1"
    assert push.resource_id == channel.resource_id
    assert push.resource_state == "exists"
    assert push.message_number == 2
    assert push.expiration is not None
    assert abs((push.expiration - channel.expiration).total_seconds()) < 1
    assert push_token_matches(push, "s3cret")
    assert not push_token_matches(push, "guess")
    first = parse_push_notification(sync.headers)
    assert first is not None
    assert first.resource_state == "sync"
    assert parse_push_notification({"Content-Type": "text/plain"}) is None
    google.stop_channel(channel)
    google.stop_channel(channel)  # already stopped: fine
    assert state.channels == []


def test_channels_are_renewed_before_they_expire() -> None:
    expiry = datetime(2030, 3, 12, 12, 0, tzinfo=UTC)
    channel = WatchChannel("chan-1", "res-1", CALENDAR, expiry)
    assert not channel_needs_renewal(channel, expiry - timedelta(days=1))
    assert channel_needs_renewal(channel, expiry - timedelta(hours=11))
    assert channel_needs_renewal(channel, expiry + timedelta(minutes=1))


def test_every_page_is_read(server: FakeGoogleCalendarServer, state: FakeGoogleCalendar) -> None:
    token = StaticAccessToken(state.issue_access_token())
    google = GoogleCalendarBookingSystem(
        token, default_calendar=CALENDAR, api_base=server.api_base, page_size=2
    )
    now = datetime.now(UTC)
    for hour in range(5):
        state.add_event(
            now + timedelta(days=1, hours=hour), now + timedelta(days=1, hours=hour + 1)
        )
    for hour in range(3):  # "working" blocks that show as free: listed, but not blocking
        state.add_event(START, START + timedelta(hours=8), transparent=True, summary=f"w{hour}")
    first, cursor = google.changes(None)
    assert len(first) == 8
    google.create(booking("appt-1", START))
    later, _ = google.changes(cursor)
    assert [c.ringback_id for c in later] == ["appt-1"]
    pages = [r for r in state.requests if r.operation == "calendar.events.list"]
    assert any("pageToken" in r.query for r in pages)
    google.close()
