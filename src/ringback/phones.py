"""Phone numbers: E.164 validation at the edge, and redaction for logs."""

from __future__ import annotations

import phonenumbers

# What carriers and Twilio put in ``From`` when the caller withholds their number.
# Twilio documents "+266696687" (spells ANONYMOUS on a keypad) and plain words.
ANONYMOUS_CALLER_IDS = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "unavailable",
        "blocked",
        "+266696687",
        "266696687",
        "+7378742833",  # RESTRICTED
        "+8656696",  # UNKNOWN
        "+2562533",  # BLOCKED
        "+86282452253",  # UNAVAILABLE
    }
)


class InvalidPhoneNumber(ValueError):
    """Not a dialable phone number in international form."""


def normalize_e164(raw: str, default_region: str = "US") -> str:
    """Return ``raw`` as E.164 (``+13105550100``) or raise :class:`InvalidPhoneNumber`."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("empty")
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{redact(text)} cannot be parsed") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{redact(text)} is not a valid number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def is_anonymous(raw: str) -> bool:
    return raw.strip().lower() in ANONYMOUS_CALLER_IDS


def redact(number: str | None) -> str:
    """Keep only the last two digits: enough to tell calls apart in a log, not to dial."""
    if not number:
        return "-"
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 2:
        return "*" * len(number)
    return ("+" if number.startswith("+") else "") + "*" * (len(digits) - 2) + "".join(digits[-2:])


def display(number: str | None) -> str:
    """How a person reads the number: national format in North America, else international."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return str(phonenumbers.format_number(parsed, style))
