"""The fake Google Calendar: its contract checker fails where Google would, and its model
behaves like Google's (freebusy, sync tokens, duplicate ids, push channels, OAuth)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ringback.fakes.discovery import google_calendar_contract
from ringback.fakes.google_calendar import (
    EVENTS_SCOPE,
    FREEBUSY_SCOPE,
    FakeGoogleCalendar,
    FakeGoogleCalendarServer,
)
from tests.support.booking_systems import running_receiver

START = datetime(2030, 3, 5, 17, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[FakeGoogleCalendarServer]:
    with FakeGoogleCalendarServer(FakeGoogleCalendar()) as running:
        yield running


@pytest.fixture
def state(server: FakeGoogleCalendarServer) -> FakeGoogleCalendar:
    return server.state


@pytest.fixture
def api(server: FakeGoogleCalendarServer) -> Iterator[httpx.Client]:
    token = server.state.issue_access_token()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.api_base, headers=headers, timeout=5.0) as client:
        yield client


def event(event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": "Maria - consult",
        "start": {"dateTime": "2030-03-05T17:00:00Z"},
        "end": {"dateTime": "2030-03-05T17:30:00Z"},
        **extra,
    }
    if event_id is not None:
        body["id"] = event_id
    return body


def assert_google_error(response: httpx.Response, status: int, reason: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "errors", "status"}
    assert error["code"] == status
    if reason is not None:
        assert error["errors"][0]["reason"] == reason
    return str(error["message"])


# --- the contract checker can fail -------------------------------------------------------


def test_a_valid_insert_leaves_no_violations(api: httpx.Client, state: FakeGoogleCalendar) -> None:
    response = api.post("/calendars/primary/events", json=event("abcdef01234"))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "abcdef01234"
    assert state.violations == []


def test_an_unknown_path_is_refused(api: httpx.Client, state: FakeGoogleCalendar) -> None:
    response = api.get("/calendars/primary/appointments")
    assert "no path in" in assert_google_error(response, 404)
    assert state.violations


def test_a_wrong_method_is_refused(api: httpx.Client, state: FakeGoogleCalendar) -> None:
    response = api.put("/calendars/primary/events", json=event())
    assert "the spec allows only GET, POST" in assert_google_error(response, 405)


def test_missing_auth_is_refused(server: FakeGoogleCalendarServer) -> None:
    response = httpx.post(f"{server.api_base}/calendars/primary/events", json=event())
    assert_google_error(response, 401, "required")
    assert any("Authorization" in v for v in server.state.violations)


def test_an_unknown_token_is_refused(server: FakeGoogleCalendarServer) -> None:
    headers = {"Authorization": "Bearer ya29.made-up"}
    response = httpx.get(f"{server.api_base}/calendars/primary/events", headers=headers)
    assert_google_error(response, 401, "authError")


def test_a_token_without_the_scope_is_refused(server: FakeGoogleCalendarServer) -> None:
    token = server.state.issue_access_token((EVENTS_SCOPE,))
    body = {
        "timeMin": "2030-03-05T00:00:00Z",
        "timeMax": "2030-03-06T00:00:00Z",
        "items": [{"id": "primary"}],
    }
    response = httpx.post(
        f"{server.api_base}/freeBusy", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert_google_error(response, 403, "insufficientPermissions")


def test_a_missing_required_field_is_refused(api: httpx.Client) -> None:
    body = event()
    del body["end"]
    message = assert_google_error(api.post("/calendars/primary/events", json=body), 400)
    assert "body.end is required but missing" in message


def test_a_wrong_type_is_refused(api: httpx.Client) -> None:
    message = assert_google_error(
        api.post("/calendars/primary/events", json=event(summary=42)), 400
    )
    assert "body.summary = '42' is not a string" in message


def test_a_bad_enum_value_is_refused(api: httpx.Client) -> None:
    response = api.post("/calendars/primary/events", params={"sendUpdates": "nobody"}, json=event())
    assert "is not one of all, externalOnly, none" in assert_google_error(response, 400)


def test_an_unknown_field_and_a_naive_time_are_refused(api: httpx.Client) -> None:
    body = event(colour="red")
    body["start"] = {"dateTime": "2030-03-05T17:00:00"}
    message = assert_google_error(api.post("/calendars/primary/events", json=body), 400)
    assert "body.colour is not a field the spec defines" in message
    assert "is not an RFC 3339 date-time" in message


def test_an_event_id_must_be_base32hex(api: httpx.Client) -> None:
    message = assert_google_error(
        api.post("/calendars/primary/events", json=event("Not_Base32")), 400
    )
    assert "base32hex" in message


def test_sync_token_cannot_be_sent_with_time_min(api: httpx.Client) -> None:
    params = {"syncToken": "abc", "timeMin": "2030-03-05T00:00:00Z"}
    message = assert_google_error(api.get("/calendars/primary/events", params=params), 400)
    assert "timeMin cannot be sent with syncToken" in message


def test_an_unknown_query_parameter_is_refused(api: httpx.Client) -> None:
    message = assert_google_error(api.get("/calendars/primary/events", params={"since": "x"}), 400)
    assert "unknown query parameter 'since'" in message


def test_the_contract_is_loaded_once() -> None:
    assert google_calendar_contract() is google_calendar_contract()


# --- the model ------------------------------------------------------------------------------


def test_a_reused_event_id_is_a_duplicate_even_after_delete(api: httpx.Client) -> None:
    assert api.post("/calendars/primary/events", json=event("abcdef01234")).status_code == 200
    assert api.delete("/calendars/primary/events/abcdef01234").status_code == 204
    assert_google_error(api.delete("/calendars/primary/events/abcdef01234"), 410, "deleted")
    again = api.post("/calendars/primary/events", json=event("abcdef01234"))
    assert_google_error(again, 409, "duplicate")
    assert api.get("/calendars/primary/events/abcdef01234").json()["status"] == "cancelled"


def test_freebusy_merges_opaque_events_and_skips_transparent(
    api: httpx.Client, state: FakeGoogleCalendar
) -> None:
    state.add_event(START, START + timedelta(minutes=30))
    state.add_event(START + timedelta(minutes=15), START + timedelta(minutes=60))
    state.add_event(START + timedelta(hours=2), START + timedelta(hours=3), transparent=True)
    body = {
        "timeMin": "2030-03-05T00:00:00Z",
        "timeMax": "2030-03-06T00:00:00Z",
        "items": [{"id": "primary"}, {"id": "nobody@example.com"}],
    }
    answer = api.post("/freeBusy", json=body).json()
    assert answer["calendars"]["primary"]["busy"] == [
        {"start": "2030-03-05T17:00:00.000Z", "end": "2030-03-05T18:00:00.000Z"}
    ]
    assert answer["calendars"]["nobody@example.com"]["errors"][0]["reason"] == "notFound"


def test_sync_tokens_return_changes_and_expire_with_410(
    api: httpx.Client, state: FakeGoogleCalendar
) -> None:
    first = api.get("/calendars/primary/events").json()
    assert first["items"] == []
    api.post("/calendars/primary/events", json=event("abcdef01234"))
    changed = api.get("/calendars/primary/events", params={"syncToken": first["nextSyncToken"]})
    assert [item["id"] for item in changed.json()["items"]] == ["abcdef01234"]
    api.delete("/calendars/primary/events/abcdef01234")
    deleted = api.get(
        "/calendars/primary/events", params={"syncToken": changed.json()["nextSyncToken"]}
    ).json()
    assert [item["status"] for item in deleted["items"]] == ["cancelled"]
    state.expire_sync_tokens()
    gone = api.get("/calendars/primary/events", params={"syncToken": deleted["nextSyncToken"]})
    assert_google_error(gone, 410, "fullSyncRequired")


def test_private_extended_property_filters_events(api: httpx.Client) -> None:
    ours = event("abcdef01234", extendedProperties={"private": {"ringbackId": "a-1"}})
    api.post("/calendars/primary/events", json=ours)
    api.post("/calendars/primary/events", json=event("abcdef05678"))
    found = api.get(
        "/calendars/primary/events", params={"privateExtendedProperty": "ringbackId=a-1"}
    ).json()["items"]
    assert [item["id"] for item in found] == ["abcdef01234"]


def test_patch_merges_and_changes_the_etag(api: httpx.Client) -> None:
    created = api.post("/calendars/primary/events", json=event("abcdef01234")).json()
    patched = api.patch(
        "/calendars/primary/events/abcdef01234",
        json={
            "start": {"dateTime": "2030-03-05T18:00:00Z"},
            "end": {"dateTime": "2030-03-05T18:30:00Z"},
        },
    ).json()
    assert patched["summary"] == created["summary"]
    assert patched["start"]["dateTime"] == "2030-03-05T18:00:00Z"
    assert patched["etag"] != created["etag"]


def test_watch_channels_push_google_headers(api: httpx.Client, state: FakeGoogleCalendar) -> None:
    with running_receiver() as (receiver, url):
        channel = api.post(
            "/calendars/primary/events/watch",
            json={"id": "chan-1", "type": "web_hook", "address": f"{url}/push", "token": "t0k"},
        ).json()
        assert channel["resourceId"]
        api.post("/calendars/primary/events", json=event("abcdef01234"))
        sync, exists = receiver.wait_for(2)
    assert sync.headers["x-goog-resource-state"] == "sync"
    assert exists.headers["x-goog-resource-state"] == "exists"
    assert exists.headers["x-goog-channel-id"] == "chan-1"
    assert exists.headers["x-goog-channel-token"] == "t0k"
    assert exists.headers["x-goog-message-number"] == "2"
    stop = {"id": "chan-1", "resourceId": channel["resourceId"]}
    assert api.post("/channels/stop", json=stop).status_code == 204
    assert_google_error(api.post("/channels/stop", json=stop), 404)
    assert state.violations == []


def test_scripted_failures_answer_in_googles_shape(
    api: httpx.Client, state: FakeGoogleCalendar
) -> None:
    state.rate_limit_next(operation="calendar.events.insert")
    state.fail_next(status=503)
    assert_google_error(
        api.post("/calendars/primary/events", json=event()), 429, "rateLimitExceeded"
    )
    assert_google_error(api.get("/calendars/primary/events"), 503, "backendError")
    assert api.get("/calendars/primary/events").status_code == 200


def test_a_held_answer_still_did_the_work(
    server: FakeGoogleCalendarServer, state: FakeGoogleCalendar
) -> None:
    state.hold_next(operation="calendar.events.insert", seconds=2)
    token = state.issue_access_token()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.api_base}/calendars/primary/events",
            json=event("abcdef01234"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=0.3,
        )
    assert [item["id"] for item in state.events()] == ["abcdef01234"]


# --- OAuth ----------------------------------------------------------------------------------


def test_code_exchange_and_refresh(server: FakeGoogleCalendarServer) -> None:
    state = server.state
    code = state.authorize("https://ringback.test/google/callback", (EVENTS_SCOPE, FREEBUSY_SCOPE))
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": state.client_id,
        "client_secret": state.client_secret,
        "redirect_uri": "https://ringback.test/google/callback",
    }
    tokens = httpx.post(server.token_url, data=form).json()
    assert tokens["refresh_token"]
    assert tokens["token_type"] == "Bearer"
    reused = httpx.post(server.token_url, data=form)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    refreshed = httpx.post(
        server.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": state.client_id,
            "client_secret": state.client_secret,
        },
    ).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert (
        httpx.get(f"{server.api_base}/calendars/primary/events", headers=headers).status_code == 200
    )


def test_a_wrong_client_secret_is_invalid_client(server: FakeGoogleCalendarServer) -> None:
    response = httpx.post(
        server.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": server.state.client_id,
            "client_secret": "wrong",
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
