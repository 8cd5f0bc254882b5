"""Inbound texts and delivery receipts: STOP always works, HELP answers, receipts recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from ringback.models import Call, Conversation, Message, Patient
from tests.conftest import Service, settle, wait_for
from tests.support.phone import miss, text_in, texts_to
from tests.twilio_payloads import caller_number, new_message_sid, payload

SPA = "+13105550100"


def patient(service: Service, caller: str) -> Patient | None:
    return service.scalar(select(Patient).where(Patient.phone == caller))


def test_inbound_text_is_recorded_on_the_open_conversation(service: Service) -> None:
    caller = caller_number(20)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back")
    message_sid = text_in(service, caller, "botox please")
    inbound = wait_for(
        lambda: service.scalar(select(Message).where(Message.provider_sid == message_sid)),
        what="inbound recorded",
    )
    assert inbound.direction == "inbound"
    assert inbound.body == "botox please"
    conversation = service.scalar(
        select(Conversation).where(Conversation.id == inbound.conversation_id)
    )
    assert conversation.first_reply_at is not None
    assert conversation.is_open


def test_stop_opts_out_and_nothing_is_texted_after_whatever_path_tries(service: Service) -> None:
    caller = caller_number(21)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back")
    text_in(service, caller, "  Stop ")
    wait_for(lambda: (p := patient(service, caller)) and p.opted_out, what="opt-out")
    conversation = service.scalar(select(Conversation))
    assert (conversation.is_open, conversation.close_reason) == (False, "opted_out")
    # One confirmation naming the spa, and nothing after it.
    confirmation = wait_for(lambda: texts_to(service, caller)[1:], what="STOP confirmation")
    assert confirmation[0].body == (
        "You're unsubscribed from Glow Med Spa texts. Reply START to resubscribe."
    )
    text_in(service, caller, "STOP")  # a second STOP changes nothing: no second confirmation
    # A new miss is screened out; HELP gets no answer while opted out.
    call_sid = miss(service, caller)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == call_sid)),
        what="screened",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == call_sid)) == "opted_out"
    text_in(service, caller, "HELP")
    settle()
    assert len(texts_to(service, caller)) == 2
    suppressed = service.rows(select(Message).where(Message.status == "suppressed"))
    assert [m.kind for m in suppressed] == ["keyword"]


def test_every_twilio_stop_keyword_opts_out_and_start_opts_back_in(service: Service) -> None:
    for index, word in enumerate(
        ["STOP", "stopall", "UNSUBSCRIBE", "cancel", "END", "quit", "Revoke", "OPTOUT"]
    ):
        caller = caller_number(100 + index)
        text_in(service, caller, word)
        wait_for(
            lambda c=caller: (p := patient(service, c)) and p.opted_out, what=f"{word} opt-out"
        )
    caller = caller_number(100)
    text_in(service, caller, "start")
    wait_for(lambda: (p := patient(service, caller)) and not p.opted_out, what="opt back in")
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back after START")


def test_start_confirms_once_and_yes_is_an_answer_unless_opted_out(service: Service) -> None:
    caller = caller_number(31)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back")
    text_in(service, caller, "yes")  # not opted out: an answer, not a keyword
    assert (
        "Which treatment would you like?" in wait_for(lambda: texts_to(service, caller)[1:])[0].body
    )
    assert not patient(service, caller).opted_out
    text_in(service, caller, "STOP")
    wait_for(lambda: len(texts_to(service, caller)) == 3, what="STOP confirmation")
    text_in(service, caller, "Yes")  # opted out: YES opts back in, confirmed once
    wait_for(lambda: (p := patient(service, caller)) and not p.opted_out, what="opt back in")
    back = wait_for(lambda: texts_to(service, caller)[3:], what="START confirmation")
    assert "opted back in" in back[0].body
    text_in(service, caller, "START")  # already in: nothing to confirm
    settle()
    assert len(texts_to(service, caller)) == 4


def test_provider_confirms_opt_outs_where_the_location_says_so(
    make_service: Callable[..., Service],
) -> None:
    def provider_confirms(config: dict[str, Any]) -> None:
        config["locations"][0]["opt_out_confirmations"] = "provider"

    service = make_service(edit=provider_confirms)
    caller = caller_number(32)
    text_in(service, caller, "STOP")
    wait_for(lambda: (p := patient(service, caller)) and p.opted_out, what="opt-out")
    settle()
    assert texts_to(service, caller) == []


def test_twilio_advanced_opt_out_type_is_honoured(service: Service) -> None:
    caller = caller_number(30)
    text_in(service, caller, "Arrêt", OptOutType="STOP")
    wait_for(lambda: (p := patient(service, caller)) and p.opted_out, what="opt-out via OptOutType")


def test_help_answers_with_name_and_phone(service: Service) -> None:
    caller = caller_number(31)
    text_in(service, caller, "help")
    reply = wait_for(lambda: texts_to(service, caller), what="help reply")[0]
    assert "Glow Med Spa" in reply.body
    assert "(310) 555-0100" in reply.body  # written the way people write numbers
    assert reply.from_ == SPA


def test_duplicate_inbound_webhook_is_recorded_once(service: Service) -> None:
    caller = caller_number(32)
    params = payload("sms_inbound", MessageSid=new_message_sid(), From=caller, Body="HELP")
    for _ in range(5):
        assert service.post("/twilio/sms", params).status_code == 200
    wait_for(lambda: texts_to(service, caller), what="help reply")
    settle()
    assert len(texts_to(service, caller)) == 1
    assert len(service.rows(select(Message).where(Message.direction == "inbound"))) == 1


def test_delivery_receipts_move_status_forward_only(service: Service) -> None:
    caller = caller_number(33)
    miss(service, caller)
    sent = wait_for(lambda: texts_to(service, caller), what="text-back")[0]
    wait_for(
        lambda: service.scalar(
            select(Message.provider_sid).where(Message.provider_sid == sent.sid)
        ),
        what="sid",
    )
    for status in ("sent", "delivered", "sent"):
        response = service.post(
            "/twilio/sms/status",
            payload("sms_status_delivered", MessageSid=sent.sid, MessageStatus=status, To=caller),
        )
        assert response.status_code == 204
    wait_for(
        lambda: (
            service.scalar(select(Message.status).where(Message.provider_sid == sent.sid))
            == "delivered"
        ),
        what="delivered",
    )
    settle(0.4)
    assert (
        service.scalar(select(Message.status).where(Message.provider_sid == sent.sid))
        == "delivered"
    )


def test_undelivered_with_21610_opts_the_patient_out(service: Service) -> None:
    caller = caller_number(34)
    miss(service, caller)
    sent = wait_for(lambda: texts_to(service, caller), what="text-back")[0]
    wait_for(
        lambda: service.scalar(
            select(Message.provider_sid).where(Message.provider_sid == sent.sid)
        ),
        what="sid",
    )
    service.post(
        "/twilio/sms/status",
        payload(
            "sms_status_delivered",
            MessageSid=sent.sid,
            MessageStatus="undelivered",
            ErrorCode="21610",
            To=caller,
        ),
    )
    wait_for(lambda: (p := patient(service, caller)) and p.opted_out, what="carrier opt-out")
    message = service.scalar(select(Message).where(Message.provider_sid == sent.sid))
    assert (message.status, message.error_code) == ("undelivered", 21610)
