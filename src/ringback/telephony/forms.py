"""Webhook forms, validated at the edge. Unknown extra fields are kept, not refused.

Twilio and SignalWire post the same fields; only the shape of their ids differs (Twilio's
``CA``/``SM``/``AC`` SIDs, SignalWire's UUIDs), so the provider is passed as validation
context (see :func:`parse_form`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ringback.phones import InvalidPhoneNumber, normalize_e164

CALL_SID = r"^CA[0-9a-fA-F]{32}$"
MESSAGE_SID = r"^(SM|MM)[0-9a-fA-F]{32}$"
ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"
# SignalWire names calls, messages and projects (its AccountSid) with UUIDs.
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
SID_PATTERNS: Mapping[str, Mapping[str, str]] = {
    "twilio": {"CallSid": CALL_SID, "MessageSid": MESSAGE_SID, "AccountSid": ACCOUNT_SID},
    "signalwire": {"CallSid": UUID, "MessageSid": UUID, "AccountSid": UUID},
}


class FormError(ValueError):
    """A field of a webhook form is missing or malformed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class _Form(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    AccountSid: str | None = None

    @field_validator("AccountSid", "CallSid", "MessageSid", check_fields=False)
    @classmethod
    def _sid(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        provider = (info.context or {}).get("provider", "twilio")
        pattern = SID_PATTERNS[provider][str(info.field_name)]
        if not re.match(pattern, value):
            raise ValueError(f"{value[:40]!r} is not a {provider} id matching {pattern}")
        return value


def _e164(value: str) -> str:
    try:
        return normalize_e164(value)
    except InvalidPhoneNumber as exc:
        raise ValueError("expected an E.164 phone number like +13105550100") from exc


F = TypeVar("F", bound="_Form")


class VoiceForm(_Form):
    CallSid: str
    From: str = Field(default="", max_length=64)
    To: str

    @field_validator("To")
    @classmethod
    def _to(cls, value: str) -> str:
        return _e164(value)


class DialResultForm(VoiceForm):
    DialCallStatus: Literal["completed", "answered", "busy", "no-answer", "failed", "canceled"]


class CallStatusForm(VoiceForm):
    CallStatus: Literal[
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
    ]


class SmsForm(_Form):
    MessageSid: str
    From: str = Field(min_length=1, max_length=64)
    To: str
    Body: str = Field(default="", max_length=1600)
    OptOutType: str | None = None

    @field_validator("To")
    @classmethod
    def _to(cls, value: str) -> str:
        return _e164(value)


class SmsStatusForm(_Form):
    MessageSid: str
    MessageStatus: Literal[
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "canceled",
        "receiving",
        "received",
        "partially_delivered",
    ]
    From: str
    To: str = ""
    ErrorCode: str | None = None

    @field_validator("From")
    @classmethod
    def _from(cls, value: str) -> str:
        return _e164(value)

    @field_validator("ErrorCode")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"\d{1,6}", value):
            raise ValueError("expected a numeric error code")
        return value


def parse_form(model: type[F], data: dict[str, Any], *, provider: str = "twilio") -> F:
    """Validate ``data`` as ``model`` or raise :class:`FormError` naming the first bad field."""
    try:
        return model.model_validate(data, context={"provider": provider})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "form"
        problem = (
            "is required"
            if error["type"] == "missing"
            else error["msg"].removeprefix("Value error, ")
        )
        raise FormError(field, problem) from exc
