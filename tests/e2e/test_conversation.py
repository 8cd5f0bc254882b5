"""Conversations end to end: signed inbound-SMS webhooks over HTTP, the real queue and
database, replies checked as the fake Twilio received them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from ringback.messaging.segments import message_segments
from ringback.models import Call, Conversation, ConversationDecision, Message, Patient
from tests.conftest import Service, settle, wait_for
from tests.support.phone import conversation, miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

STAFF = "+13105550102"


def test_qualifies_in_three_texts_and_sends_the_booking_link(service: Service) -> None:
    caller = caller_number(70)
    miss(service, caller)
    assert "What treatment" in next_text(service, caller, 1)
    text_in(service, caller, "bottox pls")
    ask_time = next_text(service, caller, 2)
    assert ask_time.startswith("Glow Med Spa: ")
    assert "Botox" in ask_time
    assert "What day and time" in ask_time
    text_in(service, caller, "thursday morning")
    assert "first time" in next_text(service, caller, 3)
    text_in(service, caller, "first time!")
    link = next_text(service, caller, 4)
    assert "https://glow.example/book?service=Botox" in link
    settle()
    assert len(texts_to(service, caller)) == 4
    conv = conversation(service)
    assert conv.treatment == "Botox"
    assert conv.qualified_at is not None
    assert conv.state["patient"] == "new"
    assert service.scalar(select(Patient.status).where(Patient.phone == caller)) == "new"
    # Every decision is on record with the event that caused it.
    decisions = service.rows(select(ConversationDecision).order_by(ConversationDecision.seq))
    assert [d.event["type"] for d in decisions] == ["TextedBack", "inbound", "inbound", "inbound"]
    assert decisions[1].event["understanding"]["treatments"] == ["Botox"]


def test_everything_in_one_reply_routes_at_once(service: Service) -> None:
    caller = caller_number(71)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "hi!! 😊 i wanted lip filler next tues after 5, ive been before")
    assert "book?service=Filler" in next_text(service, caller, 2)


def test_urgent_symptom_alerts_staff_at_once_and_answers_with_safety_wording(
    service: Service,
) -> None:
    caller = caller_number(72)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "my lip is really swollen and turning white after filler yesterday")
    reply = next_text(service, caller, 2)
    assert "911" in reply
    assert "(310) 555-0100" in reply  # open now: the spa's own line, written nationally
    alert = wait_for(lambda: texts_to(service, STAFF), what="staff alert")[0]
    assert alert.body.startswith("Ringback: URGENT message from (")
    assert "swollen" not in alert.body  # no health details in the alert text
    conv = conversation(service)
    assert (conv.status, conv.handoff_reason) == ("urgent", "urgent")
    assert conv.urgent_at is not None


def test_request_for_a_person_hands_off_with_an_alert(service: Service) -> None:
    caller = caller_number(73)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox. can someone call me though?")
    assert "Someone from our team" in next_text(service, caller, 2)
    wait_for(lambda: texts_to(service, STAFF), what="staff alert")
    conv = conversation(service)
    assert (conv.status, conv.handoff_reason, conv.treatment) == (
        "needs_staff",
        "asked_for_person",
        "Botox",
    )
    # The bot stays quiet while staff have it.
    text_in(service, caller, "thursday works")
    settle()
    assert len(texts_to(service, caller)) == 2


def test_wrong_number_apologises_once_and_suppresses_future_text_backs(service: Service) -> None:
    caller = caller_number(74)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "wrong number sorry")
    assert "won't text this number again" in next_text(service, caller, 2)
    assert conversation(service).close_reason == "wrong_number"
    second = miss(service, caller)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == second)),
        what="screened",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == second)) == "wrong_number"
    settle()
    assert len(texts_to(service, caller)) == 2


def test_plain_language_opt_out_stops_everything(service: Service) -> None:
    caller = caller_number(75)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "please stop texting me")
    wait_for(
        lambda: service.scalar(select(Patient.opted_out_at).where(Patient.phone == caller)),
        what="opt-out",
    )
    # One confirmation naming the spa, then nothing.
    assert "unsubscribed from Glow Med Spa" in next_text(service, caller, 2)
    settle()
    assert len(texts_to(service, caller)) == 2
    assert conversation(service).close_reason == "opted_out"


def test_spanish_reply_is_answered_in_spanish(service: Service) -> None:
    caller = caller_number(76)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "Hola, quiero bótox")
    reply = next_text(service, caller, 2)
    # "día" loses its accent so the text stays one GSM-7 segment; "¿Qué" is GSM-7 already.
    assert "¿Qué dia y hora le quedan mejor?" in reply
    assert message_segments(reply) == ("GSM-7", 1)
    assert conversation(service).language == "es"


def fast_timers(config: dict[str, Any]) -> None:
    config["locations"][0]["nudge_after_minutes"] = 0.03  # 1.8 s
    config["locations"][0]["close_after_minutes"] = 0.08  # 4.8 s
    config["locations"][0]["texting_hours"] = "00:00-24:00"


def test_one_nudge_then_close_as_no_reply(make_service: Callable[..., Service]) -> None:
    service = make_service(edit=fast_timers)
    caller = caller_number(77)
    miss(service, caller)
    next_text(service, caller, 1)
    nudge = wait_for(
        lambda: len(texts_to(service, caller)) >= 2 and texts_to(service, caller)[1],
        timeout=15,
        what="the nudge",
    )
    assert "Just checking in" in nudge.body
    wait_for(lambda: conversation(service).close_reason == "no_reply", timeout=15, what="closed")
    assert not conversation(service).is_open
    assert len(texts_to(service, caller)) == 2
    kinds = service.rows(select(Message.kind).where(Message.direction == "outbound"))
    assert sorted(kinds) == ["nudge", "textback"]


def test_a_reply_cancels_the_nudge(make_service: Callable[..., Service]) -> None:
    service = make_service(edit=fast_timers)
    caller = caller_number(78)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "how much is a hydrafacial")
    reply = next_text(service, caller, 2)
    assert "HydraFacial starts at $199." in reply
    settle(3.0)
    bodies = [t.body for t in texts_to(service, caller)]
    assert not any("Just checking in" in b for b in bodies[:2])
    # The reply re-armed one nudge for the new question; never more than one in total.
    assert sum("Just checking in" in b for b in bodies) <= 1


def test_nudge_waits_for_texting_hours(make_service: Callable[..., Service]) -> None:
    def night(config: dict[str, Any]) -> None:
        fast_timers(config)
        config["locations"][0]["texting_hours"] = "08:00-09:00"

    service = make_service(edit=night)  # 10:00 local: after texting hours
    caller = caller_number(79)
    miss(service, caller)
    next_text(service, caller, 1)  # the first text-back is not held
    settle(3.0)
    assert len(texts_to(service, caller)) == 1
    conv = conversation(service)
    # 08:00 the next morning in Los Angeles.
    assert datetime.fromisoformat(conv.state["nudge_at"]) == datetime(
        2026, 11, 25, 16, 0, tzinfo=UTC
    )


def test_text_from_a_new_number_starts_a_conversation(service: Service) -> None:
    caller = caller_number(80)
    text_in(service, caller, "hi do you do laser hair removal on saturdays?")
    # Treatment and day are known already, so the one question left is new or returning.
    assert "first time" in next_text(service, caller, 1)
    assert service.scalar(select(func.count()).select_from(Conversation)) == 1
    assert conversation(service).state["treatments"] == ["Laser Hair Removal"]


def test_staff_takeover_pauses_the_bot_until_handed_back(service: Service) -> None:
    from ringback.conversation.service import hand_back, take_over

    caller = caller_number(81)
    miss(service, caller)
    next_text(service, caller, 1)
    conv = conversation(service)
    assert take_over(service.runtime.deps, conv.id, None)
    assert conversation(service).bot_paused
    text_in(service, caller, "botox")
    settle()
    assert len(texts_to(service, caller)) == 1  # staff have it: the bot says nothing
    assert conversation(service).state["treatments"] == ["Botox"]  # but it still listens
    assert hand_back(service.runtime.deps, conv.id)
    # Nobody answered "botox" while staff held the thread: the bot answers it now.
    assert "What day and time work best?" in next_text(service, caller, 2)
    text_in(service, caller, "friday morning")
    assert "first time" in next_text(service, caller, 3)


def test_hand_back_after_staff_answered_sends_nothing_more(service: Service) -> None:
    from ringback.conversation.service import hand_back, take_over

    caller = caller_number(83)
    miss(service, caller)
    next_text(service, caller, 1)
    conv = conversation(service)
    assert take_over(service.runtime.deps, conv.id, None)
    text_in(service, caller, "botox monday at 2pm please")
    settle()
    assert hand_back(service.runtime.deps, conv.id, already_answered=True)
    settle()
    assert len(texts_to(service, caller)) == 1  # staff said they answered it
    text_in(service, caller, "first time")
    assert "Botox" in next_text(service, caller, 2)  # the bot carries on from there


def test_a_nudge_hours_away_is_fired_by_the_sweep(service: Service) -> None:
    from datetime import timedelta

    from ringback.runtime import run_sweep

    caller = caller_number(82)
    miss(service, caller)
    next_text(service, caller, 1)
    settle(0.5)
    assert len(texts_to(service, caller)) == 1  # 120 minutes: nothing queued for now
    service.clock.advance(timedelta(minutes=121))
    assert run_sweep(service.runtime.deps)["timers"] == 1
    assert "Just checking in" in next_text(service, caller, 2)
    assert run_sweep(service.runtime.deps)["timers"] == 0
