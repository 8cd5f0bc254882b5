"""Is this missed call recoverable, and what should we send? A pure decision.

The order matters and is the documented order of reasons: a caller we cannot text at all
is screened out before any question of which message to send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Outcome = Literal[
    "texted",
    "appointment_textback",
    "joined_conversation",
    "cooldown",
    "anonymous",
    "invalid_number",
    "own_number",
    "blocklisted",
    "opted_out",
    "wrong_number",
    "not_textable",
    "landline",
]

TEXTING_OUTCOMES: frozenset[str] = frozenset({"texted", "appointment_textback"})


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """What we know about the caller when the miss is screened."""

    anonymous: bool
    number: str | None  # E.164 when the caller id was a valid number
    own_number: bool
    blocklisted: bool
    opted_out: bool
    wrong_number: bool
    not_textable: bool
    open_conversation_id: int | None
    last_textback_at: datetime | None
    upcoming_appointment_at: datetime | None


@dataclass(frozen=True, slots=True)
class Screening:
    outcome: Outcome
    detail: str

    @property
    def texts(self) -> bool:
        return self.outcome in TEXTING_OUTCOMES


def screen(
    facts: CallerFacts,
    *,
    now: datetime,
    cooldown_hours: float,
    line_type: Callable[[], str | None] | None = None,
) -> Screening:
    """Decide the outcome for one missed call.

    ``line_type`` is only called (it may cost a network lookup) when everything else says
    text; it returns None when the line type is unknown, which never blocks the text.
    """
    if facts.anonymous:
        return Screening("anonymous", "caller id withheld")
    if facts.number is None:
        return Screening("invalid_number", "caller id is not a valid phone number")
    if facts.own_number:
        return Screening("own_number", "the location's own or a staff number")
    if facts.blocklisted:
        return Screening("blocklisted", "caller is on the location's blocklist")
    if facts.opted_out:
        return Screening("opted_out", "caller opted out of texts")
    if facts.wrong_number:
        return Screening("wrong_number", "caller said this was a wrong number")
    if facts.not_textable:
        return Screening("not_textable", "number cannot receive texts")
    if facts.open_conversation_id is not None:
        return Screening(
            "joined_conversation", f"joined open conversation {facts.open_conversation_id}"
        )
    if facts.last_textback_at is not None:
        hours = (now - facts.last_textback_at).total_seconds() / 3600
        if hours < cooldown_hours:
            return Screening("cooldown", f"texted back {hours:.1f} h ago")
    if line_type is not None:
        kind = line_type()
        if kind == "landline":
            return Screening("landline", "Lookup says landline")
    if facts.upcoming_appointment_at is not None:
        return Screening("appointment_textback", "caller has an appointment soon")
    return Screening("texted", "recoverable")
