"""Whole conversations the way patients really text, end to end over signed webhooks.

Each thread in ``threads.yaml`` is played against the running service: a missed call,
then the patient's texts (short answers, emoji, typos, Spanish, changes of mind, replies
hours or days later, replies after booking), staff taking over and handing back, time
passing. After every text the invariant is checked: while the bot owns the thread the
patient gets exactly one text back (an answer, or a hand-off saying a person will follow
up); where staff own it the bot stays quiet; STOP gets its one confirmation and then
nothing. Each step may name words its answer must contain, and each thread ends in an
expected state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ringback.conversation.machine import State
from ringback.messaging import keywords
from ringback.runtime import run_sweep
from tests.conftest import Service, settle
from tests.support.booking import scheduling
from tests.support.patient import Patient
from tests.twilio_payloads import caller_number

THREADS = yaml.safe_load((Path(__file__).parent / "threads.yaml").read_text())
# Texts the bot answers even where staff own the thread: safety first, and a wrong
# number gets its one apology.
ALWAYS_ANSWERED = re.compile(r"wrong number|swell|swollen|blister|can.t breathe", re.I)


def _owner(patient: Patient) -> str:
    conversation = patient.conversation()
    if conversation is None or not conversation.is_open:
        return "bot"  # a new or closed thread: the bot answers (and may reopen it)
    state = State.from_json(conversation.state)
    return "staff" if state.paused or state.stage in ("handoff", "urgent") else "bot"


def _say(patient: Patient, text: str, step: dict[str, Any], log: list[str]) -> None:
    word = keywords.keyword(text)
    opted_out = _opted_out(patient)
    owner = _owner(patient)
    expect_silence = (
        (owner == "staff" and not ALWAYS_ANSWERED.search(text))
        or (opted_out and word != "start" and not keywords.is_answer(text))
        or (word == "stop" and opted_out)
    )
    answers = patient.say(text, quiet=expect_silence)
    log.append(f"patient: {text!r}\n  spa: {answers}")
    where = "\n".join(log)
    if expect_silence:
        assert answers == [], f"the bot spoke where it must not\n{where}"
    else:
        assert len(answers) == 1, f"left on read (or answered twice)\n{where}"
    for words in _as_list(step.get("expect")):
        assert words.lower() in answers[0].lower(), f"expected {words!r}\n{where}"
    for words in _as_list(step.get("not")):
        assert all(words.lower() not in a.lower() for a in answers), f"unwanted {words!r}\n{where}"


def _opted_out(patient: Patient) -> bool:
    from sqlalchemy import select

    from ringback.models import Patient as PatientRow

    with patient.service.db() as session:
        row = session.scalars(select(PatientRow).where(PatientRow.phone == patient.number)).first()
        return row is not None and row.opted_out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _staff(patient: Patient, action: str, log: list[str]) -> None:
    from ringback.conversation.service import hand_back, take_over

    conversation = patient.conversation()
    assert conversation is not None
    deps = patient.service.runtime.deps
    before = len(patient.received)
    if action == "take_over":
        assert take_over(deps, conversation.id, None)
    else:
        assert hand_back(deps, conversation.id, already_answered=action == "hand_back_answered")
    settle(0.4)
    log.append(f"staff: {action} -> {patient.received[before:]}")


def _wait(patient: Patient, hours: float, log: list[str]) -> None:
    before = len(patient.received)
    patient.wait(timedelta(hours=hours))
    run_sweep(patient.service.runtime.deps)
    settle(0.4)
    log.append(f"({hours} h later) -> {patient.received[before:]}")


@pytest.mark.parametrize("thread", THREADS, ids=[t["name"] for t in THREADS])
def test_thread(thread: dict[str, Any], make_service: Callable[..., Service]) -> None:
    service = make_service(edit=scheduling() if thread.get("setup") == "scheduling" else None)
    patient = Patient(service, caller_number(7000 + THREADS.index(thread)))
    log: list[str] = []
    for step in thread["steps"]:
        if step == "call" or (isinstance(step, dict) and "call" in step):
            text_back = patient.call()
            log.append(f"missed call\n  spa: {text_back!r}")
        elif "say" in step:
            _say(patient, str(step["say"]), step, log)
        elif "staff" in step:
            _staff(patient, str(step["staff"]), log)
        elif "wait" in step:
            _wait(patient, float(step["wait"]), log)
        else:
            raise AssertionError(f"unknown step {step!r}")
    end = thread.get("end", {})
    conversation = patient.conversation()
    assert conversation is not None
    state = State.from_json(conversation.state)
    where = "\n".join(log)
    if "stage" in end:
        assert state.stage == end["stage"], where
    if "status" in end:
        assert conversation.status == end["status"], where
    if "treatment" in end:
        assert conversation.treatment == end["treatment"], where
    if "patient" in end:
        assert state.patient == end["patient"], where
    if "threads" in end:
        from sqlalchemy import func, select

        from ringback.models import Conversation

        assert service.scalar(select(func.count(Conversation.id))) == end["threads"], where
