"""Point a provider's phone numbers at this install: what `ringback twilio connect` does.

For each chosen number it works out which webhook settings differ from this install's
(voice URL, call status callback, messaging URL, their methods), applies the change in
one update, reads the number back and says whether it now points here. A number on a SIP
trunk or with a TwiML application attached is left alone and reported: the provider
ignores the number's own URLs then, and the API's contract (an application sid of 34
characters) has no way to detach one, so the operator does it in the console.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ringback.telephony.twilio_rest import IncomingNumber


class NumbersClient(Protocol):
    """The provider's phone-numbers API (Twilio's or SignalWire's compatibility API)."""

    def list_numbers(self) -> list[IncomingNumber]: ...

    def fetch_number(self, sid: str) -> IncomingNumber: ...

    def update_number(self, sid: str, fields: Mapping[str, str]) -> IncomingNumber: ...


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one number."""

    number: IncomingNumber
    changes: tuple[Change, ...]
    applied: bool
    verified: bool
    problem: str | None = None

    @property
    def status(self) -> str:
        if self.problem is not None:
            return "not changed: " + self.problem
        if not self.changes:
            return "already points here"
        if not self.applied:
            return "would change (dry run)"
        return "changed and verified" if self.verified else "changed, but reads back different"


def webhook_settings(public_url: str, prefix: str) -> dict[str, str]:
    """The settings a number needs to send its calls and texts to this install."""
    base = public_url.rstrip("/") + prefix
    return {
        "VoiceUrl": f"{base}/voice",
        "VoiceMethod": "POST",
        "StatusCallback": f"{base}/voice/status",
        "StatusCallbackMethod": "POST",
        "SmsUrl": f"{base}/sms",
        "SmsMethod": "POST",
    }


def plan(number: IncomingNumber, wanted: Mapping[str, str]) -> tuple[Change, ...]:
    """The changes that make ``number`` point at ``wanted``; empty when it already does."""
    changes = [
        Change(name, number.field(name), value)
        for name, value in wanted.items()
        if number.field(name) != value
    ]
    return tuple(changes)


def _blocked(number: IncomingNumber) -> str | None:
    if number.trunk_sid:
        return f"on SIP trunk {number.trunk_sid}; the trunk routes its calls"
    for kind, sid in (
        ("voice", number.voice_application_sid),
        ("messaging", number.sms_application_sid),
    ):
        if sid:
            return (
                f"{kind} application {sid} is attached, so the number's own URLs are ignored; "
                "choose 'Webhook' instead of the application on the number's page in the "
                "console, then run this again"
            )
    return None


def connect(
    client: NumbersClient,
    numbers: Iterable[IncomingNumber],
    wanted: Mapping[str, str],
    *,
    dry_run: bool = False,
) -> list[Outcome]:
    """Apply :func:`plan` to each number, then read it back to verify."""
    outcomes = []
    for number in numbers:
        problem = _blocked(number)
        if problem is not None:
            outcomes.append(Outcome(number, (), applied=False, verified=False, problem=problem))
            continue
        changes = plan(number, wanted)
        if not changes or dry_run:
            outcomes.append(Outcome(number, changes, applied=False, verified=not changes))
            continue
        client.update_number(number.sid, {change.field: change.after for change in changes})
        after = client.fetch_number(number.sid)
        verified = not plan(after, wanted) and _blocked(after) is None
        outcomes.append(Outcome(after, changes, applied=True, verified=verified))
    return outcomes
