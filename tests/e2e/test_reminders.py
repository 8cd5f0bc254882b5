"""Appointment reminders end to end: appointments made by the bot over signed webhooks and
by a CSV import, the sweep on a test clock, texts as the fake Twilio received them, replies
over signed webhooks. Both databases, both queues."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from ringback.conversation import reminders
from ringback.db import transaction
from ringback.models import (
    Appointment,
    AppointmentReminder,
    Conversation,
    Message,
    Note,
    Patient,
)
from ringback.patients import service as patients
from ringback.patients.importing import ColumnMapping, import_appointments
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.booking import scheduling
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

# Tue Nov 24 2026, 10:00 in Los Angeles (the conftest's OPEN_HOURS).
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
# Thu Nov 26, 15:00 in Los Angeles.
THURSDAY_3PM = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def book(
    service: Service,
    caller: str,
    starts_at: datetime,
    *,
    source: str = "staff",
    what: str = "Botox",
) -> int:
    """An appointment as staff or another system books it (straight into the database)."""
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        patient = patients.get_or_create(session, "glow-downtown", caller, deps.clock())
        appointment = Appointment(
            location_id="glow-downtown",
            patient_id=patient.id,
            service=what,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=30),
            status="booked",
            source=source,
            created_at=deps.clock(),
        )
        session.add(appointment)
        session.flush()
        return appointment.id


def at(service: Service, moment: datetime) -> None:
    """Move the service's clock to ``moment`` (it keeps running from there)."""
    service.clock.advance(moment - service.clock())


def sweep(service: Service) -> dict[str, int]:
    return run_sweep(service.runtime.deps)


def reminder_rows(service: Service, appointment_id: int) -> list[AppointmentReminder]:
    return service.rows(
        select(AppointmentReminder)
        .where(AppointmentReminder.appointment_id == appointment_id)
        .order_by(AppointmentReminder.offset_minutes.desc())
    )


def settled(service: Service, appointment_id: int, offset: int) -> AppointmentReminder:
    def done() -> AppointmentReminder | None:
        rows = [r for r in reminder_rows(service, appointment_id) if r.offset_minutes == offset]
        return rows[0] if rows and rows[0].status != "pending" else None

    return wait_for(done, what=f"reminder {offset} min settled")  # type: ignore[no-any-return]


