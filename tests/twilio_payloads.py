"""Twilio webhook payloads from the recorded examples in tests/fixtures/twilio/."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"


def payload(name: str, **overrides: str) -> dict[str, str]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    data.pop("_comment", None)
    data.update(overrides)
    return {k: str(v) for k, v in data.items()}


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def new_message_sid() -> str:
    return "SM" + uuid.uuid4().hex


def caller_number(index: int) -> str:
    """Distinct valid US mobile-looking numbers for tests (555-01xx is reserved for fiction)."""
    return f"+1213555{index % 10000:04d}"


# SignalWire's compatibility webhooks post Twilio's fields; its ids are UUIDs (calls,
# messages, and the project as AccountSid).
_SIGNALWIRE_IDS = ("CallSid", "DialCallSid", "MessageSid", "SmsSid", "SmsMessageSid")


def new_signalwire_sid() -> str:
    return str(uuid.uuid4())


def signalwire_payload(name: str, project_id: str, **overrides: str) -> dict[str, str]:
    """A recorded Twilio example as SignalWire would post it (one fresh id per payload)."""
    data = payload(name)
    data["AccountSid"] = project_id
    sid = new_signalwire_sid()
    for key in _SIGNALWIRE_IDS:
        if key in data:
            data[key] = new_signalwire_sid() if key == "DialCallSid" else sid
    data.update(overrides)
    return data
