"""Point a provider's phone numbers at this install: what `ringback twilio connect` does.

For each chosen number it works out which webhook settings differ from this install's
(voice URL, call status callback, messaging URL, their methods), applies the change in
one update, reads the number back and says whether it now points here. A number on a SIP
trunk or with a TwiML application attached is left alone and reported: the provider
ignores the number's own URLs then, and the API's contract (an application sid of 34
characters) has no way to detach one, so the operator does it in the console.

``ringback twilio connect`` and the owners' settings page (Connect phone numbers) both
come here: :func:`client_for` opens the provider's API, :func:`choose` checks which
numbers may be connected, :func:`connect` (or, for a preview, :func:`plan`) does it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ringback.config import Location, Locations, Settings
from ringback.phones import InvalidPhoneNumber, normalize_e164
from ringback.telephony.twilio_rest import CompatibleMessagesClient, IncomingNumber

PROVIDERS = ("twilio", "signalwire")
LABELS = {"twilio": "Twilio", "signalwire": "SignalWire"}


class ConnectError(ValueError):
    """Connecting cannot start; ``field`` names the setting or input that was wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


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


def connect_blocked(number: IncomingNumber) -> str | None:
    """Why this number cannot be pointed here by its URLs, or None."""
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
        problem = connect_blocked(number)
        if problem is not None:
            outcomes.append(Outcome(number, (), applied=False, verified=False, problem=problem))
            continue
        changes = plan(number, wanted)
        if not changes or dry_run:
            outcomes.append(Outcome(number, changes, applied=False, verified=not changes))
            continue
        client.update_number(number.sid, {change.field: change.after for change in changes})
        after = client.fetch_number(number.sid)
        verified = not plan(after, wanted) and connect_blocked(after) is None
        outcomes.append(Outcome(after, changes, applied=True, verified=verified))
    return outcomes


def client_for(provider: str, settings: Settings) -> CompatibleMessagesClient:
    """The provider's REST client from the environment's credentials (close it after)."""
    if provider == "twilio":
        from ringback.telephony.twilio_rest import TwilioRestClient

        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ConnectError(
                "environment",
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set (Twilio console)",
            )
        return TwilioRestClient(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            api_base_url=settings.twilio_api_base_url,
        )
    if provider != "signalwire":
        raise ConnectError("provider", f"expected twilio or signalwire, got {provider!r}")
    from ringback.telephony.senders import SIGNALWIRE_SMS_STATUS_PATH
    from ringback.telephony.signalwire_rest import SignalWireRestClient

    if not (
        settings.signalwire_project_id
        and settings.signalwire_api_token
        and settings.signalwire_space_url
    ):
        raise ConnectError(
            "environment",
            "SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE_URL must be set",
        )
    return SignalWireRestClient(
        settings.signalwire_project_id,
        settings.signalwire_api_token,
        api_base_url=settings.signalwire_api_base_url,
        status_callback_url=settings.public_url + SIGNALWIRE_SMS_STATUS_PATH,
    )


def missing_from_account(
    provider: str, on_account: Mapping[str, IncomingNumber], locations: Locations
) -> list[Location]:
    """The provider's locations whose number is not on the account."""
    return [
        loc for loc in locations if loc.provider == provider and loc.phone_number not in on_account
    ]


def choose(
    provider: str,
    requested: Iterable[str] | None,
    on_account: Mapping[str, IncomingNumber],
    locations: Locations,
) -> list[IncomingNumber]:
    """The numbers to connect: those ``requested`` (each must be on the account and be a
    location's number on this provider, or its calls would be refused), or by default
    every location's number that is on the account."""
    label = LABELS.get(provider, provider)
    asked = [raw for raw in requested or [] if raw.strip()]
    if not asked:
        chosen = [
            on_account[loc.phone_number]
            for loc in locations
            if loc.provider == provider and loc.phone_number in on_account
        ]
        if not chosen:
            raise ConnectError(
                "number", f"none of the locations' numbers is on this {label} account"
            )
        return chosen
    chosen = []
    for raw in asked:
        try:
            e164 = normalize_e164(raw)
        except InvalidPhoneNumber:
            raise ConnectError("number", f"expected a phone number, got {raw!r}") from None
        if e164 not in on_account:
            raise ConnectError("number", f"{e164} is not on this {label} account")
        location = locations.by_number(e164)
        if location is None or location.provider != provider:
            raise ConnectError(
                "number",
                f"{e164} is not the number of a {provider} location in the locations file; "
                "add it there first (calls to it would be refused)",
            )
        if on_account[e164] not in chosen:
            chosen.append(on_account[e164])
    return chosen
