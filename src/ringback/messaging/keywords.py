"""Carrier keywords: whole-message STOP/START/HELP, as Twilio recognises them."""

from __future__ import annotations

import re
from typing import Literal

Keyword = Literal["stop", "start", "help"]

STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
START_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info"})

_TRIM = re.compile(r"^[\s\"'.!?,;:()\[\]-]+|[\s\"'.!?,;:()\[\]-]+$")


def keyword(body: str) -> Keyword | None:
    """The carrier keyword a whole message is, if any (case and edge punctuation ignored)."""
    word = _TRIM.sub("", body).lower()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def is_answer(body: str) -> bool:
    """ "Yes" is an opt-in keyword only for someone who opted out: to anyone else it is an
    answer to the conversation (START and UNSTOP are never answers)."""
    return _TRIM.sub("", body).lower() == "yes"


def from_opt_out_type(value: str | None) -> Keyword | None:
    """Twilio's Advanced Opt-Out adds ``OptOutType`` (STOP, START, HELP) to the webhook."""
    if not value:
        return None
    lowered = value.strip().lower()
    return lowered if lowered in ("stop", "start", "help") else None  # type: ignore[return-value]
