"""Appointment reminders and the no-show text, on the existing queue and sweep.

Every booked appointment counts, whatever made it (the bot, the booking page, staff, a
CSV import, a calendar, another system through the API): the sweep's **plan** step finds
booked appointments whose reminders are not written yet (a partial index holds only
those) and writes one :class:`AppointmentReminder` row per configured offset, due
``hours_before`` the visit, or at the last texting-hours moment before that. Its **due**
step finds pending rows whose time has come (an index on status and due time) and hands
each to a ``send_reminder`` job, with a lease so it is not handed out twice.

:func:`send` settles a row exactly once, under its row lock: sent (the text queued in the
outbox, keyed ``reminder:<row>``, in the appointment's thread), or skipped with why
(cancelled, already started, opted out, no consent, the daily cap). A reminder due while
every worker was down goes out late, once, at the first sweep, unless the visit started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, text, update
from sqlalchemy.orm import Session

from ringback.config import Location
from ringback.conversation import service as conversation_service
from ringback.conversation.threads import find_open, open_conversation
from ringback.db import insert_ignore, transaction
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.messaging import daily_cap
from ringback.messaging.outbox import queue_sms
from ringback.models import (
    Appointment,
    AppointmentReminder,
    Call,
    Conversation,
    Message,
    Patient,
)
from ringback.patients import service as patients
from ringback.phones import display
from ringback.ports import EnqueueFailed
from ringback.readable import when

log = logging.getLogger(__name__)

PLAN_BATCH = 500
DUE_BATCH = 200
LEASE = timedelta(seconds=60)
# The partial index's own predicate, written out so SQLite's planner can use the index.
_UNPLANNED = text("appointments.reminders_planned_at IS NULL AND appointments.status = 'booked'")


def reminder_times(location: Location, appointment: Appointment) -> list[tuple[int, datetime]]:
    """(offset in minutes, when it is due) for each of the location's reminders: the
    offset before the start, moved back to the last texting-hours moment before it when
    that falls outside texting hours."""
    return [
        (
            r.offset_minutes,
            location.last_texting_time(appointment.starts_at - timedelta(minutes=r.offset_minutes)),
        )
        for r in location.reminders
    ]


def has_consent(session: Session, patient: Patient, appointment: Appointment) -> bool:
    """Whether the patient agreed to texts: booked through Ringback (they called or texted
    us), or, for an imported appointment, an import said so (``sms_consent``), they
    texted START, or they have called or texted the location themselves."""
    if appointment.source != "import" or patient.opted_in_at is not None:
        return True
    if patient.text_consent_at is not None:
        return True
    called = session.scalar(select(exists().where(Call.patient_id == patient.id)))
    texted = session.scalar(
        select(exists().where(Message.patient_id == patient.id, Message.direction == "inbound"))
    )
    return bool(called or texted)


def plan(deps: Deps) -> int:
    """Write the reminder rows of booked appointments that have none yet; how many
    appointments were planned."""
    now = deps.clock()
    with transaction(deps.sessions) as session:
        appointments = session.scalars(
            select(Appointment)
            .where(_UNPLANNED)
            .order_by(Appointment.starts_at)
            .limit(PLAN_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for appointment in appointments:
            appointment.reminders_planned_at = now
            location = deps.locations.get(appointment.location_id)
            if location is None or appointment.starts_at <= now:
                continue
            created = appointment.created_at or now
            for offset, due in reminder_times(location, appointment):
                if due < created - timedelta(minutes=1):
                    continue  # booked after it was due: the confirmation said it all
                insert_ignore(
                    session,
                    AppointmentReminder,
                    {
                        "appointment_id": appointment.id,
                        "location_id": appointment.location_id,
                        "patient_id": appointment.patient_id,
                        "offset_minutes": offset,
                        "due_at": due,
                        "status": "pending",
                        "created_at": now,
                    },
                    ["appointment_id", "offset_minutes"],
                )
        return len(appointments)


def due(session: Session, now: datetime, limit: int = DUE_BATCH) -> list[int]:
    """Pending reminders due by ``now`` that no job holds (the sweep's query, indexed by
    status and due time)."""
    return list(
        session.scalars(
            select(AppointmentReminder.id)
            .where(
                AppointmentReminder.status == "pending",
                AppointmentReminder.due_at <= now,
                or_(
                    AppointmentReminder.lease_until.is_(None),
                    AppointmentReminder.lease_until <= now,
                ),
            )
            .order_by(AppointmentReminder.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def sweep(deps: Deps) -> dict[str, int]:
    """Plan new appointments' reminders, then hand the due ones to jobs (once per lease);
    the non-zero counts of what it did."""
    planned = plan(deps)
    now = deps.clock()
    with transaction(deps.sessions) as session:
        ids = due(session, now)
        if ids:
            session.execute(
                update(AppointmentReminder)
                .where(AppointmentReminder.id.in_(ids))
                .values(lease_until=now + LEASE)
            )
    handed = 0
    try:
        for reminder_id in ids:
            deps.jobs.send_reminder(reminder_id)
            handed += 1
    except EnqueueFailed:
        left = ids[handed:]
        with transaction(deps.sessions) as session:
            session.execute(
                update(AppointmentReminder)
                .where(AppointmentReminder.id.in_(left))
                .values(lease_until=now)
            )
        counts = {"reminders_planned": planned, "reminders": handed, "unqueued": len(left)}
    else:
        counts = {"reminders_planned": planned, "reminders": handed}
    # Only what it did, like the other sweeps: an idle sweep reports nothing.
    return {name: count for name, count in counts.items() if count}


def _skip(reminder: AppointmentReminder, reason: str, now: datetime) -> None:
    reminder.status = "skipped"
    reminder.skip_reason = reason
    reminder.settled_at = now
    reminder.lease_until = None
    log_event(log, "reminder.skipped", reminder_id=reminder.id, reason=reason)


def thread_for(
    session: Session, location: Location, patient: Patient, appointment: Appointment, now: datetime
) -> Conversation:
    """The thread a text about ``appointment`` goes in: the patient's open one, else the
    appointment's own thread opened again, else a new one."""
    conversation = find_open(session, location.id, patient.id)
    if conversation is not None:
        return conversation
    if appointment.conversation_id is not None:
        own = session.get(Conversation, appointment.conversation_id, with_for_update=True)
        latest = session.scalar(
            select(Conversation.id)
            .where(Conversation.location_id == location.id, Conversation.patient_id == patient.id)
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        if own is not None and own.id == latest and not own.is_open:
            own.is_open = True
            own.closed_at = None
            if own.status == "closed":
                own.status = "active"
            session.flush()
            return own
    conversation, _ = open_conversation(session, location.id, patient, now, None)
    return conversation


def send(deps: Deps, reminder_id: int) -> None:
    """Send one reminder, or skip it with why: exactly once, however often it is called."""
    with transaction(deps.sessions) as session:
        reminder = session.get(AppointmentReminder, reminder_id, with_for_update=True)
        if reminder is None or reminder.status != "pending":
            return
        now = deps.clock()
        appointment = session.get(Appointment, reminder.appointment_id, with_for_update=True)
        patient = session.get(Patient, reminder.patient_id)
        location = deps.locations.get(reminder.location_id)
        if appointment is None or patient is None or location is None:
            _skip(reminder, "gone", now)
            return
        if appointment.status != "booked":
            _skip(reminder, "cancelled", now)
            return
        if appointment.starts_at <= now:
            _skip(reminder, "started", now)
            return
        later = session.scalar(
            select(AppointmentReminder.id).where(
                AppointmentReminder.appointment_id == appointment.id,
                AppointmentReminder.offset_minutes < reminder.offset_minutes,
                AppointmentReminder.due_at <= now,
            )
        )
        if later is not None:
            _skip(reminder, "superseded", now)  # late, and a nearer reminder is due too
            return
        if reminder.offset_minutes not in {r.offset_minutes for r in location.reminders}:
            _skip(reminder, "not_configured", now)
            return
        blocked = patients.why_not_textable(patient)
        if blocked:
            _skip(reminder, blocked, now)
            return
        if not has_consent(session, patient, appointment):
            _skip(reminder, "no_consent", now)
            return
        if not daily_cap.allows(session, location, patient, now):
            _skip(reminder, "daily_cap", now)
            return
        conversation = thread_for(session, location, patient, appointment, now)
        language = conversation.language
        config = next(r for r in location.reminders if r.offset_minutes == reminder.offset_minutes)
        template = config.template(language, health_details=location.health_details_in_texts)
        body = template.format_map(
            {
                "location": location.name,
                "phone": display(location.phone_number),
                "when": when(appointment.starts_at, location.zone, language),
                "treatment": appointment.service if location.health_details_in_texts else "",
            }
        )
        message = queue_sms(
            session,
            deps,
            location_id=location.id,
            patient=patient,
            from_number=location.phone_number,
            body=body,
            kind="reminder",
            idempotency_key=f"reminder:{reminder.id}",
            conversation_id=conversation.id,
            trigger_at=reminder.due_at,
        )
        conversation.last_outbound_at = now
        conversation_service.reminded(session, deps, location, conversation, patient, appointment)
        reminder.status = "sent"
        reminder.message_id = message.id
        reminder.settled_at = now
        reminder.lease_until = None
        late_s = round((now - reminder.due_at).total_seconds())
        log_event(
            log,
            "reminder.sent",
            reminder_id=reminder.id,
            appointment_id=appointment.id,
            offset_minutes=reminder.offset_minutes,
            late_s=late_s,
        )


class NoShowError(Exception):
    """Marking attendance was refused; ``problem`` says why (a 409 or a 422 at the edge)."""

    def __init__(self, problem: str, status: int = 422) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status


def mark_attendance(
    session: Session, deps: Deps, appointment: Appointment, attendance: str
) -> bool:
    """Staff say the visit was ``kept`` or a ``no_show``. A first no-show gets one warm
    text with fresh times (when the location allows it, the patient may be texted and the
    day's cap allows); True when that text was decided. Marking the same again changes
    nothing."""
    if attendance not in ("kept", "no_show"):
        raise NoShowError(f"attendance: expected kept or no_show, got {attendance!r}")
    now = deps.clock()
    if appointment.status != "booked":
        raise NoShowError(f"attendance: the appointment is {appointment.status}", 409)
    if appointment.starts_at > now:
        raise NoShowError("attendance: the appointment has not started yet", 409)
    if appointment.attendance == attendance:
        return False
    first_no_show = attendance == "no_show" and appointment.attendance is None
    appointment.attendance = attendance
    appointment.attendance_at = now
    funnel.appointment_changed(appointment)
    log_event(log, "appointment.attendance", appointment_id=appointment.id, attendance=attendance)
    location = deps.locations.get(appointment.location_id)
    patient = session.get(Patient, appointment.patient_id)
    if not first_no_show or location is None or patient is None or not location.no_show_text:
        return False
    if patients.why_not_textable(patient) or not has_consent(session, patient, appointment):
        return False
    if not daily_cap.allows(session, location, patient, now):
        log_event(log, "sms.daily_cap", appointment_id=appointment.id, kind="no_show")
        return False
    conversation = thread_for(session, location, patient, appointment, now)
    conversation_service.missed_visit(session, deps, location, conversation, patient, appointment)
    return True


def attend(
    deps: Deps, appointment_id: int, attendance: str, can_see: Callable[[str], bool]
) -> tuple[Appointment, bool]:
    """Staff mark appointment ``appointment_id`` kept or a no-show (one transaction); the
    appointment, and whether the no-show text was decided. An appointment the viewer may
    not see is a 404, exactly like one that does not exist."""
    with transaction(deps.sessions) as session:
        appointment = session.get(Appointment, appointment_id, with_for_update=True)
        if appointment is None or not can_see(appointment.location_id):
            raise NoShowError(f"appointment: no appointment {appointment_id}", 404)
        texted = mark_attendance(session, deps, appointment, attendance)
        session.flush()
        session.expunge(appointment)
        return appointment, texted
