"""Thread lookup: the one open conversation per patient and location, found or opened.

Missed calls and inbound texts both land here, so a caller who calls twice, or calls and
then texts, stays in one thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ringback.db import insert_returning
from ringback.models import Appointment, Conversation, Patient


def find_open(session: Session, location_id: str, patient_id: int) -> Conversation | None:
    """The patient's open thread at the location, if any (at most one: a partial unique
    index)."""
    # ``is_open`` as the plain column, the partial unique index's own predicate, so the
    # planner can answer from that index (``is_open IS true`` does not match it).
    return session.scalars(
        select(Conversation).where(
            Conversation.location_id == location_id,
            Conversation.patient_id == patient_id,
            Conversation.is_open,
        )
    ).one_or_none()


def open_conversation(
    session: Session,
    location_id: str,
    patient: Patient,
    now: datetime,
    variant: str | None,
    *,
    known_none_open: bool = False,
) -> tuple[Conversation, bool]:
    """The patient's open conversation, creating it if there is none; True when created.

    One thread per caller is a partial unique index, so two simultaneous misses from one
    caller cannot open two threads: the loser of the race joins the winner's (its insert
    does nothing, and it reads the winner's row). ``known_none_open`` skips the first
    look when the caller has just looked in this transaction.
    """
    if not known_none_open:
        existing = find_open(session, location_id, patient.id)
        if existing is not None:
            return existing, False
    conversation = insert_returning(
        session,
        Conversation,
        {
            "location_id": location_id,
            "patient_id": patient.id,
            "opened_at": now,
            "variant": variant,
            "state": {},
        },
        ["location_id", "patient_id"],
        conflict_where=text("is_open"),  # the partial unique index's predicate
    )
    if conversation is not None:
        return conversation, True
    existing = find_open(session, location_id, patient.id)
    if existing is None:
        raise RuntimeError(
            f"no open conversation for patient {patient.id} at {location_id!r}, "
            "yet opening one conflicted"
        )
    return existing, False


# A thread that closed for one of these is over: a new text starts a new story.
_FINAL = frozenset({"opted_out", "wrong_number"})


def reopen_recent(
    session: Session, location_id: str, patient_id: int, now: datetime, within: timedelta
) -> Conversation | None:
    """Continue the patient's latest thread when it closed recently, or when it booked an
    appointment that is still ahead: "C", "X", a question about the visit, or a reply days
    later lands in the thread it belongs to. Call only when no thread is open."""
    latest = session.scalars(
        select(Conversation)
        .where(Conversation.location_id == location_id, Conversation.patient_id == patient_id)
        .order_by(Conversation.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.is_open or latest.close_reason in _FINAL:
        return None
    recent = latest.closed_at is not None and latest.closed_at >= now - within
    upcoming = session.scalar(
        select(Appointment.id)
        .where(
            Appointment.conversation_id == latest.id,
            Appointment.status == "booked",
            Appointment.starts_at > now,
        )
        .limit(1)
    )
    if not recent and upcoming is None:
        return None
    latest.is_open = True
    latest.closed_at = None
    if latest.status == "closed":
        latest.status = "active"
    session.flush()  # the partial unique index guards "one open thread" from here on
    return latest
