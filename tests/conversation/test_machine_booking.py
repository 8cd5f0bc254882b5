"""The machine's scheduling rules as tables of cases: offers, choices, "none of those",
bookings reported back, and confirm/cancel/reschedule of an upcoming appointment. The
clinic's slot finder is a plain function answering the machine's FindOffers: no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from ringback.conversation.machine import (
    MAX_OFFER_ROUNDS,
    Book,
    Booked,
    CancelAppointment,
    Clinic,
    Close,
    ConfirmAppointment,
    FindOffers,
    HandOff,
    Inbound,
    Machine,
    Offer,
    OffersFound,
    Reply,
    SlotTaken,
    State,
    TextedBack,
    Upcoming,
)
from ringback.conversation.service import clinic
from ringback.conversation.understand import understand
from tests.support.conversation import GLOW, NOW, SettlingMachine

CALLS: list[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]] = []


def fake_slots(
    treatment: str, times: tuple[tuple[str, str], ...], exclude: tuple[str, ...]
) -> tuple[Offer, ...]:
    """Three hourly slots from the first wished-for start (or 9:00 Wed), skipping excluded."""
    CALLS.append((treatment, times, exclude))
    first = (
        datetime.fromisoformat(times[0][0])
        if times
        else datetime.fromisoformat("2026-11-25T09:00:00-08:00")
    )
    out = []
    hour = 0
    while len(out) < 3 and hour < 24:
        start = first.replace(hour=(first.hour + hour) % 24)
        hour += 1
        if start.isoformat() in exclude:
            continue
        out.append(Offer(start.isoformat(), start.isoformat(), "anna", "", f"{start:%a %H:%M}"))
    return tuple(out)


SCHEDULING: Clinic = replace(clinic(GLOW), schedules=True)
MACHINE = SettlingMachine(Machine(SCHEDULING), fake_slots)


def say(state: State, text: str, upcoming: Upcoming | None = None) -> tuple[State, list[object]]:
    u = understand(text, NOW, GLOW, known_patient=state.known_patient)
    return MACHINE.transition(state, Inbound(u, upcoming), NOW)


def offered() -> tuple[State, list[object]]:
    state, _ = MACHINE.transition(State(), TextedBack(), NOW)
    return say(state, "botox thursday at 3pm, first time")


def templates(commands: list[object]) -> list[str]:
    return [c.template for c in commands if isinstance(c, Reply)]


def test_qualified_standard_service_gets_offers_not_a_link() -> None:
    state, commands = offered()
    assert state.stage == "offering"
    assert templates(commands) == ["offer_slots"]
    assert [o.label for o in state.offers] == ["Thu 15:00", "Thu 16:00", "Thu 17:00"]
    reply = next(c for c in commands if isinstance(c, Reply))
    values = dict(reply.values)
    assert values["choices"] == "1, 2 or 3"
    assert values["slots"].startswith("1) Thu 15:00, 2) Thu 16:00")


@pytest.mark.parametrize(
    ("text", "index"),
    [("2", 1), ("#3", 2), ("the first one", 0), ("option 2 please", 1), ("4pm works", 1)],
)
def test_a_choice_books_that_offer(text: str, index: int) -> None:
    state, _ = offered()
    _after, commands = say(state, text)
    books = [c for c in commands if isinstance(c, Book)]
    assert books == [Book(state.offers[index], "Botox", None)]
    assert templates(commands) == []  # the confirmation waits for the booking's outcome


@pytest.mark.parametrize("text", ["none of those work", "neither", "any other times?", "no"])
def test_none_of_those_gets_new_offers_without_the_declined_ones(text: str) -> None:
    state, _ = offered()
    shown = {o.start for o in state.offers}
    after, commands = say(state, text)
    assert templates(commands) == ["offer_more"]
    assert not shown & {o.start for o in after.offers}
    assert shown <= set(after.declined)


def test_a_new_wish_moves_the_offers_and_too_many_rounds_fall_back_to_the_link() -> None:
    state, _ = offered()
    state, commands = say(state, "actually friday at 10am")
    assert state.offers[0].label == "Fri 10:00"
    assert state.offer_rounds == 2
    for _ in range(MAX_OFFER_ROUNDS - 2):
        state, commands = say(state, "none of those")
        assert templates(commands) == ["offer_more"]
    state, commands = say(state, "none of those")
    assert templates(commands) == ["no_slots_link"]
    assert state.stage == "routed"


def test_unclear_answer_repeats_the_offer_once_then_hands_off() -> None:
    state, _ = offered()
    state, commands = say(state, "hmm")
    assert templates(commands) == ["offer_again"]
    state, commands = say(state, "hmm")
    assert any(isinstance(c, HandOff) for c in commands)


def test_booked_confirms_and_closes_slot_taken_offers_again() -> None:
    state, _ = offered()
    booked, commands = MACHINE.transition(state, Booked(7, "Thu Nov 26 at 3:00pm", "Anna"), NOW)
    assert templates(commands) == ["booked"]
    assert Close("booked") in commands
    assert booked.stage == "closed"
    assert booked.appointment_id == 7
    taken, commands = MACHINE.transition(state, SlotTaken(state.offers[0].start), NOW)
    assert templates(commands) == ["slot_taken"]
    assert state.offers[0].start not in {o.start for o in taken.offers}


UPCOMING = Upcoming(id=42, when="Thu Nov 26 at 3:00pm", service="Botox")


@pytest.mark.parametrize(
    ("text", "command", "template"),
    [
        ("C", ConfirmAppointment(42), "appointment_confirmed"),
        ("yes I'll be there", ConfirmAppointment(42), "appointment_confirmed"),
    ],
)
def test_upcoming_appointment_can_be_confirmed_or_cancelled_by_text(
    text: str, command: object, template: str
) -> None:
    state, commands = say(State(), text, UPCOMING)
    assert command in commands
    assert templates(commands) == [template]
    assert state.stage == "closed"


def test_reschedule_asks_when_then_offers_and_books_replacing_the_old_one() -> None:
    state, commands = say(State(), "R", UPCOMING)
    assert templates(commands) == ["ask_reschedule_time"]
    state, commands = say(state, "friday at 11am")
    assert templates(commands) == ["offer_slots"]
    state, commands = say(state, "1")
    assert [c for c in commands if isinstance(c, Book)] == [Book(state.offers[0], "Botox", 42)]


def test_without_scheduling_an_appointment_change_still_goes_to_staff() -> None:
    plain = Machine(clinic(GLOW))
    u = understand("I need to cancel", NOW, GLOW)
    _state, commands = plain.transition(State(), Inbound(u, UPCOMING), NOW)
    assert any(isinstance(c, HandOff) for c in commands)
    assert not any(isinstance(c, CancelAppointment) for c in commands)


def test_yes_to_the_missed_call_question_is_not_a_confirmation() -> None:
    state, _ = MACHINE.transition(
        State(), TextedBack(question="appointment", upcoming=UPCOMING), NOW
    )
    state, commands = say(state, "yes")
    assert not any(isinstance(c, ConfirmAppointment) for c in commands)
    assert any(isinstance(c, HandOff) for c in commands)


@pytest.mark.parametrize(
    ("first", "second"),
    [("X", "X"), ("I need to cancel my appointment", "yes"), ("pls cancel my appt", "yes please")],
)
def test_cancel_asks_once_then_cancels(first: str, second: str) -> None:
    state, commands = say(State(), first, UPCOMING)
    assert templates(commands) == ["confirm_cancel"]
    assert not any(isinstance(c, CancelAppointment) for c in commands)
    assert state.cancel_pending
    state, commands = say(state, second, UPCOMING)
    assert CancelAppointment(42) in commands
    assert templates(commands) == ["appointment_cancelled"]
    assert state.stage == "closed"


def test_no_to_the_cancel_question_keeps_the_booking() -> None:
    state, _ = say(State(), "X", UPCOMING)
    state, commands = say(state, "no", UPCOMING)
    assert not any(isinstance(c, CancelAppointment) for c in commands)
    assert templates(commands) == ["appointment_kept"]


def test_r_after_the_cancel_question_offers_other_times() -> None:
    state, _ = say(State(), "X", UPCOMING)
    state, commands = say(state, "R", UPCOMING)
    assert templates(commands) == ["ask_reschedule_time"]
    assert not state.cancel_pending


def test_cancel_without_asking_where_the_location_turned_it_off() -> None:
    direct = SettlingMachine(Machine(replace(SCHEDULING, confirm_cancel=False)), fake_slots)
    u = understand("X", NOW, GLOW)
    _state, commands = direct.transition(State(), Inbound(u, UPCOMING), NOW)
    assert CancelAppointment(42) in commands
    assert templates(commands) == ["appointment_cancelled"]


def test_thanks_after_booking_gets_a_short_answer() -> None:
    state, commands = say(State(), "thank you so much!", UPCOMING)
    assert templates(commands) == ["ack_appointment"]
    assert Close("acknowledged") in commands
    assert state.stage == "closed"


def test_the_machine_asks_for_offers_and_never_looks_them_up() -> None:
    """Pure: the machine names what it needs (FindOffers, with the starts to skip) and
    offers only what it is told was found."""
    bare = Machine(SCHEDULING)
    state, _ = bare.transition(State(), TextedBack(), NOW)
    u = understand("botox thursday at 3pm, first time", NOW, GLOW)
    state, commands = bare.transition(state, Inbound(u), NOW)
    asks = [c for c in commands if isinstance(c, FindOffers)]
    assert len(asks) == 1
    assert asks[0].treatment == "Botox"
    assert asks[0].exclude == ()
    assert templates(commands) == []
    assert state.offers == ()
    found = fake_slots(asks[0].treatment, asks[0].times, ())
    state, commands = bare.transition(state, OffersFound(found), NOW)
    assert templates(commands) == ["offer_slots"]
    assert state.offers == found
    u = understand("none of those", NOW, GLOW)
    state, commands = bare.transition(state, Inbound(u), NOW)
    asks = [c for c in commands if isinstance(c, FindOffers)]
    assert asks
    assert set(asks[0].exclude) >= {o.start for o in found}
    state, commands = bare.transition(state, OffersFound(()), NOW)
    assert templates(commands) == ["no_slots_link"]
    assert state.stage == "routed"
