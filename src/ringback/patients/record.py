"""Patient records, the whole record: everything about one patient, for the staff page and
the JSON API, and the staff search.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ringback.models import (
    Appointment,
    Call,
    Conversation,
    Message,
    Note,
    Patient,
    StaffUser,
)
from ringback.patients import service as patients

# --- the whole record ------------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    """Whether the patient may be texted, and since when and how that was decided."""

    opted_out_at: datetime | None
    opt_out_source: str | None
    opted_in_at: datetime | None
    wrong_number_at: datetime | None
    not_textable_reason: str | None
    blocked: str | None  # :func:`ringback.patients.service.why_not_textable`: None = may be texted


@dataclass(frozen=True)
class ConversationEntry:
    conversation: Conversation
    texts: int


@dataclass(frozen=True)
class NoteEntry:
    note: Note
    author: str | None


@dataclass(frozen=True)
class PatientRecord:
    """Everything about one patient, newest first: calls, conversations, visits, notes."""

    patient: Patient
    consent: Consent
    calls: list[Call]
    conversations: list[ConversationEntry]
    appointments: list[Appointment]
    notes: list[NoteEntry]


def patient_record(session: Session, patient_id: int) -> PatientRecord | None:
    """The record, or None when there is no such patient or their data was deleted.

    Whether the reader may see the patient's location is the caller's check.
    """
    patient = session.get(Patient, patient_id)
    if patient is None or patient.deleted_at is not None:
        return None
    calls = session.scalars(
        select(Call)
        .where(Call.patient_id == patient.id)
        .order_by(Call.started_at.desc(), Call.id.desc())
    ).all()
    texts = (
        select(Message.conversation_id, func.count().label("n"))
        .where(Message.patient_id == patient.id)
        .group_by(Message.conversation_id)
        .subquery()
    )
    conversations = session.execute(
        select(Conversation, texts.c.n)
        .outerjoin(texts, texts.c.conversation_id == Conversation.id)
        .where(Conversation.patient_id == patient.id)
        .order_by(Conversation.opened_at.desc(), Conversation.id.desc())
    ).all()
    appointments = session.scalars(
        select(Appointment)
        .where(Appointment.patient_id == patient.id)
        .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
    ).all()
    notes = session.execute(
        select(Note, StaffUser.name)
        .outerjoin(StaffUser, StaffUser.id == Note.author_id)
        .where(Note.patient_id == patient.id)
        .order_by(Note.created_at.desc(), Note.id.desc())
    ).all()
    return PatientRecord(
        patient=patient,
        consent=Consent(
            opted_out_at=patient.opted_out_at,
            opt_out_source=patient.opt_out_source,
            opted_in_at=patient.opted_in_at,
            wrong_number_at=patient.wrong_number_at,
            not_textable_reason=patient.not_textable_reason,
            blocked=patients.why_not_textable(patient),
        ),
        calls=list(calls),
        conversations=[ConversationEntry(c, int(n or 0)) for c, n in conversations],
        appointments=list(appointments),
        notes=[NoteEntry(note, author) for note, author in notes],
    )


SEARCH_LIMIT = 50


def search_patients(
    session: Session, location_ids: Sequence[str], query: str, limit: int = SEARCH_LIMIT
) -> list[Patient]:
    """Patients of these locations whose number or name matches ``query`` (deleted never).

    Three or more digits search the number (any formatting); words search names, each
    word matching a first or last name. An empty query lists the recently changed.
    """
    statement = select(Patient).where(
        Patient.location_id.in_(location_ids), Patient.deleted_at.is_(None)
    )
    text = query.strip()
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 3 and not re.search(r"[^\d\s().+-]", text):
        statement = statement.where(Patient.phone.contains(digits, autoescape=True))
    elif text:
        for word in text.casefold().split():
            pattern = f"%{_escape_like(word)}%"
            statement = statement.where(
                or_(
                    func.lower(Patient.first_name).like(pattern, escape="\\"),
                    func.lower(Patient.last_name).like(pattern, escape="\\"),
                )
            )
    return list(
        session.scalars(
            statement.order_by(Patient.updated_at.desc(), Patient.id.desc()).limit(limit)
        )
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
