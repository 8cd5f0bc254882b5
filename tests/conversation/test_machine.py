"""The conversation machine as tables of cases: no database, no network."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from ringback.config import Location
from ringback.conversation.machine import (
    MAX_QUESTIONS,
    AlertStaff,
    Close,
    HandedBack,
    HandOff,
    Inbound,
    Machine,
    MarkWrongNumber,
    OptOut,
    Qualified,
    Reply,
    Schedule,
    SetPatientStatus,
    StaffTookOver,
    State,
    TextedBack,
    TimerDue,
)
from ringback.conversation.service import clinic
from ringback.conversation.understand import understand
from tests.support.conversation import GLOW, NOW, ZONE, location

MACHINE = Machine(clinic(GLOW))


def after_textback(known_patient: bool = False) -> State:
    state, _ = MACHINE.transition(State(), TextedBack(known_patient=known_patient), NOW)
    return state


def say(
    state: State, text: str, machine: Machine = MACHINE, loc: Location = GLOW
) -> tuple[State, list[object]]:
    u = understand(text, NOW, loc, known_patient=state.known_patient)
    return machine.transition(state, Inbound(u), NOW)


def replies(commands: list[object]) -> list[str]:
    return [c.template for c in commands if isinstance(c, Reply)]


def test_text_back_counts_as_the_first_question_and_schedules_nudge_and_close() -> None:
    state, commands = MACHINE.transition(State(), TextedBack(), NOW)
    assert (state.questions, state.last_question, state.stage) == (1, "treatment", "qualifying")
    schedules = {c.kind: c.at for c in commands if isinstance(c, Schedule)}
    assert schedules == {
        "nudge": NOW + timedelta(minutes=120),
        "close": NOW + timedelta(minutes=1440),
    }


@pytest.mark.parametrize(
    ("messages", "expected_replies", "stage", "outcome"),
    [
        # Everything at once: straight to booking, no questions.
        (["botox tmrw afternoon, first time here"], ["booking_link"], "routed", "booking_link"),
        # One thing at a time: treatment, time, new/returning, then the link. 3 questions max.
        (
            ["botox", "thursday morning", "first time"],
            ["ask_time", "ask_patient", "booking_link"],
            "routed",
            "booking_link",
        ),
        # Time first, then treatment.
        (
            ["can I come in saturday?", "lip fillr"],
            ["clarify_treatment", "ask_patient"],
            "qualifying",
            None,
        ),
        # Consult goes to staff.
        (["I'd like a consult"], ["handoff_consult"], "handoff", "consult"),
        # Medical question goes to staff.
        (
            ["is botox safe while breastfeeding?"],
            ["handoff_medical"],
            "handoff",
            "medical_question",
        ),
        # A person, please.
        (["can someone call me"], ["handoff_person"], "handoff", "asked_for_person"),
        # Urgent symptom: safety wording, staff alerted, never the bot.
        (["my lips are swelling badly after filler yesterday"], ["urgent"], "urgent", "urgent"),
        # Wrong number: apologise once, close.
        (["wrong number"], ["wrong_number"], "closed", "wrong_number"),
        # Plain-language opt-out: no reply at all.
        (["please stop texting me"], [], "closed", "opted_out"),
        # Price answered from the catalogue, then the question continues.
        (["how much is botox?"], ["ask_time"], "qualifying", None),
        # Price haggling after the catalogue answered: staff.
        (
            ["how much is botox?", "any discount if I buy two areas? how much then"],
            ["ask_time", "handoff_pricing"],
            "handoff",
            "pricing",
        ),
        # A time not understood twice goes to staff instead of looping.
        (
            ["botox", "hmm", "hmmm ok"],
            ["ask_time", "clarify_time", "handoff_generic"],
            "handoff",
            "time_not_understood",
        ),
        # Cancel or reschedule an appointment: staff.
        (
            ["I need to reschedule my appointment"],
            ["handoff_appointment"],
            "handoff",
            "appointment_change",
        ),
        # Spanish is answered in Spanish (same templates, other language).
        (
            ["Quiero botox el martes por la tarde, primera vez"],
            ["booking_link"],
            "routed",
            "booking_link",
        ),
    ],
)
def test_conversations(
    messages: list[str], expected_replies: list[str], stage: str, outcome: str | None
) -> None:
    state = after_textback()
    seen: list[str] = []
    for text in messages:
        state, commands = say(state, text)
        seen += replies(commands)
    assert seen == expected_replies
    assert state.stage == stage
    assert state.outcome == outcome
    assert state.questions <= MAX_QUESTIONS


def test_never_asks_for_what_is_known() -> None:
    state, commands = say(after_textback(), "botox friday at 2pm, I've been before")
    assert replies(commands) == ["booking_link"]
    assert Qualified("Botox") in commands
    assert SetPatientStatus("returning") in commands
    assert state.patient == "returning"


def test_known_patient_is_not_asked_new_or_returning() -> None:
    state = after_textback(known_patient=True)
    state, commands = say(state, "botox")
    assert replies(commands) == ["ask_time"]
    state, commands = say(state, "thursday morning")
    assert replies(commands) == ["booking_link"]


def test_at_most_three_questions_then_route_with_what_is_known() -> None:
    state = after_textback()
    state, _ = say(state, "botox")
    state, _ = say(state, "next tues after 5")
    assert state.questions == 3
    state, commands = say(state, "hmm")  # does not answer new/returning
    assert replies(commands) == ["booking_link"]
    assert state.questions == 3


def test_urgent_alerts_staff_with_priority_and_safety_wording() -> None:
    state, commands = say(after_textback(), "my eyelid is drooping after botox")
    assert AlertStaff("urgent", urgent=True) in commands
    assert HandOff("urgent", urgent=True) in commands
    assert replies(commands) == ["urgent"]
    # Even after a handoff or takeover, a new urgent message alerts again.
    paused, _ = MACHINE.transition(state, StaffTookOver(), NOW)
    _, again = say(paused, "now I have trouble breathing")
    assert AlertStaff("urgent", urgent=True) in again


def test_opt_out_and_wrong_number_commands() -> None:
    _, commands = say(after_textback(), "remove me from your list")
    assert commands[:2] == [OptOut(), Close("opted_out")]
    _, commands = say(after_textback(), "you have the wrong number")
    assert MarkWrongNumber() in commands
    assert Close("wrong_number") in commands


def test_staff_takeover_silences_the_bot_until_handed_back() -> None:
    state, _ = MACHINE.transition(after_textback(), StaffTookOver(), NOW)
    state, commands = say(state, "botox")
    assert replies(commands) == []
    state, _ = MACHINE.transition(state, HandedBack(), NOW)
    state, commands = say(state, "thursday morning")
    assert replies(commands) == ["ask_patient"]


def test_handoff_stays_with_staff() -> None:
    state, _ = say(after_textback(), "can someone call me")
    state, commands = say(state, "botox thursday")
    assert commands == [] or replies(commands) == []


def test_no_booking_link_hands_qualified_patient_to_staff() -> None:
    loc = location(booking_url=None)
    machine = Machine(clinic(loc))
    state, _ = machine.transition(State(), TextedBack(), NOW)
    state, commands = say(state, "botox thursday morning first time", machine, loc)
    assert replies(commands) == ["handoff_booking"]
    assert state.outcome == "ready_to_book"
    assert Qualified("Botox") in commands


def test_nudge_once_only_when_due_and_unanswered() -> None:
    state = after_textback()
    due = NOW + timedelta(minutes=121)
    early, commands = MACHINE.transition(state, TimerDue("nudge"), NOW + timedelta(minutes=30))
    assert commands == []
    nudged, commands = MACHINE.transition(early, TimerDue("nudge"), due)
    assert [c.kind for c in commands if isinstance(c, Reply)] == ["nudge"]
    _, commands = MACHINE.transition(nudged, TimerDue("nudge"), due + timedelta(hours=1))
    assert commands == []
    # A reply cancels it.
    replied, _ = say(state, "botox")
    replied = replace(
        replied, nudge_at=(NOW + timedelta(minutes=1)).isoformat(), awaiting_reply_since=None
    )
    _, commands = MACHINE.transition(replied, TimerDue("nudge"), due)
    assert commands == []


def test_nudge_due_at_night_waits_for_texting_hours() -> None:
    evening = datetime(2026, 11, 24, 20, 30, tzinfo=ZONE)
    _, commands = MACHINE.transition(State(), TextedBack(), evening)
    nudge = next(c for c in commands if isinstance(c, Schedule) and c.kind == "nudge")
    assert nudge.at == datetime(2026, 11, 25, 8, 0, tzinfo=ZONE)


def test_fractional_nudge_minutes() -> None:
    machine = Machine(clinic(location(nudge_after_minutes=0.5)))
    _, commands = machine.transition(State(), TextedBack(), NOW)
    nudge = next(c for c in commands if isinstance(c, Schedule) and c.kind == "nudge")
    assert nudge.at == NOW + timedelta(seconds=30)


def test_no_reply_closes_as_no_reply() -> None:
    state = after_textback()
    _, commands = MACHINE.transition(state, TimerDue("close"), NOW + timedelta(minutes=1441))
    assert commands == [Close("no_reply")]
    _, commands = MACHINE.transition(state, TimerDue("close"), NOW + timedelta(minutes=100))
    assert commands == []


def test_appointment_text_back_reply_goes_to_staff() -> None:
    state, _ = MACHINE.transition(State(), TextedBack(question="appointment"), NOW)
    state, commands = say(state, "yes, can I move it to friday?")
    assert state.stage == "handoff"
    assert replies(commands) == ["handoff_appointment"]


def test_state_round_trips_through_json() -> None:
    state, _ = say(after_textback(), "botox thursday morning")
    assert State.from_json(state.to_json()) == state
    assert State.from_json(None) == State()


@pytest.mark.parametrize(
    ("text", "expected", "stage"),
    [
        ("thanks!", ["ack_link"], "routed"),
        ("ok perfect 👍", ["ack_link"], "routed"),
        ("also a hydrafacial please", ["booking_link"], "routed"),
        ("the link doesn't work, can someone call me?", ["handoff_person"], "handoff"),
        ("the link doesn't work", ["handoff_generic"], "handoff"),
        ("no thanks", ["ack_link"], "routed"),
        ("first time", ["ack_link"], "routed"),
    ],
)
def test_after_the_booking_link(text: str, expected: list[str], stage: str) -> None:
    state, commands = say(after_textback(), "botox thursday morning, first time")
    assert replies(commands) == ["booking_link"]
    state, commands = say(state, text)
    assert replies(commands) == expected
    assert state.stage == stage
