"""The contract checker itself: typed rules from both description formats, and where the
descriptions are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback.fakes.contract import SPEC_DIR_ENV, SpecNotFoundError, default_spec_dir
from ringback.fakes.discovery import contract_from_discovery, google_calendar_contract
from ringback.fakes.openapi import contract_from_openapi, square_contract

TINY_OPENAPI = {
    "openapi": "3.0.0",
    "info": {"title": "Tiny"},
    "paths": {
        "/v1/things/{thing_id}": {
            "put": {
                "operationId": "PutThing",
                "parameters": [
                    {
                        "name": "thing_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 4},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    },
                },
            }
        }
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parent": {"$ref": "#/components/schemas/Thing", "nullable": True},
                    "id": {"type": "string", "readOnly": True},
                },
            }
        }
    },
}


def test_the_spec_dir_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path))
    assert default_spec_dir() == tmp_path
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(SpecNotFoundError, match=SPEC_DIR_ENV):
        default_spec_dir()


def test_the_default_spec_dir_is_the_shared_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEC_DIR_ENV, raising=False)
    assert (default_spec_dir() / "square_api.json").is_file()


def test_openapi_rules_resolve_self_references_nullable_and_read_only() -> None:
    contract = contract_from_openapi(TINY_OPENAPI)
    good = contract.check(
        "PUT", "/v1/things/ab", {}, "application/json", b'{"name": "a", "parent": {"name": "b"}}'
    )
    assert good.violations == []
    bad = contract.check(
        "PUT",
        "/v1/things/abcdef",
        {},
        "application/json",
        b'{"parent": {"name": 1, "id": "x"}, "extra": true}',
    )
    messages = [violation.message for violation in bad.violations]
    assert any("path parameter 'thing_id'" in m and "longer than 4" in m for m in messages)
    assert any("body.parent.name" in m and "not a string" in m for m in messages)
    assert any("body.parent.id is read-only" in m for m in messages)
    assert any("body.extra is not a field" in m for m in messages)
    assert any("body.name is required" in m for m in messages)


def test_a_body_must_be_json() -> None:
    contract = contract_from_openapi(TINY_OPENAPI)
    checked = contract.check("PUT", "/v1/things/ab", {}, "text/plain", b"name=a")
    assert [v.kind for v in checked.violations] == ["header"]
    missing = contract.check("PUT", "/v1/things/ab", {}, "application/json", b"")
    assert "the JSON body is missing" in missing.violations[0].message


def test_discovery_rules_know_int64_strings_repeats_and_encoded_ids() -> None:
    contract = google_calendar_contract()
    watch = contract.check(
        "POST",
        "/calendar/v3/calendars/clinic%40example.com/events/watch",
        {},
        "application/json",
        b'{"id": "c", "type": "web_hook", "address": "https://a.test/p", "expiration": "soon"}',
    )
    assert watch.path_values == {"calendarId": "clinic@example.com"}
    assert [v.field for v in watch.violations] == ["expiration"]
    twice = contract.check(
        "DELETE",
        "/calendar/v3/calendars/primary/events/abcde",
        {"sendUpdates": ["none", "all"]},
        None,
        b"",
    )
    assert "sent 2 times" in twice.violations[0].message
    repeated = contract.check(
        "GET",
        "/calendar/v3/calendars/primary/events",
        {"privateExtendedProperty": ["a=1", "b=2"]},
        None,
        b"",
    )
    assert repeated.violations == []


def test_a_document_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not a discovery document"):
        contract_from_discovery({"paths": {}})
    with pytest.raises(ValueError, match="not an OpenAPI document"):
        contract_from_openapi({"resources": {}})


def test_every_operation_the_fakes_serve_is_in_the_descriptions() -> None:
    square_ids = {operation.operation_id for operation in square_contract().operations}
    google_ids = {operation.operation_id for operation in google_calendar_contract().operations}
    assert {
        "CreateBooking",
        "UpdateBooking",
        "CancelBooking",
        "SearchAvailability",
        "ListBookings",
        "SearchCustomers",
        "CreateCustomer",
        "ListLocations",
        "SearchTeamMembers",
        "ListCatalog",
    } <= square_ids
    assert {
        "calendar.events.insert",
        "calendar.events.patch",
        "calendar.events.delete",
        "calendar.events.list",
        "calendar.events.watch",
        "calendar.freebusy.query",
        "calendar.channels.stop",
    } <= google_ids
