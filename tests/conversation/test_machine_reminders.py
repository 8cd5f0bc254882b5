"""The machine after a reminder and after a no-show, as tables of cases (no database):
what each reply to a reminder does, and the no-show's one warm text with fresh times."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from ringback.conversation.machine import (
    AlertStaff,
    CancelAppointment,
    Close,
    ConfirmAppointment,
    FindOffers,
    HandOff,
    Inbound,
    Machine,
    MissedVisit,
    NoteForStaff,
    OffersFound,
    Reminded,
    Reply,
    Schedule,
    State,
    Upcoming,
)
from ringback.conversation.service import clinic
from ringback.conversation.understand import understand
from tests.support.conversation import GLOW, NOW

VISIT = Upcoming(id=7, when="Thu Nov 26 at 3:00pm", service="Botox")
STARTS = (NOW + timedelta(days=2)).isoformat()
# A location that books elsewhere (no providers): reminders of imported visits still work.
ELSEWHERE = clinic(GLOW)
HERE = replace(ELSEWHERE, schedules=True)


def reminded(rules: object = ELSEWHERE) -> tuple[Machine, State]:
    machine = Machine(rules)  # type: ignore[arg-type]
    state, commands = machine.transition(State(), Reminded(VISIT, until=STARTS), NOW)
    assert state.last_question == "confirm"
    assert state.appointment_id == 7
    # The thread waits for an answer until the visit, not just a day.
    assert Schedule("close", NOW + timedelta(days=2)) in commands
    assert not [c for c in commands if isinstance(c, Reply)]  # the reminder itself is sent apart
    return machine, state


def reply(machine: Machine, state: State, text: str) -> tuple[State, list[object]]:
    u = understand(text, NOW, GLOW, asked=state.last_question)
    new, commands = machine.transition(state, Inbound(u), NOW + timedelta(minutes=1))
    return new, list(commands)


@pytest.mark.parametrize(
    "text", ["C", "yes", "see you then", "ok see u then", "👍", "si", "confirmo", "Confirmed!"]
)
def test_confirm(text: str) -> None:
    machine, state = reminded()
    _, commands = reply(machine, state, text)
    assert ConfirmAppointment(7) in commands
    assert Close("confirmed") in commands
    assert [c.template for c in commands if isinstance(c, Reply)] == ["appointment_confirmed"]


@pytest.mark.parametrize(("confirm_first", "texts"), [(True, ["X", "X"]), (False, ["X"])])
def test_cancel_follows_confirm_cancel(confirm_first: bool, texts: list[str]) -> None:
    machine, state = reminded(replace(ELSEWHERE, confirm_cancel=confirm_first))
    commands: list[object] = []
    for text in texts:
        state, commands = reply(machine, state, text)
    assert CancelAppointment(7) in commands


def test_reschedule_offers_real_times_where_the_spa_books_itself() -> None:
    machine, state = reminded(HERE)
    _, commands = reply(machine, state, "R")
    assert [c.template for c in commands if isinstance(c, Reply)] == ["ask_reschedule_time"]
    machine, state = reminded(HERE)
    _, commands = reply(machine, state, "can we move it to friday afternoon?")
    assert any(isinstance(c, FindOffers) and c.treatment == "Botox" for c in commands)


def test_reschedule_goes_to_the_front_desk_where_the_spa_books_elsewhere() -> None:
    machine, state = reminded()
    _, commands = reply(machine, state, "R")
    assert HandOff("appointment_change") in commands


@pytest.mark.parametrize("text", ["running 10 min late", "stuck in traffic", "llego tarde"])
def test_running_late_is_acknowledged_and_noted(text: str) -> None:
    machine, state = reminded()
    _, commands = reply(machine, state, text)
    assert NoteForStaff("running_late") in commands
    assert [c.template for c in commands if isinstance(c, Reply)] == ["running_late"]
    assert not [c for c in commands if isinstance(c, (HandOff, AlertStaff))]


@pytest.mark.parametrize("text", ["where do I park?", "can I bring my daughter?"])
def test_a_question_goes_to_staff(text: str) -> None:
    machine, state = reminded()
    _, commands = reply(machine, state, text)
    assert HandOff("appointment_question") in commands


def test_staff_keep_a_thread_they_own() -> None:
    machine = Machine(ELSEWHERE)
    owned = State(stage="handoff", outcome="pricing", paused=True)
    state, commands = machine.transition(owned, Reminded(VISIT, until=STARTS), NOW)
    assert (state.stage, state.paused) == ("handoff", True)
    assert state.appointment_id == 7
    assert commands == []


def test_no_show_offers_fresh_times_once_as_an_automated_text() -> None:
    machine = Machine(HERE)
    state, commands = machine.transition(State(), MissedVisit("Botox"), NOW)
    find = [c for c in commands if isinstance(c, FindOffers)]
    assert find == [FindOffers("Botox", (), (), template="no_show_offer")]
    state, commands = machine.transition(state, OffersFound((), "no_show_offer"), NOW)
    texts = [c for c in commands if isinstance(c, Reply)]
    assert [(t.template, t.kind) for t in texts] == [("no_show", "no_show")]
    assert state.nudged  # no nudge after the no-show text