def test_bot_booking_gets_its_reminders_once_and_c_confirms(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(4101)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday afternoon please, first time")
    next_text(service, caller, 1)
    text_in(service, caller, "1")
    assert "You're booked" in next_text(service, caller, 3)
    appointment = wait_for(
        lambda: service.scalar(select(Appointment).where(Appointment.source == "bot")),
        what="the bot's booking",
    )
    sweep(service)  # plans it: 48 h and 2 h before
    rows = reminder_rows(service, appointment.id)
    assert [r.offset_minutes for r in rows] == [2880, 120]
    assert rows[0].due_at == appointment.starts_at - timedelta(hours=48)
    assert texts_to(service, caller)[-1].body.startswith("Glow Med Spa: You're booked")

    at(service, rows[0].due_at + timedelta(seconds=1))
    sweep(service)
    text = next_text(service, caller, 4)
    assert text.startswith("Glow Med Spa: a reminder of your appointment on Thu Nov 26 at ")
    assert "Botox" not in text  # no health details unless the location allows them
    assert "Reply C to confirm" in text
    assert settled(service, appointment.id, 2880).status == "sent"
    sweep(service)
    sweep(service)
    settle(0.5)
    assert len(texts_to(service, caller)) == 4  # exactly once

    text_in(service, caller, "see you then")
    assert "you're confirmed for Thu Nov 26" in next_text(service, caller, 5)
    confirmed = wait_for(
        lambda: service.scalar(
            select(Appointment.confirmed_at).where(Appointment.id == appointment.id)
        ),
        what="confirmed",
    )
    assert confirmed is not None


def test_a_reminder_due_while_the_worker_was_down_goes_late_once(
    make_service: Callable[..., Service],
) -> None:
    down = make_service(run_worker=False)
    caller = caller_number(4102)
    appointment_id = book(down, caller, THURSDAY_3PM)
    sweep(down)  # planned, but no worker will send anything
    due = reminder_rows(down, appointment_id)[0].due_at
    # Back up three hours after the 48 h reminder was due: it goes, late, once.
    service = make_service(now=due + timedelta(hours=3))
    before = len(texts_to(service, caller))
    sweep(service)
    row = settled(service, appointment_id, 2880)
    assert row.status == "sent"
    text = wait_for(lambda: len(texts_to(service, caller)) > before and texts_to(service, caller))
    assert "a reminder of your appointment on Thu Nov 26 at 3:00pm" in text[-1].body
    sweep(service)
    settle(0.5)
    assert len(texts_to(service, caller)) == before + 1


def test_nothing_for_a_visit_that_started_was_cancelled_or_an_opted_out_patient(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    started, cancelled, stopped = (caller_number(n) for n in (4103, 4104, 4105))
    for caller in (started, cancelled, stopped):
        miss(service, caller)
        next_text(service, caller, 1)
    ids = {
        started: book(service, started, NOW + timedelta(hours=2, minutes=30)),
        cancelled: book(service, cancelled, NOW + timedelta(hours=5)),
        stopped: book(service, stopped, NOW + timedelta(hours=5)),
    }
    sweep(service)  # planned: the 2 h reminder only (48 h before was before the booking)
    assert [r.offset_minutes for r in reminder_rows(service, ids[started])] == [120]
    with transaction(service.runtime.deps.sessions) as session:
        appointment = session.get(Appointment, ids[cancelled])
        assert appointment is not None
        appointment.status = "cancelled"
    text_in(service, stopped, "STOP")
    wait_for(
        lambda: service.scalar(select(Patient.opted_out_at).where(Patient.phone == stopped)),
        what="opt-out",
    )
    # The worker was down until after that visit began: its reminder is skipped.
    at(service, NOW + timedelta(hours=2, minutes=35))
    sweep(service)
    assert settled(service, ids[started], 120).skip_reason == "started"
    at(service, NOW + timedelta(hours=3, seconds=1))
    sweep(service)
    assert settled(service, ids[cancelled], 120).skip_reason == "cancelled"
    assert settled(service, ids[stopped], 120).skip_reason == "opted_out"
    settle(0.5)
    reminded = service.rows(select(Message.to_number).where(Message.kind == "reminder"))
    assert reminded == []
    assert not any("reminder" in m.body for m in service.twilio.messages)


def test_imported_appointments_need_consent_and_texting_hours_move_reminders_earlier(
    make_service: Callable[..., Service],
) -> None:
    def early_reminders(config: dict[str, Any]) -> None:
        glow = config["locations"][0]
        glow["reminders"] = [{"hours_before": 2}]
        glow["health_details_in_texts"] = True
        glow["automated_texts_per_day"] = 2  # the overdue nudge of the call's thread, too

    service = make_service(edit=early_reminders)
    known, stranger, agreed = caller_number(4106), caller_number(4107), caller_number(4111)
    miss(service, known)
    next_text(service, known, 1)
    rows = [
        {"phone": known, "service": "Filler", "start": "2026-11-26 09:00", "sms_consent": ""},
        {"phone": stranger, "service": "Filler", "start": "2026-11-26 09:30", "sms_consent": "no"},
        {"phone": agreed, "service": "Filler", "start": "2026-11-26 09:45", "sms_consent": "Yes"},
    ]
    deps = service.runtime.deps
    location = deps.locations.get("glow-downtown")
    assert location is not None
    with transaction(deps.sessions) as session:
        report = import_appointments(
            session, location, rows, ColumnMapping.preset("appointments"), deps.clock()
        )
    assert report.created == 3, report
    sweep(service)
    ids = {
        phone: service.scalar(select(Appointment.id).join(Patient).where(Patient.phone == phone))
        for phone in (known, stranger, agreed)
    }
    # 09:00 less 2 h is 07:00, before texting hours (08:00-21:00): Wednesday at 20:59.
    due = reminder_rows(service, ids[known])[0].due_at
    assert due == datetime(2026, 11, 26, 4, 59, tzinfo=UTC)
    at(service, due + timedelta(seconds=1))
    sweep(service)
    assert settled(service, ids[known], 120).status == "sent"
    text = wait_for(
        lambda: [m.body for m in texts_to(service, known) if "reminder" in m.body],
        what="the reminder",
    )[0]
    assert text == (
        "Glow Med Spa: a reminder of your Filler appointment on Thu Nov 26 at 9:00am. "
        "Reply C to confirm, R to reschedule or X to cancel."
    )
    assert settled(service, ids[stranger], 120).skip_reason == "no_consent"
    assert texts_to(service, stranger) == []
    assert settled(service, ids[agreed], 120).status == "sent"  # the import said so
    assert "a reminder of your Filler appointment" in next_text(service, agreed, 1)


def test_running_late_and_questions_after_a_reminder(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    late, asking = caller_number(4108), caller_number(4109)
    ids = {caller: book(service, caller, THURSDAY_3PM) for caller in (late, asking)}
    sweep(service)
    at(service, THURSDAY_3PM - timedelta(hours=2))
    sweep(service)
    for caller in (late, asking):
        assert "a reminder of your appointment" in next_text(service, caller, 1)
    text_in(service, late, "running 10 min late, sorry!")
    assert "Thanks for letting us know" in next_text(service, late, 2)
    note = wait_for(
        lambda: service.scalar(select(Note.body).where(Note.patient_id == _patient(service, late))),
        what="staff note",
    )
    assert "running late" in note
    text_in(service, asking, "where do I park?")
    assert "our front desk will help" in next_text(service, asking, 2)
    handed = wait_for(
        lambda: service.scalar(
            select(Conversation).where(
                Conversation.patient_id == _patient(service, asking),
                Conversation.status == "needs_staff",
            )
        ),
        what="handoff",
    )
    assert handed.handoff_reason == "appointment_question"
    assert ids


def test_one_automated_text_a_day(make_service: Callable[..., Service]) -> None:
    def two_close_reminders(config: dict[str, Any]) -> None:
        config["locations"][0]["reminders"] = [{"hours_before": 4}, {"hours_before": 2}]

    service = make_service(edit=two_close_reminders)
    caller = caller_number(4110)
    appointment_id = book(service, caller, THURSDAY_3PM)
    sweep(service)
    at(service, THURSDAY_3PM - timedelta(hours=4))
    sweep(service)
    assert settled(service, appointment_id, 240).status == "sent"
    at(service, THURSDAY_3PM - timedelta(hours=2))
    sweep(service)
    assert settled(service, appointment_id, 120).skip_reason == "daily_cap"
    settle(0.3)
    assert len(texts_to(service, caller)) == 1


def _patient(service: Service, phone: str) -> int:
    return int(service.scalar(select(Patient.id).where(Patient.phone == phone)))


def test_reminder_times_fall_inside_texting_hours() -> None:
    """Unit: the due time moves back to the last texting-hours minute, never forward."""
    from ringback.config import Location, Reminder

    location = Location(
        id="x",
        name="X",
        phone_number="+13105550100",
        timezone="America/Los_Angeles",
        reminders=(Reminder(hours_before=48), Reminder(hours_before=2)),
    )
    appointment = Appointment(starts_at=datetime(2026, 11, 26, 16, 0, tzinfo=UTC))  # 08:00 LA
    times = dict(reminders.reminder_times(location, appointment))
    assert times[2880] == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # Tue 08:00: inside
    assert times[120] == datetime(2026, 11, 26, 4, 59, tzinfo=UTC)  # Wed 20:59, not 06:00
