"""The Square booking system against the fake Square over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from ringback.fakes.square import (
    SELLER_SCOPES,
    SIGNATURE_HEADER,
    FakeSquare,
    FakeSquareServer,
    SquareService,
)
from ringback.integrations.square import (
    SquareBookingSystem,
    parse_booking_webhook,
    verify_square_signature,
)
from ringback.ports import (
    BookingConflict,
    BookingSystem,
    BookingSystemUnavailable,
    ExternalBookingRef,
)
from tests.support.booking_systems import booking, running_receiver, spa_time

TEN = spa_time(10)


@pytest.fixture(params=["buyer", "seller"])
def state(request: pytest.FixtureRequest) -> FakeSquare:
    """Both permission levels: Square refuses a taken slot to one and not the other."""
    if request.param == "seller":
        return FakeSquare(scopes=SELLER_SCOPES)
    return FakeSquare()


@pytest.fixture
def member(state: FakeSquare) -> str:
    return state.add_team_member("Ana", "Lopez")


@pytest.fixture
def service(state: FakeSquare, member: str) -> SquareService:
    return state.add_service("Botox consult", 30, (member,))


@pytest.fixture
def server(state: FakeSquare, service: SquareService) -> Iterator[FakeSquareServer]:
    with FakeSquareServer(state) as running:
        yield running
        assert running.state.violations == []


def connect(server: FakeSquareServer, *, timeout: float = 5.0) -> SquareBookingSystem:
    return SquareBookingSystem(
        server.state.access_token, server.state.location_id, base_url=server.url, timeout=timeout
    )


@pytest.fixture
def square(server: FakeSquareServer) -> Iterator[SquareBookingSystem]:
    system = connect(server)
    yield system
    system.close()


def live(state: FakeSquare) -> list[dict[str, object]]:
    return [b for b in state.bookings() if not str(b["status"]).startswith("CANCELLED")]


def test_it_satisfies_the_port(square: SquareBookingSystem) -> None:
    system: BookingSystem = square
    assert system.capabilities.offers_availability is True
    assert system.capabilities.knows_services is True


def test_mapping_lists(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    (location,) = square.locations()
    assert location.id == state.location_id
    assert location.timezone == "America/Los_Angeles"
    (team_member,) = square.team_members()
    assert (team_member.id, team_member.name) == (member, "Ana Lopez")
    (found,) = square.services()
    assert (found.variation_id, found.name, found.duration_minutes) == (
        service.variation_id,
        "Botox consult",
        30,
    )
    assert found.team_member_ids == (member,)


def test_availability_in_a_short_window(
    square: SquareBookingSystem, member: str, service: SquareService
) -> None:
    slots = square.availability(TEN, TEN + timedelta(hours=2), service.variation_id, [member])
    assert [slot.start for slot in slots] == [TEN + timedelta(minutes=30 * i) for i in range(4)]
    assert all(slot.end - slot.start == timedelta(minutes=30) for slot in slots)
    assert {slot.provider_ref for slot in slots} == {member}


def test_busy_lists_the_team_members_bookings(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    booking_id = state.book_directly(member, service, TEN)
    busy = square.busy(TEN - timedelta(hours=1), TEN + timedelta(hours=1), [member])
    assert [(b.uid, b.start, b.end) for b in busy] == [
        (booking_id, TEN, TEN + timedelta(minutes=30))
    ]


def test_create_is_idempotent_and_finds_or_makes_the_customer(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    wanted = booking("appt-1", TEN, provider_ref=member, service_ref=service.variation_id)
    ref = square.create(wanted)
    again = square.create(wanted)
    assert again.external_id == ref.external_id
    (made,) = live(state)
    assert "[ringback:appt-1]" in str(made["seller_note"])
    (customer,) = state.customers()
    assert customer["phone_number"] == "+13105550100"
    assert made["customer_id"] == customer["id"]
    other = booking(
        "appt-2", TEN + timedelta(hours=1), provider_ref=member, service_ref=service.variation_id
    )
    square.create(other)
    assert len(state.customers()) == 1
    assert len(live(state)) == 2


def test_a_create_whose_answer_was_lost_is_found_on_retry(
    server: FakeSquareServer, state: FakeSquare, member: str, service: SquareService
) -> None:
    impatient = connect(server, timeout=0.5)
    state.hold_next(operation="CreateBooking", seconds=3)
    wanted = booking("appt-1", TEN, provider_ref=member, service_ref=service.variation_id)
    with pytest.raises(BookingSystemUnavailable) as failure:
        impatient.create(wanted)
    assert failure.value.retry is True
    ref = impatient.create(wanted)
    (only,) = live(state)
    assert only["id"] == ref.external_id
    impatient.close()


def test_a_taken_slot_is_a_conflict(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    state.book_directly(member, service, TEN + timedelta(minutes=15))
    with pytest.raises(BookingConflict):
        square.create(booking("appt-1", TEN, provider_ref=member, service_ref=service.variation_id))
    assert len(live(state)) == 1


def test_twenty_concurrent_creates_at_one_slot_book_once(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    def attempt(number: int) -> str:
        try:
            square.create(
                booking(
                    f"appt-{number}",
                    TEN,
                    provider_ref=member,
                    service_ref=service.variation_id,
                    phone=f"+1310555{number:04d}",
                )
            )
        except BookingConflict:
            return "conflict"
        return "booked"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("booked") == 1
    assert outcomes.count("conflict") == 19
    assert len(live(state)) == 1


def test_reschedule_and_cancel(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    ref = square.create(
        booking("appt-1", TEN, provider_ref=member, service_ref=service.variation_id)
    )
    moved = square.reschedule(
        ref,
        booking(
            "appt-1",
            TEN + timedelta(hours=1),
            provider_ref=member,
            service_ref=service.variation_id,
        ),
    )
    assert moved.external_id == ref.external_id
    assert moved.version == "1"
    state.book_directly(member, service, TEN + timedelta(hours=3))
    with pytest.raises(BookingConflict):
        square.reschedule(
            moved,
            booking(
                "appt-1",
                TEN + timedelta(hours=3),
                provider_ref=member,
                service_ref=service.variation_id,
            ),
        )
    square.cancel(ref)  # a stale version: the adapter reads the current one
    square.cancel(ref)
    square.cancel(ExternalBookingRef("nosuchbooking"))
    (booking_left,) = live(state)
    assert booking_left["id"] != ref.external_id


def test_a_stale_version_is_read_again(
    square: SquareBookingSystem, member: str, service: SquareService
) -> None:
    ref = square.create(
        booking("appt-1", TEN, provider_ref=member, service_ref=service.variation_id)
    )
    square.reschedule(
        ref,
        booking(
            "appt-1",
            TEN + timedelta(hours=1),
            provider_ref=member,
            service_ref=service.variation_id,
        ),
    )
    moved = square.reschedule(  # ``ref`` still says version 0
        ref,
        booking(
            "appt-1",
            TEN + timedelta(hours=2),
            provider_ref=member,
            service_ref=service.variation_id,
        ),
    )
    assert moved.version == "2"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_slow_down_and_server_errors_are_retryable(
    square: SquareBookingSystem, state: FakeSquare, member: str, status: int
) -> None:
    state.fail_next(status=status, retry_after_seconds=3)
    with pytest.raises(BookingSystemUnavailable) as failure:
        square.busy(TEN, TEN + timedelta(hours=1), [member])
    assert failure.value.retry is True
    assert failure.value.retry_after == 3


def test_an_expired_token_is_not_retryable(
    square: SquareBookingSystem, state: FakeSquare, member: str
) -> None:
    state.expire_access_token()
    with pytest.raises(BookingSystemUnavailable) as failure:
        square.busy(TEN, TEN + timedelta(hours=1), [member])
    assert failure.value.retry is False
    assert "ACCESS_TOKEN_EXPIRED" in failure.value.detail


def test_a_timeout_is_retryable(server: FakeSquareServer, state: FakeSquare, member: str) -> None:
    impatient = connect(server, timeout=0.3)
    state.hold_next(seconds=2)
    with pytest.raises(BookingSystemUnavailable) as failure:
        impatient.busy(TEN, TEN + timedelta(hours=1), [member])
    assert failure.value.retry is True
    impatient.close()


def test_changes_report_bookings_updated_since_the_cursor(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    state.book_directly(member, service, TEN)
    first, cursor = square.changes(None)
    assert [(c.kind, c.ringback_id) for c in first] == [("created", None)]
    ref = square.create(
        booking(
            "appt-1",
            TEN + timedelta(hours=1),
            provider_ref=member,
            service_ref=service.variation_id,
        )
    )
    created, cursor = square.changes(cursor)
    assert [(c.kind, c.ringback_id) for c in created] == [("created", "appt-1")]
    square.cancel(ref)
    cancelled, cursor = square.changes(cursor)
    assert [(c.kind, c.external_id) for c in cancelled] == [("cancelled", ref.external_id)]
    assert square.changes(cursor)[0] == []


def test_a_signed_webhook_is_verified_and_a_tampered_one_refused(
    square: SquareBookingSystem, state: FakeSquare, member: str, service: SquareService
) -> None:
    with running_receiver() as (receiver, url):
        notification_url = f"{url}/square/webhooks"
        key = state.subscribe(notification_url)
        square.create(booking("appt-1", TEN, provider_ref=member, service_ref=service.variation_id))
        (post,) = receiver.wait_for(1)
    header = post.headers[SIGNATURE_HEADER]
    assert verify_square_signature(key, notification_url, post.body, header)
    tampered = post.body.replace(b"appt-1", b"appt-9")
    assert not verify_square_signature(key, notification_url, tampered, header)
    assert not verify_square_signature(key, notification_url + "?x=1", post.body, header)
    assert not verify_square_signature("other-key", notification_url, post.body, header)
    assert not verify_square_signature(key, notification_url, post.body, None)
    change = parse_booking_webhook(post.body)
    assert change is not None
    assert (change.kind, change.ringback_id, change.start) == ("created", "appt-1", TEN)


def test_webhook_parser_ignores_other_events() -> None:
    assert parse_booking_webhook(b"not json") is None
    assert parse_booking_webhook(json.dumps({"type": "customer.created"}).encode()) is None
    cancelled = {
        "type": "booking.updated",
        "data": {
            "object": {
                "booking": {
                    "id": "b1",
                    "status": "CANCELLED_BY_CUSTOMER",
                    "start_at": "2030-03-05T17:00:00Z",
                    "appointment_segments": [{"duration_minutes": 30}],
                    "seller_note": "Maria [ringback:appt-7]",
                }
            }
        },
    }
    change = parse_booking_webhook(json.dumps(cancelled).encode())
    assert change is not None
    assert (change.kind, change.ringback_id) == ("cancelled", "appt-7")


def test_a_booking_needs_a_team_member_and_a_service(square: SquareBookingSystem) -> None:
    with pytest.raises(ValueError, match="team member"):
        square.create(booking("appt-1", TEN))


def test_every_page_is_read(
    server: FakeSquareServer, state: FakeSquare, member: str, service: SquareService
) -> None:
    square = SquareBookingSystem(
        state.access_token, state.location_id, base_url=server.url, page_size=2
    )
    for hour in range(5):
        state.book_directly(member, service, TEN + timedelta(hours=hour))
    busy = square.busy(TEN, TEN + timedelta(hours=6), [member])
    assert len(busy) == 5
    assert any("cursor" in r.query for r in state.requests if r.operation == "ListBookings")
    square.close()
