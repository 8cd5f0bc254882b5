"""Screening a missed call: a table of facts and the outcome each must give."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ringback.missed_calls.screening import CallerFacts, screen

NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
CLEAN = CallerFacts(
    anonymous=False,
    number="+13105550123",
    own_number=False,
    blocklisted=False,
    opted_out=False,
    wrong_number=False,
    not_textable=False,
    open_conversation_id=None,
    last_textback_at=None,
    upcoming_appointment_at=None,
)


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "texted"),
        ({"anonymous": True, "number": None}, "anonymous"),
        ({"number": None}, "invalid_number"),
        ({"own_number": True}, "own_number"),
        ({"blocklisted": True}, "blocklisted"),
        ({"opted_out": True}, "opted_out"),
        ({"wrong_number": True}, "wrong_number"),
        ({"not_textable": True}, "not_textable"),
        ({"open_conversation_id": 7}, "joined_conversation"),
        ({"last_textback_at": NOW - timedelta(hours=3)}, "cooldown"),
        ({"last_textback_at": NOW - timedelta(hours=25)}, "texted"),
        ({"upcoming_appointment_at": NOW + timedelta(hours=20)}, "appointment_textback"),
        # Consent beats everything after it: an opted-out caller with an appointment is not texted.
        ({"opted_out": True, "upcoming_appointment_at": NOW}, "opted_out"),
        ({"own_number": True, "opted_out": True}, "own_number"),
    ],
)
def test_outcomes(changes: dict[str, object], outcome: str) -> None:
    decision = screen(replace(CLEAN, **changes), now=NOW, cooldown_hours=24)  # type: ignore[arg-type]
    assert decision.outcome == outcome
    assert decision.detail


def test_landline_lookup_only_when_everything_else_says_text() -> None:
    calls: list[str] = []

    def landline() -> str | None:
        calls.append("x")
        return "landline"

    assert screen(CLEAN, now=NOW, cooldown_hours=24, line_type=landline).outcome == "landline"
    blocked = replace(CLEAN, opted_out=True)
    assert screen(blocked, now=NOW, cooldown_hours=24, line_type=landline).outcome == "opted_out"
    assert len(calls) == 1


def test_unknown_line_type_never_drops_the_text() -> None:
    assert screen(CLEAN, now=NOW, cooldown_hours=24, line_type=lambda: None).texts
    assert screen(CLEAN, now=NOW, cooldown_hours=24, line_type=lambda: "mobile").texts
