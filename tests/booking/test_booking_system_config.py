"""Choosing a location's booking system in the locations file, through ``check-config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ringback.booking.systems import CAPABILITIES
from ringback.integrations.google_calendar import GoogleCalendarBookingSystem, StaticAccessToken
from ringback.integrations.square import SquareBookingSystem
from tests.support.cli import DEMO, ringback


def _write(tmp_path: Path, edit: dict[str, Any]) -> Path:
    config = yaml.safe_load(DEMO.read_text())
    glow = config["locations"][0]
    glow.pop("booking_url")
    glow["providers"] = [
        {"id": "maya", "name": "Maya", "services": ["Botox", "Filler"]},
        {"id": "lena", "name": "Lena", "services": ["Botox"]},
    ]
    glow.update(edit)
    path = tmp_path / "locations.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_google_calendar_location_is_described_with_what_it_can_do(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "booking_system": "google_calendar",
            "google_calendar": {
                "default_calendar": "front@glow.example",
                "calendars": {"maya": "maya@glow.example"},
            },
        },
    )
    result = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert (
        "  booking system google_calendar: busy-only (Ringback computes slots), no services "
        "or staff, push changes, incremental sync" in result.stdout
    )


def test_square_location_is_described_and_every_mapping_is_checked(tmp_path: Path) -> None:
    square = {
        "location_id": "L123",
        "team_members": {"maya": "TM1", "lena": "TM2"},
        "services": {"Botox": "V1", "Filler": "V2"},
    }
    path = _write(tmp_path, {"booking_system": "square", "square": square})
    result = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert (
        "  booking system square: computes slots itself, knows services and staff, push "
        "changes, no incremental sync (re-reads)" in result.stdout
    )
    missing_member = {**square, "team_members": {"maya": "TM1"}}
    path = _write(tmp_path, {"booking_system": "square", "square": missing_member})
    bad = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
    assert bad.returncode == 2
    assert (
        "locations[0](glow-downtown): square.team_members: provider 'lena' has no team member "
        "id (ringback square map lists them)" in bad.stderr
    )
    missing_service = {**square, "services": {"Botox": "V1"}}
    path = _write(tmp_path, {"booking_system": "square", "square": missing_service})
    bad = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
    assert "square.services: service 'Filler' has no service variation id" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_booking_system_without_its_settings_is_refused(tmp_path: Path) -> None:
    cases = [
        (
            {"booking_system": "google_calendar"},
            "booking_system google_calendar: the google_calendar key is missing",
        ),
        (
            {"booking_system": "google_calendar", "google_calendar": {"calendars": {"maya": "m"}}},
            "google_calendar.calendars: provider 'lena' has no calendar (add it, or set "
            "google_calendar.default_calendar)",
        ),
        (
            {"square": {"location_id": "L1"}},
            "square: given, but booking_system is 'ringback' (set it to square)",
        ),
        ({"booking_system": "caldav"}, "booking_system caldav: no CalDAV calendar"),
        ({"booking_system": "outlook"}, "booking_system: Input should be 'ringback'"),
        (
            {"booking_system": "square", "square": {"location_id": "L1", "access_token_env": "x"}},
            "square.access_token_env: expected an environment variable name",
        ),
    ]
    for edit, message in cases:
        path = _write(tmp_path, edit)
        result = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
        assert result.returncode == 2, edit
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_the_described_capabilities_are_the_adapters_own() -> None:
    google = GoogleCalendarBookingSystem(StaticAccessToken("t"))
    square = SquareBookingSystem("t", "L1")
    try:
        assert CAPABILITIES["google_calendar"] == google.capabilities
        assert CAPABILITIES["square"] == square.capabilities
    finally:
        google.close()
        square.close()
