"""Ids, cursors, dates and tokens from outside: out of range or malformed is a 404, 422 or
400 naming the field, never a 500. The id walk finds the app's routes itself, so a route
added later with an ``int`` in its path is covered without touching this file."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, get_args
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from ringback.app import create_app
from ringback.web import MAX_ROW_ID
from tests.booking.test_booking_page import link_for
from tests.conftest import Service
from tests.settings.conftest import store_settings
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.api import make_token
from tests.support.staff import act, handed_off, refused_field
from tests.twilio_payloads import caller_number

BAD_IDS = [str(2**63), str(2**64), "-1", "0", "abc", "1e3", "²"]


def _is_int(annotation: Any) -> bool:
    """``int``, ``int | None``, or either wrapped in Annotated (``RowId | None``)."""
    return any(
        getattr(arg, "__origin__", arg) is int for arg in (annotation, *get_args(annotation))
    )


def _is_row_id(param: Any) -> bool:
    """An int bounded to 1..2^63-1, however the bounds were attached."""
    found = list(param.field_info.metadata)
    for arg in get_args(param.field_info.annotation):
        found += getattr(arg, "__metadata__", ())
    lows = {getattr(m, "ge", None) for m in found}
    highs = {getattr(m, "le", None) for m in found}
    return _is_int(param.field_info.annotation) and 1 in lows and MAX_ROW_ID in highs


def id_routes(service: Service) -> list[tuple[str, str, list[str], list[str]]]:
    """(method, path, int path params, row-id query params) of every route with either."""
    found = []
    for context in iter_route_contexts(create_app(service.runtime, run_worker=False).routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path is None:
            continue
        in_path = [p.name for p in route.dependant.path_params if _is_int(p.field_info.annotation)]
        # Query ints include flags and counts (?saved=1); only the row ids among them.
        in_query = [p.name for p in route.dependant.query_params if _is_row_id(p)]
        if in_path or in_query:
            for method in sorted(context.methods or ()):
                found.append((method, context.path, in_path, in_query))
    return found


@pytest.fixture
def owner(service: Service) -> httpx.Client:
    store_settings(service)
    add_user(service, "owner@glow.example")
    return sign_in(service, "owner@glow.example")


def test_every_id_in_a_path_is_a_bounded_row_id(service: Service) -> None:
    """Declared with the shared RowId: 1..2^63-1, checked before any handler runs."""
    routes = id_routes(service)
    for context in iter_route_contexts(create_app(service.runtime, run_worker=False).routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        for param in route.dependant.path_params + route.dependant.query_params:
            if _is_int(param.field_info.annotation) and param.name.endswith("_id"):
                assert _is_row_id(param), (context.path, param.name)
    assert len(routes) >= 25, routes  # the walk is not vacuous


def test_ids_beyond_bigint_or_malformed_are_404_or_422_on_every_route(
    service: Service, owner: httpx.Client
) -> None:
    csrf = page_csrf(owner, "/staff/settings/team")
    routes = id_routes(service)
    paths = {path for _, path, _, _ in routes}
    assert {
        "/staff/conversations/{conversation_id}",
        "/staff/settings/team/{user_id}/deactivate",
        "/staff/settings/tokens/{token_id}/revoke",
        "/staff/webhooks/endpoints/{endpoint_id}/pause",
        "/staff/calendar/syncs/{sync_id}/retry",
        "/api/v1/patients/{patient_id}",
    } <= paths
    for method, path, in_path, in_query in routes:
        for bad in BAD_IDS:
            url = path
            for name in in_path:
                url = url.replace("{" + name + "}", bad)
            url = re.sub(r"\{[^}]+\}", "glow-downtown", url)  # any other (string) parameter
            params = {name: bad for name in in_query} if not in_path else {}
            headers = {"X-CSRF-Token": csrf} if method != "GET" else {}
            response = owner.request(method, url, params=params, headers=headers)
            assert response.status_code in (404, 422), (method, url, bad, response.text[:300])


def test_a_colleague_id_beyond_bigint_in_the_assign_form_is_that_fields_error(
    service: Service, owner: httpx.Client
) -> None:
    _, conversation_id = handed_off(service, 611)
    for bad in (str(2**63), str(2**64), "²", "-3"):
        response = act(owner, conversation_id, "assign", {"assignee": bad})
        assert response.status_code == 400, bad
        assert refused_field(response) == "assignee"


@pytest.mark.parametrize("bad", [str(2**63), "²", "١٢"])
def test_a_booking_link_confirmation_with_a_bad_appointment_id_is_not_found(
    service: Service, bad: str
) -> None:
    link = urlsplit(link_for(service, caller_number(612)))
    response = service.http.get(f"{service.url}{link.path}/confirm/{bad}")
    assert response.status_code == 404, response.text[:300]


# --- the JSON API: cursors and moments ------------------------------------------------------


def _cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_request(response: httpx.Response, name: str) -> str:
    """The message of the 400 about query parameter ``name``, in the 422's shape."""
    assert response.status_code == 400, response.text
    errors = response.json()["detail"]
    messages = [e["msg"] for e in errors if e["loc"] == ["query", name]]
    assert messages, f"no error naming query {name!r} in {errors}"
    return str(messages[0])


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor({"u": "0001-01-01T00:00:00+05:00", "i": 1}),
        _cursor({"u": "9999-12-31T23:00:00-05:00", "i": 1}),
        _cursor({"u": "0001-01-01T00:00:00+00:00", "i": 1}),
        _cursor({"u": "2026-11-24T18:00:00+00:00", "i": 2**64}),
        _cursor({"u": "2026-11-24T18:00:00+00:00", "i": -1}),
        _cursor({"u": "2026-11-24T18:00:00", "i": 1}),
        "not-a-cursor",
        "eyJ1IjoxfQ",  # {"u":1}
        "ü" * 10,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_cursors_out_of_range_or_malformed_are_400s_naming_cursor(
    service: Service, cursor: str
) -> None:
    token = make_token(service, "owner@glow.example")
    response = service.http.get(
        service.url + "/api/v1/conversations", params={"cursor": cursor}, headers=token.headers
    )
    assert "cursor: expected a next_cursor value" in _bad_request(response, "cursor")


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/conversations", "updated_since", "0001-01-01T00:00:00+05:00"),
        ("/conversations", "updated_since", "9999-12-31T23:59:59-05:00"),
        ("/funnel", "until", "0001-01-01"),
        ("/funnel", "since", "0001-01-01"),
        ("/funnel", "until", "9999-12-31"),
    ],
)
def test_moments_out_of_the_databases_range_are_400s(
    service: Service, path: str, name: str, value: str
) -> None:
    token = make_token(service, "owner@glow.example")
    params = {name: value}
    if name == "since":
        params["until"] = "0001-01-05"
    response = service.http.get(
        service.url + "/api/v1" + path, params=params, headers=token.headers
    )
    assert "expected a" in _bad_request(response, name)


def test_an_ics_feed_token_that_is_not_ascii_is_not_found(service: Service) -> None:
    for token in ("ünïcode", "☃" * 24, "%FF"):
        response = service.http.get(
            service.url + "/calendar/glow-downtown/location.ics", params={"token": token}
        )
        assert response.status_code == 404, response.text[:200]


@pytest.mark.parametrize("path", ["/staff/dashboard", "/staff/reports/calls.csv"])
@pytest.mark.parametrize(
    "params", [{"until": "0001-01-01"}, {"since": "0001-01-01", "until": "0001-01-05"}]
)
def test_report_days_out_of_range_are_400s_on_the_staff_pages_too(
    service: Service, owner: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = owner.get(path, params=params)
    assert response.status_code == 400, response.text[:300]
    assert "expected a day between 0002-01-01 and 9998-12-31" in response.text
