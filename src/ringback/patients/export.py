"""Patient records, export: one CSV row per patient, never a deleted one.

Cells that a spreadsheet would read as a formula are neutralised.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ringback.db import utcnow
from ringback.models import (
    Appointment,
    Call,
    Conversation,
    Patient,
)
from ringback.patients import service as patients

# --- export --------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id",
    "location_id",
    "phone",
    "first_name",
    "last_name",
    "status",
    "external_id",
    "opted_out_at",
    "opt_out_source",
    "opted_in_at",
    "not_textable_reason",
    "created_at",
    "calls",
    "last_call_at",
    "conversations",
    "appointments",
    "next_appointment_at",
)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


def export_patients(
    session: Session, location_ids: Sequence[str], now: datetime | None = None
) -> Iterator[dict[str, str]]:
    """One row per patient of the locations (never a deleted one), oldest first.

    Times are ISO-8601 in UTC. The columns ``phone``, ``first_name``, ``last_name``,
    ``external_id`` and ``status`` read back with the ``generic`` preset.
    """
    moment = now or utcnow()
    calls = (
        select(
            Call.patient_id.label("patient_id"),
            func.count().label("n"),
            func.max(Call.started_at).label("last_at"),
        )
        .where(Call.location_id.in_(location_ids), Call.patient_id.is_not(None))
        .group_by(Call.patient_id)
        .subquery()
    )
    conversations = (
        select(Conversation.patient_id.label("patient_id"), func.count().label("n"))
        .where(Conversation.location_id.in_(location_ids))
        .group_by(Conversation.patient_id)
        .subquery()
    )
    upcoming = and_(Appointment.status == "booked", Appointment.starts_at >= moment)
    appointments = (
        select(
            Appointment.patient_id.label("patient_id"),
            func.count().label("n"),
            func.min(case((upcoming, Appointment.starts_at))).label("next_at"),
        )
        .where(Appointment.location_id.in_(location_ids))
        .group_by(Appointment.patient_id)
        .subquery()
    )
    statement = (
        select(
            Patient,
            calls.c.n,
            calls.c.last_at,
            conversations.c.n,
            appointments.c.n,
            appointments.c.next_at,
        )
        .outerjoin(calls, calls.c.patient_id == Patient.id)
        .outerjoin(conversations, conversations.c.patient_id == Patient.id)
        .outerjoin(appointments, appointments.c.patient_id == Patient.id)
        .where(Patient.location_id.in_(location_ids), Patient.deleted_at.is_(None))
        .order_by(Patient.id)
        .execution_options(yield_per=500)
    )
    for patient, n_calls, last_call, n_conv, n_appt, next_at in session.execute(statement):
        yield {
            "id": str(patient.id),
            "location_id": patient.location_id,
            "phone": patient.phone,
            "first_name": patient.first_name or "",
            "last_name": patient.last_name or "",
            "status": patient.status or "",
            "external_id": patient.external_id or "",
            "opted_out_at": _iso(patient.opted_out_at),
            "opt_out_source": patient.opt_out_source or "",
            "opted_in_at": _iso(patient.opted_in_at),
            "not_textable_reason": patients.why_not_textable(patient) or "",
            "created_at": _iso(patient.created_at),
            "calls": str(n_calls or 0),
            "last_call_at": _iso(last_call),
            "conversations": str(n_conv or 0),
            "appointments": str(n_appt or 0),
            "next_appointment_at": _iso(next_at),
        }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """Keep a spreadsheet from running a cell as a formula (a name like '=HYPERLINK(..)').

    E.164 numbers start with '+' but are only digits after it, which no spreadsheet runs.
    """
    if value.startswith(_FORMULA_START) and not re.fullmatch(r"\+\d+", value):
        return "'" + value
    return value


def csv_lines(rows: Iterable[Mapping[str, str]], columns: Sequence[str]) -> Iterator[str]:
    """The rows as CSV text, a line at a time (header first), for a file or a response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(row.get(name, "")) for name in columns])
        yield buffer.getvalue()
