"""The machine's waitlist and rebooking rules as tables of cases, and a Hypothesis property:
however the waitlisted patients' replies arrive (yes, no, STOP, chatter, repeats, in any
order), one freed slot is booked at most once, every other yes hears it is gone and keeps
its place. No database: booking is a single-slot claim, as the booking lock makes it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringback.conversation.machine import (
    Book,
    Booked,
    Clinic,
    Close,
    Command,
    FindOffers,
    Inbound,
    JoinWaitlist,
    KeepWaiting,
    Machine,
    Offer,
    Offered,
    OffersFound,
    Reply,
    SlotTaken,
    StaffTookOver,
    State,
)
from ringback.conversation.replies import TEMPLATES, render
from ringback.conversation.service import clinic
from ringback.conversation.understand import understand
from ringback.messaging.segments import is_gsm7
from tests.support.conversation import GLOW, NOW

WAITLIST: Clinic = replace(
    clinic(GLOW),
    schedules=True,
    waitlist=True,
    services=tuple(replace(s, bookable=True) for s in clinic(GLOW).services),
)
SLOT = Offer(
    "2026-11-26T15:00:00-08:00", "2026-11-26T15:30:00-08:00", "anna", "", "Thu Nov 26 at 3:00pm"
)


def templates(commands: list[Command]) -> list[str]:
    return [c.template for c in commands if isinstance(c, Reply)]


def reply(machine: Machine, state: State, text: str) -> tuple[State, list[Command]]:
    u = understand(text, NOW, GLOW, asked=state.last_question)
    return machine.transition(state, Inbound(u), NOW)


def no_time_fits(clinic_rules: Clinic) -> tuple[Machine, State, list[Command]]:
    machine = Machine(clinic_rules)
    state = State(stage="offering", treatments=("Botox",), offer_rounds=1)
    state, commands = machine.transition(state, OffersFound(()), NOW)
    return machine, state, commands


@pytest.mark.parametrize("yes", ["yes", "ok", "👍", "si", "y", "add me"])
def test_no_time_fits_the_bot_offers_the_waitlist_and_yes_joins(yes: str) -> None:
    machine, state, commands = no_time_fits(WAITLIST)
    assert templates(commands) == ["offer_waitlist"]
    assert state.last_question == "waitlist"
    state, commands = reply(machine, state, yes)
    joins = [c for c in commands if isinstance(c, JoinWaitlist)]
    assert joins == [JoinWaitlist("Botox", ())]
    assert templates(commands) == ["waitlisted"]
    assert Close("waitlisted") in commands
    assert state.stage == "closed"


def test_no_to_the_waitlist_gets_the_booking_page() -> None:
    machine, state, _ = no_time_fits(WAITLIST)
    state, commands = reply(machine, state, "no thanks")
    assert templates(commands) == ["no_slots_link"]
    assert not any(isinstance(c, JoinWaitlist) for c in commands)
    assert state.stage == "routed"


def test_a_location_without_a_waitlist_keeps_the_booking_page() -> None:
    _, state, commands = no_time_fits(replace(WAITLIST, waitlist=False))
    assert templates(commands) == ["no_slots_link"]
    assert state.last_question is None


def test_every_round_turned_down_offers_the_waitlist() -> None:
    machine = Machine(WAITLIST)
    state = State(stage="offering", treatments=("Botox",), offer_rounds=3, offers=(SLOT,))
    state, commands = reply(machine, state, "none of those work")
    assert not any(isinstance(c, FindOffers) for c in commands)
    assert templates(commands) == ["offer_waitlist"]


def offered(state: State = State()) -> tuple[Machine, State, list[Command]]:
    machine = Machine(WAITLIST)
    event = Offered("Botox", (SLOT,), "waitlist_offer", waitlist_entry=7)
    state, commands = machine.transition(state, event, NOW)
    return machine, state, commands


def test_a_freed_slot_is_one_automated_text_and_yes_books_it_for_the_entry() -> None:
    machine, state, commands = offered()
    sent = [c for c in commands if isinstance(c, Reply)]
    assert [(r.template, r.kind) for r in sent] == [("waitlist_offer", "waitlist")]
    assert dict(sent[0].values)["slots"] == "Thu Nov 26 at 3:00pm"
    assert state.waitlist_entry == 7
    state, commands = reply(machine, state, "yes")
    assert [c for c in commands if isinstance(c, Book)] == [Book(SLOT, "Botox", None, 7)]
    state, commands = machine.transition(state, Booked(1, "Thu Nov 26 at 3:00pm", "Anna"), NOW)
    assert templates(commands) == ["booked"]
    assert state.waitlist_entry is None


def test_a_yes_too_late_hears_it_is_gone_and_keeps_waiting() -> None:
    machine, state, _ = offered()
    state, _ = reply(machine, state, "yes")
    state, commands = machine.transition(state, SlotTaken(SLOT.start), NOW)
    assert templates(commands) == ["waitlist_taken"]
    assert KeepWaiting(7) in commands
    assert not any(isinstance(c, FindOffers) for c in commands)
    assert state.waitlist_entry is None


def test_no_to_a_freed_slot_keeps_the_place_on_the_waitlist() -> None:
    machine, state, _ = offered()
    state, commands = reply(machine, state, "no")
    assert templates(commands) == ["waitlist_declined"]
    assert KeepWaiting(7) in commands


def test_a_thread_staff_have_gets_no_offer() -> None:
    machine = Machine(WAITLIST)
    state, _ = machine.transition(State(), StaffTookOver(), NOW)
    _, state, commands = offered(state)
    assert commands == []
    assert state.waitlist_entry is None


def test_a_rebooking_text_offers_real_times_as_an_automated_text() -> None:
    machine = Machine(WAITLIST)
    event = Offered("Botox", (SLOT, replace(SLOT, start="2026-11-27T10:00:00-08:00")), "rebook")
    state, commands = machine.transition(State(), event, NOW)
    sent = [c for c in commands if isinstance(c, Reply)]
    assert [(r.template, r.kind) for r in sent] == [("rebook", "rebook")]
    state, commands = reply(machine, state, "2")
    assert [c.offer.start for c in commands if isinstance(c, Book)] == ["2026-11-27T10:00:00-08:00"]


@pytest.mark.parametrize(
    "template",
    [
        "offer_waitlist",
        "waitlisted",
        "waitlist_offer",
        "waitlist_taken",
        "waitlist_declined",
        "rebook",
        "review",
    ],
)
def test_the_new_english_wording_is_gsm7_and_names_the_spa(template: str) -> None:
    values = {
        "location": "Glow Med Spa",
        "treatment": "Botox",
        "slots": SLOT.label,
        "choices": "1 or 2",
        "review_link": "https://g.page/r/glow/review",
    }
    text = render(template, "en", values)
    assert text.startswith("Glow Med Spa: ")
    assert is_gsm7(text), text
    assert template in TEMPLATES["es"]


# --- the property ---------------------------------------------------------------------------

REPLIES = st.sampled_from(["yes", "YES!", "👍", "si", "ok", "no", "STOP", "what?", "thanks"])


@settings(max_examples=150, deadline=None)
@given(
    patients=st.integers(min_value=1, max_value=8),
    script=st.lists(st.tuples(st.integers(0, 7), REPLIES), min_size=1, max_size=30),
)
def test_one_booking_per_slot_under_any_order_of_replies(
    patients: int, script: list[tuple[int, str]]
) -> None:
    machine = Machine(WAITLIST)
    states = {}
    for n in range(patients):
        states[n], _ = machine.transition(
            State(), Offered("Botox", (SLOT,), "waitlist_offer", waitlist_entry=n), NOW
        )
    holder: int | None = None  # who has the slot: the booking lock's single claim
    booked_texts = 0
    books: list[int] = []
    for who, text in script:
        if who >= patients:
            continue
        state, commands = reply(machine, states[who], text)
        for command in commands:
            if isinstance(command, Book):
                assert command.waitlist_entry == who
                assert command.offer == SLOT
                books.append(who)
                if holder is None:
                    holder = who
                    state, more = machine.transition(state, Booked(who, "Thu", "Anna"), NOW)
                    booked_texts += templates(more).count("booked")
                else:
                    state, more = machine.transition(state, SlotTaken(SLOT.start), NOW)
                    assert templates(more) == ["waitlist_taken"]
                    assert KeepWaiting(who) in more
            if isinstance(command, KeepWaiting):
                assert command.waitlist_entry == who
        states[who] = state
    # Exactly one "you're booked" when someone took it, and nobody asked to book it twice.
    assert booked_texts == (0 if holder is None else 1)
    assert len(books) == len(set(books))
    assert all(s.waitlist_entry is None for n, s in states.items() if n == holder)
