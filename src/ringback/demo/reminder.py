"""The demo phone's "Book and remind me" control: book the caller's next free time and
send its reminder now, so a reminder (and the replies to it) can be tried in a minute.

It goes through the real parts: the booking service books the slot (as staff would), the
reminder row is written as the sweep writes it, only due now rather than days ahead, and
:func:`ringback.conversation.reminders.send` sends it, or says why not (opted out, the
day's automated text already sent ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from ringback.booking import service as booking
from ringback.config import Location, Service
from ringback.conversation import reminders
from ringback.db import insert_ignore, transaction
from ringback.deps import Deps
from ringback.models import AppointmentReminder
from ringback.patients import service as patients
from ringback.readable import when


class DemoReminderError(ValueError):
    """Nothing to book: ``field`` names what was wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class DemoReminder:
    appointment_id: int
    when: str
    status: str  # sent | skipped
    skip_reason: str | None


def bookable(deps: Deps, to: str) -> tuple[Location, Service | None]:
    """The demo location called at ``to`` and the first treatment someone there performs."""
    location = deps.locations.by_number(to)
    if location is None:
        raise DemoReminderError("to", f"no demo location has the number {to}")
    service = next(
        (
            s
            for s in location.services
            if not s.consult and any(p.performs(s.name) for p in location.providers)
        ),
        None,
    )
    return location, service


def book_and_remind(deps: Deps, caller: str, to: str) -> DemoReminder:
    location, service = bookable(deps, to)
    if service is None:
        raise DemoReminderError("to", f"{location.name} does not book itself")
    now = deps.clock()
    offset = min((r.offset_minutes for r in location.reminders), default=120)
    with transaction(deps.sessions) as session:
        patient = patients.get_or_create(session, location.id, caller, now)
        slots = booking.offer(session, location, service, now, limit=1)
        appointment = (
            booking.reserve(session, deps, location, service, patient, slots[0], source="staff")
            if slots
            else None
        )
        if appointment is None:
            raise DemoReminderError("to", f"{location.name} has no free time to book")
        appointment.reminders_planned_at = now  # its reminder is written here, due now
        reminder_id = insert_ignore(
            session,
            AppointmentReminder,
            {
                "appointment_id": appointment.id,
                "location_id": location.id,
                "patient_id": patient.id,
                "offset_minutes": offset,
                "due_at": now,
                "status": "pending",
                "created_at": now,
            },
            ["appointment_id", "offset_minutes"],
        )
        appointment_id, starts_at = appointment.id, appointment.starts_at
    assert reminder_id is not None
    reminders.send(deps, reminder_id)
    with deps.sessions() as session:
        row = session.get(AppointmentReminder, reminder_id)
        assert row is not None
        return DemoReminder(
            appointment_id=appointment_id,
            when=when(starts_at, location.zone),
            status=row.status,
            skip_reason=row.skip_reason,
        )
