"""The fake Square: its contract checker fails where Square would, and its model behaves
like Square's (availability from hours and bookings, idempotency, versions, webhooks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from ringback.fakes.openapi import square_contract
from ringback.fakes.square import (
    SELLER_SCOPES,
    SIGNATURE_HEADER,
    FakeSquare,
    FakeSquareServer,
    SquareService,
    sign_square_notification,
)
from ringback.integrations.square import verify_square_signature
from tests.support.booking_systems import running_receiver, spa_time


@pytest.fixture
def state() -> FakeSquare:
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


@pytest.fixture
def api(server: FakeSquareServer) -> Iterator[httpx.Client]:
    headers = {
        "Authorization": f"Bearer {server.state.access_token}",
        "Square-Version": "2025-08-20",
    }
    with httpx.Client(base_url=server.url, headers=headers, timeout=5.0) as client:
        yield client


def create_body(
    state: FakeSquare, member: str, service: SquareService, start: datetime, key: str = "k-1"
) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "booking": {
            "start_at": start.isoformat(),
            "location_id": state.location_id,
            "appointment_segments": [
                {
                    "team_member_id": member,
                    "service_variation_id": service.variation_id,
                    "service_variation_version": service.version,
                    "duration_minutes": 30,
                }
            ],
        },
    }


def assert_square_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert errors
    assert {"category", "code", "detail"} <= set(errors[0])
    if code is not None:
        assert errors[0]["code"] == code
    return " ".join(str(error["detail"]) for error in errors)


# --- the contract checker can fail -------------------------------------------------------


def test_a_valid_create_leaves_no_violations(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    start = spa_time(10)
    response = api.post("/v2/bookings", json=create_body(state, member, service, start))
    assert response.status_code == 200, response.text
    assert response.json()["booking"]["status"] == "ACCEPTED"
    assert state.violations == []


def test_an_unknown_path_is_refused(api: httpx.Client, state: FakeSquare) -> None:
    assert "no path in" in assert_square_error(api.get("/v2/appointments"), 404)
    assert state.violations


def test_a_wrong_method_is_refused(api: httpx.Client) -> None:
    detail = assert_square_error(api.delete("/v2/bookings/abc"), 405)
    assert "the spec allows only GET, PUT" in detail


def test_missing_auth_is_refused(server: FakeSquareServer) -> None:
    response = httpx.get(f"{server.url}/v2/locations", headers={"Square-Version": "2025-08-20"})
    assert_square_error(response, 401, "UNAUTHORIZED")
    assert any("Authorization" in violation for violation in server.state.violations)


def test_a_missing_square_version_is_refused(server: FakeSquareServer) -> None:
    headers = {"Authorization": f"Bearer {server.state.access_token}"}
    response = httpx.get(f"{server.url}/v2/locations", headers=headers)
    assert "Square-Version" in assert_square_error(response, 400)


def test_a_missing_required_field_is_refused(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    body = create_body(state, member, service, spa_time(10))
    del body["booking"]["appointment_segments"][0]["team_member_id"]
    detail = assert_square_error(api.post("/v2/bookings", json=body), 400)
    assert "appointment_segments[0].team_member_id is required but missing" in detail


def test_the_documented_required_inputs_are_checked(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    body = create_body(state, member, service, spa_time(10))
    del body["booking"]["location_id"]
    del body["idempotency_key"]
    detail = assert_square_error(api.post("/v2/bookings", json=body), 400)
    assert "booking.location_id is required" in detail
    assert "idempotency_key is missing" in detail


def test_a_wrong_type_is_refused(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    body = create_body(state, member, service, spa_time(10))
    body["booking"]["appointment_segments"][0]["service_variation_version"] = "7"
    detail = assert_square_error(api.post("/v2/bookings", json=body), 400)
    assert "service_variation_version = '\"7\"' is not an integer" in detail


def test_a_bad_enum_value_is_refused(api: httpx.Client) -> None:
    body = {"query": {"filter": {"status": "RETIRED"}}}
    detail = assert_square_error(api.post("/v2/team-members/search", json=body), 400)
    assert "is not one of ACTIVE, INACTIVE" in detail


def test_read_only_and_unknown_fields_are_refused(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    body = create_body(state, member, service, spa_time(10))
    body["booking"]["status"] = "ACCEPTED"
    body["booking"]["notes"] = "hi"
    detail = assert_square_error(api.post("/v2/bookings", json=body), 400)
    assert "booking.status is read-only" in detail
    assert "booking.notes is not a field the spec defines" in detail


def test_availability_needs_a_day_long_range(
    api: httpx.Client, state: FakeSquare, service: SquareService
) -> None:
    start = spa_time(9)
    body = {
        "query": {
            "filter": {
                "location_id": state.location_id,
                "start_at_range": {
                    "start_at": start.isoformat(),
                    "end_at": (start + timedelta(hours=2)).isoformat(),
                },
                "segment_filters": [{"service_variation_id": service.variation_id}],
            }
        }
    }
    detail = assert_square_error(api.post("/v2/bookings/availability/search", json=body), 400)
    assert "at least 24 hours" in detail


def test_a_buyer_token_cannot_list_locations_without_the_permission(
    service: SquareService,
) -> None:
    state = FakeSquare(scopes=("APPOINTMENTS_READ",))
    with FakeSquareServer(state) as server:
        headers = {"Authorization": f"Bearer {state.access_token}", "Square-Version": "2025-08-20"}
        response = httpx.get(f"{server.url}/v2/locations", headers=headers)
    assert "MERCHANT_PROFILE_READ" in assert_square_error(response, 403, "INSUFFICIENT_SCOPES")


def test_the_contract_is_loaded_once() -> None:
    assert square_contract() is square_contract()


# --- the model ------------------------------------------------------------------------------


def test_availability_follows_hours_and_bookings(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    day = spa_time(0)
    body = {
        "query": {
            "filter": {
                "location_id": state.location_id,
                "start_at_range": {
                    "start_at": day.isoformat(),
                    "end_at": (day + timedelta(days=1)).isoformat(),
                },
                "segment_filters": [{"service_variation_id": service.variation_id}],
            }
        }
    }
    before = api.post("/v2/bookings/availability/search", json=body).json()["availabilities"]
    assert len(before) == 16  # 9:00 to 16:30, every half hour
    state.book_directly(member, service, spa_time(10))
    after = api.post("/v2/bookings/availability/search", json=body).json()["availabilities"]
    starts = {slot["start_at"] for slot in after}
    assert len(after) == 15
    assert spa_time(10).isoformat().replace("+00:00", ".000Z") not in starts


def test_idempotency_keys_replay_and_refuse_reuse(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    body = create_body(state, member, service, spa_time(10))
    first = api.post("/v2/bookings", json=body).json()["booking"]
    again = api.post("/v2/bookings", json=body).json()["booking"]
    assert again["id"] == first["id"]
    assert len(state.bookings()) == 1
    body["booking"]["start_at"] = spa_time(11).isoformat()
    assert_square_error(api.post("/v2/bookings", json=body), 400, "IDEMPOTENCY_KEY_REUSED")


def test_a_buyer_cannot_double_book_but_a_seller_can(
    state: FakeSquare, member: str, service: SquareService
) -> None:
    start = spa_time(10)
    state.book_directly(member, service, start)
    for scopes, expected in ((None, 400), (SELLER_SCOPES, 200)):
        if scopes is not None:
            state.scopes = frozenset(scopes)
        with FakeSquareServer(state) as server:
            headers = {
                "Authorization": f"Bearer {state.access_token}",
                "Square-Version": "2025-08-20",
            }
            response = httpx.post(
                f"{server.url}/v2/bookings",
                json=create_body(state, member, service, start, key=f"k-{expected}"),
                headers=headers,
            )
        assert response.status_code == expected, response.text


def test_versions_guard_updates_and_cancels(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    created = api.post(
        "/v2/bookings", json=create_body(state, member, service, spa_time(10))
    ).json()["booking"]
    moved = api.put(
        f"/v2/bookings/{created['id']}",
        json={"booking": {"version": 0, "start_at": spa_time(11).isoformat()}},
    )
    assert moved.json()["booking"]["version"] == 1
    stale = api.post(f"/v2/bookings/{created['id']}/cancel", json={"booking_version": 0})
    assert_square_error(stale, 409, "CONFLICT")
    cancelled = api.post(f"/v2/bookings/{created['id']}/cancel", json={"booking_version": 1})
    assert cancelled.json()["booking"]["status"] == "CANCELLED_BY_SELLER"


def test_webhooks_are_signed_the_square_way(
    api: httpx.Client, state: FakeSquare, member: str, service: SquareService
) -> None:
    with running_receiver() as (receiver, url):
        key = state.subscribe(f"{url}/square")
        api.post("/v2/bookings", json=create_body(state, member, service, spa_time(10)))
        (post,) = receiver.wait_for(1)
    event = json.loads(post.body)
    assert event["type"] == "booking.created"
    header = post.headers[SIGNATURE_HEADER]
    assert header == sign_square_notification(key, f"{url}/square", post.body)
    assert verify_square_signature(key, f"{url}/square", post.body, header)


def test_scripted_failures_answer_in_squares_shape(api: httpx.Client, state: FakeSquare) -> None:
    state.rate_limit_next(operation="ListLocations")
    state.fail_next(status=503, operation="ListLocations")
    assert_square_error(api.get("/v2/locations"), 429, "RATE_LIMITED")
    assert_square_error(api.get("/v2/locations"), 503, "SERVICE_UNAVAILABLE")
    assert api.get("/v2/locations").status_code == 200
    state.expire_access_token()
    assert_square_error(api.get("/v2/locations"), 401, "ACCESS_TOKEN_EXPIRED")
