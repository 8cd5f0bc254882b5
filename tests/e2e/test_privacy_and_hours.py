"""Privacy of logs, and the first text-back's relation to texting hours."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from ringback.logs import JsonFormatter
from ringback.models import Message
from tests.conftest import AFTER_HOURS, Service, settle, wait_for
from tests.support.phone import miss, text_in, texts_to
from tests.twilio_payloads import caller_number


def test_no_full_phone_numbers_or_bodies_in_logs_at_info(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caller = caller_number(90)
    secret = "my lips are swelling after filler and I am worried"
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back")
    text_in(service, caller, secret)
    wait_for(lambda: len(texts_to(service, caller)) >= 2, what="urgent reply")
    settle(0.5)
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    assert any('"event": "textback.sent"' in line for line in lines)
    assert any('"event": "missed_call.detected"' in line for line in lines)
    for line in lines:
        assert caller not in line
        assert caller.removeprefix("+1") not in line
        assert "swelling" not in line
        assert "What treatment" not in line


def test_first_text_back_is_not_held_by_texting_hours(make_service: Callable[..., Service]) -> None:
    def late_window(config: dict[str, Any]) -> None:
        config["locations"][0]["texting_hours"] = "08:00-09:00"

    service = make_service(edit=late_window, now=AFTER_HOURS)
    caller = caller_number(91)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="the immediate text-back")


def test_first_text_back_can_be_held_until_texting_hours(
    make_service: Callable[..., Service],
) -> None:
    def hold(config: dict[str, Any]) -> None:
        config["locations"][0]["hold_textback_outside_texting_hours"] = True

    service = make_service(edit=hold, now=AFTER_HOURS)  # 22:00 in Los Angeles
    caller = caller_number(92)
    miss(service, caller)
    message = wait_for(lambda: service.scalar(select(Message)), what="queued text-back")
    settle(1.0)
    assert texts_to(service, caller) == []
    assert message.status == "pending"
    # Held until 08:00 the next morning, Los Angeles time (16:00 UTC).
    assert message.send_after.isoformat() == "2026-11-25T16:00:00+00:00"
