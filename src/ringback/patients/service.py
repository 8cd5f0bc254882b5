"""Patient records: one per phone number and location, with consent and textability.

Every path that texts a patient reads consent from here, so an opt-out anywhere stops
every text everywhere for that location.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ringback.db import insert_returning
from ringback.models import Appointment, Patient, SuppressedNumber

# Why a fresh record starts opted out: the number's earlier record was deleted on request
# after its owner had opted out (see ``ringback.erasure.delete_patient``).
KEPT_OPT_OUT = "kept_after_deletion"


def get_or_create(session: Session, location_id: str, phone: str, now: datetime) -> Patient:
    return find_or_create(session, location_id, phone, now)[0]


def find_or_create(
    session: Session, location_id: str, phone: str, now: datetime
) -> tuple[Patient, bool]:
    """The record for this number at this location, and True when it was created just now
    (so nothing else, no thread, text or appointment, can refer to it yet)."""
    patient = insert_returning(
        session,
        Patient,
        {"location_id": location_id, "phone": phone, "created_at": now, "updated_at": now},
        ["location_id", "phone"],
    )
    if patient is None:
        existing = session.scalars(
            select(Patient).where(Patient.location_id == location_id, Patient.phone == phone)
        ).one()
        return existing, False
    suppressed = session.get(SuppressedNumber, (location_id, number_hash(location_id, phone)))
    if suppressed is not None:
        opt_out(patient, suppressed.opted_out_at, KEPT_OPT_OUT)
        patient.updated_at = now
    return patient, True


def number_hash(location_id: str, phone: str) -> str:
    """A one-way key for a number at a location: what a deleted record's opt-out keeps."""
    return hashlib.sha256(f"{location_id}:{phone}".encode()).hexdigest()


def find(session: Session, location_id: str, phone: str) -> Patient | None:
    return session.scalars(
        select(Patient).where(Patient.location_id == location_id, Patient.phone == phone)
    ).one_or_none()


def opt_out(patient: Patient, now: datetime, source: str) -> bool:
    """Record an opt-out; True when it changed anything."""
    if patient.opted_out_at is not None:
        return False
    patient.opted_out_at = now
    patient.opt_out_source = source
    patient.updated_at = now
    return True


def opt_in(patient: Patient, now: datetime) -> bool:
    changed = patient.opted_out_at is not None
    patient.opted_out_at = None
    patient.opt_out_source = None
    patient.opted_in_at = now
    patient.updated_at = now
    return changed


def mark_not_textable(patient: Patient, reason: str, now: datetime) -> None:
    patient.not_textable_reason = reason
    patient.updated_at = now


def why_not_textable(patient: Patient) -> str | None:
    """The reason nothing may be texted to this patient, or None when texting is allowed."""
    if patient.deleted_at is not None:
        return "deleted"
    if patient.opted_out_at is not None:
        return "opted_out"
    if patient.not_textable_reason:
        return "not_textable"
    return None


def upcoming_appointment(
    session: Session, patient_id: int, now: datetime, until: datetime
) -> Appointment | None:
    return session.scalars(
        select(Appointment)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.status == "booked",
            Appointment.starts_at >= now,
            Appointment.starts_at <= until,
        )
        .order_by(Appointment.starts_at)
        .limit(1)
    ).first()


# --- names -------------------------------------------------------------------------------

MAX_NAME = 80  # the column's width


class InvalidName(ValueError):
    """A name staff typed that cannot be kept; ``field`` is first_name or last_name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def clean_name(field: str, raw: str) -> str | None:
    """A name as typed, trimmed with inner runs of spaces made one; None when left empty.

    Names go into texts the bot sends ("Hi Maria"), so control characters (a pasted tab,
    a newline, a zero-width joiner's invisible cousins in category Cc/Cf) are refused.
    """
    text = " ".join(raw.split())
    if not text:
        return None
    if len(text) > MAX_NAME:
        raise InvalidName(field, f"at most {MAX_NAME} characters (got {len(text)})")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in raw.strip()):
        raise InvalidName(field, "contains a control character; type the name again")
    return text


def rename(patient: Patient, first_name: str, last_name: str, now: datetime) -> bool:
    """Set the patient's first and last name (empty clears one); True when anything changed.

    Both are checked before either is written, so a bad last name keeps the old first name.
    """
    first = clean_name("first_name", first_name)
    last = clean_name("last_name", last_name)
    if (patient.first_name, patient.last_name) == (first, last):
        return False
    patient.first_name, patient.last_name = first, last
    patient.updated_at = now
    return True
