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
