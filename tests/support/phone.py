"""A patient's phone in tests: place a missed call, text the spa, read what came back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ringback.models import (
    Conversation,
)
from tests.conftest import Service, wait_for
from tests.twilio_payloads import new_call_sid, new_message_sid, payload


def next_text(service: Service, caller: str, count: int) -> str:
    """Wait until ``caller`` has received ``count`` texts and return the newest body."""
    texts = wait_for(
        lambda: len(texts_to(service, caller)) >= count and texts_to(service, caller),
        what=f"text #{count}",
    )
    return str(texts[count - 1].body)


def conversation(service: Service) -> Conversation:
    return service.scalar(select(Conversation).order_by(Conversation.id.desc()))


FRONT_DESK_TO = "+13105550100"  # glow-downtown rings +13105550101 first


FORWARDED_TO = "+13105550200"  # glow-westside: forwarded-only


def texts_to(service: Service, number: str) -> list[Any]:
    return [m for m in service.twilio.messages if m.to == number]


def miss(
    service: Service, caller: str, *, status: str = "no-answer", to: str = FRONT_DESK_TO
) -> str:
    call_sid = new_call_sid()
    voice = service.post(
        "/twilio/voice", payload("voice_incoming", CallSid=call_sid, From=caller, To=to)
    )
    assert voice.status_code == 200, voice.text
    result = service.post(
        "/twilio/voice/dial-result",
        payload(
            "dial_result_no_answer", CallSid=call_sid, From=caller, To=to, DialCallStatus=status
        ),
    )
    assert result.status_code == 200, result.text
    return call_sid


def text_in(service: Service, caller: str, body: str, **extra: str) -> str:
    message_sid = new_message_sid()
    response = service.post(
        "/twilio/sms",
        payload("sms_inbound", MessageSid=message_sid, From=caller, Body=body, **extra),
    )
    assert response.status_code == 200, response.text
    assert response.text.endswith("<Response />")
    return message_sid
