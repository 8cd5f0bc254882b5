"""At most N automated texts per patient per local day (a location setting).

Automated texts are the ones nobody asked for just now: reminders, the bot's nudge, the
no-show text (and, later, waitlist offers, rebooking and review requests). Replies to
the patient, staff texts, keyword confirmations and urgent wording are never counted or
held back. Each kind that is automated is listed in :data:`AUTOMATED_KINDS`; a new
automated sender adds its kind there and asks :func:`allows` before queueing.

:func:`allows` locks the patient's row first, so two automated texts decided at once for
one patient (two reminders, a reminder and a nudge) queue one after the other and the
second sees the first.
"""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ringback.config import Location
from ringback.models import Message, Patient

# Message kinds that count against the cap (a row ``suppressed`` at queue time does not).
AUTOMATED_KINDS: tuple[str, ...] = ("reminder", "nudge", "no_show", "waitlist", "rebook", "review")


def day_start(location: Location, now: datetime) -> datetime:
    """Local midnight at the location, of the day ``now`` falls on."""
    local = now.astimezone(location.zone)
    return datetime.combine(local.date(), time(0), tzinfo=location.zone)


def sent_today(session: Session, location: Location, patient_id: int, now: datetime) -> int:
    """Automated texts queued to the patient since local midnight (indexed by patient,
    kind and creation time)."""
    return int(
        session.scalar(
            select(func.count(Message.id)).where(
                Message.patient_id == patient_id,
                Message.kind.in_(AUTOMATED_KINDS),
                Message.created_at >= day_start(location, now),
                Message.status != "suppressed",
            )
        )
        or 0
    )


def allows(session: Session, location: Location, patient: Patient, now: datetime) -> bool:
    """Whether one more automated text may go to ``patient`` today. Call in the
    transaction that queues it (it takes the patient's row lock)."""
    limit = location.automated_texts_per_day
    if limit is None:
        return True
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update())
    return sent_today(session, location, patient.id, now) < limit
