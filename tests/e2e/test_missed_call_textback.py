"""Missed call -> text-back through the public edge: signed webhooks over HTTP to the real
app, a real queue and database, and the fake Twilio checking every REST request."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from ringback.models import Appointment, Call, Conversation, Message, Patient, ProviderEvent
from tests.conftest import AFTER_HOURS, Service, settle, wait_for
from tests.support.phone import FORWARDED_TO, FRONT_DESK_TO, miss, texts_to
from tests.twilio_payloads import caller_number, new_call_sid, payload


def test_incoming_call_rings_the_front_desk_with_the_location_timeout(service: Service) -> None:
    response = service.post("/twilio/voice", payload("voice_incoming", CallSid=new_call_sid()))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    body = response.text
    assert '<Dial action="' + service.url + '/twilio/voice/dial-result"' in body
    assert 'timeout="18"' in body
    assert "<Number>+13105550101</Number>" in body


def test_no_answer_texts_back_once_with_branding_and_opt_out(service: Service) -> None:
    caller = caller_number(1)
    call_sid = miss(service, caller)
    text = wait_for(lambda: texts_to(service, caller), what="the text-back")[0]
    assert text.from_ == FRONT_DESK_TO
    assert text.body.startswith("Hi, this is Glow Med Spa - sorry we missed your call!")
    assert text.body.endswith("Reply STOP to opt out.")
    assert text.status_callback == service.url + "/twilio/sms/status"
    message = wait_for(
        lambda: service.scalar(select(Message).where(Message.provider_sid == text.sid)),
        what="the sid recorded",
    )
    assert message.kind == "textback"
    assert message.status == "queued"
    call = service.scalar(select(Call).where(Call.call_sid == call_sid))
    assert (call.outcome, call.miss_reason, call.screening) == ("missed", "no_answer", "texted")
    assert call.conversation_id == message.conversation_id
    settle()
    assert len(texts_to(service, caller)) == 1


@pytest.mark.parametrize(
    ("dial_status", "reason"),
    [
        ("busy", "staff_busy"),
        ("no-answer", "no_answer"),
        ("canceled", "caller_hung_up"),
        ("failed", "no_answer"),
    ],
)
def test_each_dial_miss_records_why(service: Service, dial_status: str, reason: str) -> None:
    caller = caller_number(10)
    call_sid = miss(service, caller, status=dial_status)
    wait_for(lambda: texts_to(service, caller), what="the text-back")
    call = service.scalar(select(Call).where(Call.call_sid == call_sid))
    assert call.miss_reason == reason


def test_answered_call_is_not_a_miss(service: Service) -> None:
    caller = caller_number(2)
    call_sid = miss(service, caller, status="completed")
    wait_for(
        lambda: service.scalar(select(Call.outcome).where(Call.call_sid == call_sid)) == "answered",
        what="answered outcome",
    )
    service.post(
        "/twilio/voice/status", payload("call_status_completed", CallSid=call_sid, From=caller)
    )
    settle()
    assert texts_to(service, caller) == []


def test_status_callback_is_the_backstop_for_a_call_with_no_dial_result(service: Service) -> None:
    caller = caller_number(3)
    call_sid = new_call_sid()
    service.post("/twilio/voice", payload("voice_incoming", CallSid=call_sid, From=caller))
    response = service.post(
        "/twilio/voice/status", payload("call_status_completed", CallSid=call_sid, From=caller)
    )
    assert response.status_code == 204
    wait_for(lambda: texts_to(service, caller), what="the backstop text-back")
    call = service.scalar(select(Call).where(Call.call_sid == call_sid))
    assert call.miss_reason == "caller_hung_up"


def test_forwarded_only_location_greets_and_texts(service: Service) -> None:
    caller = caller_number(4)
    response = service.post(
        "/twilio/voice",
        payload("voice_incoming", CallSid=new_call_sid(), From=caller, To=FORWARDED_TO),
    )
    assert "<Dial" not in response.text
    assert "<Say>Thanks for calling Glow Med Spa Westside." in response.text
    assert "<Hangup />" in response.text
    text = wait_for(lambda: texts_to(service, caller), what="text-back")[0]
    assert text.from_ == FORWARDED_TO


def test_after_hours_skip_ring_treats_the_call_as_missed(
    make_service: Callable[..., Service],
) -> None:
    def skip(config: dict[str, Any]) -> None:
        config["locations"][0]["after_hours_skip_ring"] = True

    service = make_service(edit=skip, now=AFTER_HOURS)
    caller = caller_number(5)
    call_sid = new_call_sid()
    response = service.post(
        "/twilio/voice", payload("voice_incoming", CallSid=call_sid, From=caller)
    )
    assert "<Dial" not in response.text
    assert "closed right now" in response.text
    wait_for(lambda: texts_to(service, caller), what="after-hours text-back")
    call = service.scalar(select(Call).where(Call.call_sid == call_sid))
    assert (call.miss_reason, call.after_hours, call.mode) == ("after_hours", True, "after_hours")


def test_after_hours_without_skip_still_rings_and_records_after_hours(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(now=AFTER_HOURS)
    caller = caller_number(6)
    call_sid = new_call_sid()
    response = service.post(
        "/twilio/voice", payload("voice_incoming", CallSid=call_sid, From=caller)
    )
    assert "<Dial" in response.text
    service.post(
        "/twilio/voice/dial-result", payload("dial_result_no_answer", CallSid=call_sid, From=caller)
    )
    wait_for(lambda: texts_to(service, caller), what="text-back")
    assert (
        service.scalar(select(Call.miss_reason).where(Call.call_sid == call_sid)) == "after_hours"
    )


def test_same_webhook_replayed_ten_times_and_ten_concurrent_copies_give_one_text(
    service: Service,
) -> None:
    caller = caller_number(7)
    call_sid = new_call_sid()
    service.post("/twilio/voice", payload("voice_incoming", CallSid=call_sid, From=caller))
    params = payload("dial_result_no_answer", CallSid=call_sid, From=caller)
    for _ in range(10):
        assert service.post("/twilio/voice/dial-result", params).status_code == 200
    with ThreadPoolExecutor(10) as pool:
        codes = list(
            pool.map(
                lambda _: service.post("/twilio/voice/dial-result", params).status_code, range(10)
            )
        )
    assert codes == [200] * 10
    wait_for(lambda: texts_to(service, caller), what="text-back")
    settle(1.0)
    assert len(texts_to(service, caller)) == 1
    assert (
        service.scalar(
            select(func.count())
            .select_from(ProviderEvent)
            .where(ProviderEvent.kind == "dial_result")
        )
        == 1
    )


def test_concurrent_misses_from_one_caller_open_one_thread_and_one_text(service: Service) -> None:
    caller = caller_number(8)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: miss(service, caller), range(6)))
    wait_for(lambda: texts_to(service, caller), what="text-back")
    wait_for(
        lambda: (
            service.scalar(
                select(func.count()).select_from(Call).where(Call.screening.is_not(None))
            )
            == 6
        ),
        what="all six screened",
    )
    settle()
    assert len(texts_to(service, caller)) == 1
    assert service.scalar(select(func.count()).select_from(Conversation)) == 1
    outcomes = sorted(service.rows(select(Call.screening)))
    assert outcomes == ["joined_conversation"] * 5 + ["texted"]


def test_repeat_call_joins_the_open_conversation(service: Service) -> None:
    caller = caller_number(9)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="first text-back")
    second = miss(service, caller)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == second)),
        what="second screened",
    )
    assert (
        service.scalar(select(Call.screening).where(Call.call_sid == second))
        == "joined_conversation"
    )
    settle()
    assert len(texts_to(service, caller)) == 1


@pytest.mark.parametrize(
    ("caller", "outcome"),
    [
        ("anonymous", "anonymous"),
        ("+266696687", "anonymous"),
        ("Restricted", "anonymous"),
        ("12345", "invalid_number"),
        ("+13105550101", "own_number"),  # the front desk calling its own line
        ("+13105550102", "own_number"),  # a staff alert number
    ],
)
def test_unrecoverable_callers_are_screened_out_with_a_reason(
    service: Service, caller: str, outcome: str
) -> None:
    call_sid = miss(service, caller)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == call_sid)),
        what="screening",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == call_sid)) == outcome
    settle(0.3)
    assert service.twilio.messages == []


def test_blocklisted_caller_is_not_texted(make_service: Callable[..., Service]) -> None:
    blocked = caller_number(11)

    def block(config: dict[str, Any]) -> None:
        config["locations"][0]["blocklist"] = [blocked]

    service = make_service(edit=block)
    call_sid = miss(service, blocked)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == call_sid)),
        what="screened",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == call_sid)) == "blocklisted"
    assert service.twilio.messages == []


def test_caller_with_an_appointment_in_48h_gets_the_appointment_message(service: Service) -> None:
    caller = caller_number(12)
    now = service.clock()
    with service.db() as session:
        patient = Patient(location_id="glow-downtown", phone=caller, created_at=now, updated_at=now)
        session.add(patient)
        session.flush()
        session.add(
            Appointment(
                location_id="glow-downtown",
                patient_id=patient.id,
                service="Botox",
                starts_at=now + timedelta(hours=26),
                ends_at=now + timedelta(hours=26, minutes=30),
            )
        )
        session.commit()
    miss(service, caller)
    text = wait_for(lambda: texts_to(service, caller), what="text-back")[0]
    # 2026-11-25 20:00 UTC is Wednesday Nov 25 at 12:00 PM in Los Angeles.
    assert "Are you calling about your appointment on Wed Nov 25 at 12:00pm?" in text.body


def test_landline_skipped_when_lookup_says_so_and_lookup_cached(
    make_service: Callable[..., Service],
) -> None:
    def landlines(config: dict[str, Any]) -> None:
        config["locations"][0]["skip_landlines"] = True

    service = make_service(edit=landlines)
    landline, mobile = caller_number(13), caller_number(14)
    service.twilio.line_types[landline] = "landline"
    first = miss(service, landline)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == first)),
        what="screened",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == first)) == "landline"
    miss(service, mobile)
    wait_for(lambda: texts_to(service, mobile), what="mobile text-back")
    assert texts_to(service, landline) == []
    second = miss(service, landline)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == second)),
        what="screened",
    )
    lookups = [r for r in service.twilio.requests if r.path.endswith(landline)]
    assert len(lookups) == 1


def test_lookup_failure_never_drops_the_text_back(make_service: Callable[..., Service]) -> None:
    def landlines(config: dict[str, Any]) -> None:
        config["locations"][0]["skip_landlines"] = True

    service = make_service(edit=landlines)
    caller = caller_number(15)
    service.twilio.fail_next(1, status=503, code=20503, operation="lookup")
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back despite lookup failure")
