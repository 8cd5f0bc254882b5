"""Property-based: random bookings, cancellations, STOP / START, replies, no-shows and time
passing (the reminder sweep and the conversation timers run as time passes), driven
through the service, must never break what reminders promise:

* nothing is sent to a patient while they are opted out (but STOP's one confirmation);
* no reminder for an appointment cancelled before it was due;
* at most one automated text (reminders, nudges, the no-show text) per patient per local
  day; replies to the patient are never held back;
* each reminder is settled once (sent or skipped), never sent twice.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ringback.conversation import reminders
from ringback.db import transaction
from ringback.messaging.daily_cap import AUTOMATED_KINDS
from ringback.models import Appointment, AppointmentReminder, Message, Patient
from tests.conftest import OPEN_HOURS
from tests.support.inprocess import InProcess, in_process

REPLIES = ("C", "yes", "see you then", "👍", "X", "R", "running late", "where do I park?", "1")

Step = tuple[str, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.sampled_from([3, 5, 20, 30, 50, 70])),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(st.just("say"), st.sampled_from([*REPLIES, "STOP", "START"])),
        st.tuples(st.just("no_show"), st.none()),
        st.tuples(st.just("wait"), st.sampled_from([1, 2, 5, 11, 23])),
    ),
    min_size=1,
    max_size=14,
)
_numbers = itertools.count(1)
_services: dict[str, InProcess] = {}


def _service(database_url: str) -> InProcess:
    if database_url not in _services:
        _services[database_url] = in_process(database_url, OPEN_HOURS)
    return _services[database_url]


def _patient_id(service: InProcess, caller: str) -> int:
    with service.deps.sessions() as session:
        return int(session.scalar(select(Patient.id).where(Patient.phone == caller)) or 0)


def _book(service: InProcess, patient_id: int, hours: int) -> None:
    now = service.clock()
    start = (now + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    with transaction(service.deps.sessions) as session:
        session.add(
            Appointment(
                location_id="glow-downtown",
                patient_id=patient_id,
                service="Botox",
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                status="booked",
                source="staff",
                created_at=now,
            )
        )


def _cancel(service: InProcess, patient_id: int) -> None:
    with transaction(service.deps.sessions) as session:
        appointment = session.scalars(
            select(Appointment)
            .where(Appointment.patient_id == patient_id, Appointment.status == "booked")
            .order_by(Appointment.id.desc())
        ).first()
        if appointment is not None:
            appointment.status = "cancelled"
            appointment.cancelled_at = service.clock()
            appointment.cancelled_by = "staff"


def _no_show(service: InProcess, patient_id: int) -> None:
    with service.deps.sessions() as session:
        started = session.scalar(
            select(Appointment.id)
            .where(
                Appointment.patient_id == patient_id,
                Appointment.status == "booked",
                Appointment.starts_at <= service.clock(),
            )
            .limit(1)
        )
    if started is not None:
        reminders.attend(service.deps, started, "no_show", lambda _: True)


def _sweep(service: InProcess) -> None:
    """What the sweep does with reminders, run in process (no queue)."""
    reminders.plan(service.deps)
    with transaction(service.deps.sessions) as session:
        due = reminders.due(session, service.clock())
    for reminder_id in due:
        reminders.send(service.deps, reminder_id)
        reminders.send(service.deps, reminder_id)  # a duplicated job changes nothing


def _wait(service: InProcess, hours: int) -> None:
    for _ in range(hours):  # the sweep runs often: look every hour of the wait
        service.wait(timedelta(hours=1))
        _sweep(service)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_reminder_invariants(database_url: str, plan: list[Step]) -> None:
    service = _service(database_url)
    service.clock.now = OPEN_HOURS
    caller = f"+1213557{next(_numbers):04d}"
    service.call(caller)
    patient_id = _patient_id(service, caller)
    opted_out_since: datetime | None = None
    opted_out: list[tuple[datetime, datetime | None]] = []
    log: list[str] = []
    for kind, arg in plan:
        log.append(f"{service.clock().isoformat()} {kind} {arg!r}")
        if kind == "book":
            _book(service, patient_id, int(arg))
        elif kind == "cancel":
            _cancel(service, patient_id)
        elif kind == "no_show":
            _no_show(service, patient_id)
        elif kind == "wait":
            _wait(service, int(arg))
        else:
            service.text(caller, str(arg))
            if arg == "STOP" and opted_out_since is None:
                opted_out_since = service.clock()
            if arg == "START" and opted_out_since is not None:
                opted_out.append((opted_out_since, service.clock()))
                opted_out_since = None
        service.clock.now += timedelta(minutes=1)  # each step a minute apart
    if opted_out_since is not None:
        opted_out.append((opted_out_since, None))
    _check(service, caller, patient_id, opted_out, "\n".join(log))


def _check(
    service: InProcess,
    caller: str,
    patient_id: int,
    opted_out: list[tuple[datetime, datetime | None]],
    where: str,
) -> None:
    location = service.locations.get("glow-downtown")
    assert location is not None
    with service.deps.sessions() as session:
        sent = session.scalars(
            select(Message).where(
                Message.to_number == caller,
                Message.direction == "outbound",
                Message.status != "suppressed",
            )
        ).all()
        for message in sent:
            for start, end in opted_out:
                while_out = start < message.created_at and (end is None or message.created_at < end)
                assert not (while_out and message.kind != "keyword"), (
                    f"texted while opted out: {message.kind} {message.body!r}\n{where}"
                )
        per_day = Counter(
            message.created_at.astimezone(location.zone).date()
            for message in sent
            if message.kind in AUTOMATED_KINDS
        )
        assert all(n <= 1 for n in per_day.values()), f"automated texts a day: {per_day}\n{where}"
        rows = session.execute(
            select(AppointmentReminder, Appointment, Message)
            .join(Appointment, Appointment.id == AppointmentReminder.appointment_id)
            .join(Message, Message.id == AppointmentReminder.message_id, isouter=True)
            .where(AppointmentReminder.patient_id == patient_id)
        ).all()
        for reminder, appointment, message in rows:
            if reminder.status != "sent":
                assert message is None, where
                continue
            assert message is not None, where
            assert message.kind == "reminder", where
            assert (
                appointment.cancelled_at is None or appointment.cancelled_at > message.created_at
            ), f"reminded of a cancelled appointment\n{where}"
            assert message.created_at < appointment.starts_at, where
        reminder_texts = [m for m in sent if m.kind == "reminder"]
        assert len(reminder_texts) == len([r for r, _, _ in rows if r.status == "sent"]), where
