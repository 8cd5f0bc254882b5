"""Patient records, erasure: a patient's personal data is erased on request.

Their rows stay (anonymous, so counts and reports stay right), and an opt-out outlives the
record as a hash of the number (see :class:`ringback.models.SuppressedNumber`). Nothing here
commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from ringback.models import (
    Appointment,
    Call,
    Conversation,
    LineTypeCache,
    Message,
    Note,
    Patient,
    ProviderEvent,
    SuppressedNumber,
)
from ringback.patients import service as patients
from ringback.phones import InvalidPhoneNumber, normalize_e164

# --- deletion ------------------------------------------------------------------------------

ERASED = "[deleted]"
# Provider payload keys kept after deletion: ids and statuses, which replay and receipts
# match on. Everything else (the body, caller name, city, zip...) is dropped; a number
# that was the patient's is replaced by the placeholder.
_KEPT_PAYLOAD_KEYS = frozenset(
    {
        "AccountSid",
        "ApiVersion",
        "CallSid",
        "CallStatus",
        "DialCallStatus",
        "Direction",
        "ErrorCode",
        "MessageSid",
        "MessageStatus",
        "SmsSid",
        "SmsStatus",
        "From",
        "To",
        "Caller",
        "Called",
    }
)


class RecordError(Exception):
    """An expected refusal, with the HTTP status it means and a message naming the thing."""

    status = 400


class PatientNotFound(RecordError):
    status = 404


class AlreadyDeleted(RecordError):
    status = 409


@dataclass(frozen=True)
class DeletionReport:
    patient_id: int
    location_id: str
    messages: int
    notes: int
    calls: int
    appointments: int
    conversations_closed: int
    events: int
    opt_out_kept: bool

    def summary(self) -> str:
        kept = "; opt-out kept as a hash of the number" if self.opt_out_kept else ""
        return (
            f"patient {self.patient_id}: personal data erased ({self.messages} texts, "
            f"{self.notes} notes, {self.calls} calls, {self.appointments} appointments, "
            f"{self.events} provider events; {self.conversations_closed} open conversations "
            f"closed){kept}"
        )


def placeholder(patient_id: int) -> str:
    """What a deleted patient's phone number becomes: unique, and not a number."""
    return f"deleted:{patient_id}"


def delete_patient(
    session: Session, patient_id: int, now: datetime, *, stop_texts: bool = False
) -> DeletionReport:
    """Erase a patient's personal data on request, keeping anonymous rows for the counts.

    Erased: the number (replaced by :func:`placeholder` everywhere it was theirs, which
    frees it, so a later call from it is a new, unknown caller), names, the clinic's id,
    every text's body (to and from them, and staff alerts about them), staff notes, the
    webhook payloads that carried them, the cached line type of the number. Kept: the
    rows themselves with times, statuses, treatments and appointment times and values, so
    the funnel and reports still count them. Open conversations are closed. When the
    patient had opted out (or ``stop_texts``), the opt-out is kept as a hash of location
    and number (:class:`ringback.models.SuppressedNumber`), so a fresh record for the
    number starts opted out.
    """
    patient = session.get(Patient, patient_id, with_for_update=True)
    if patient is None:
        raise PatientNotFound(f"patient {patient_id}: not found")
    if patient.deleted_at is not None:
        raise AlreadyDeleted(
            f"patient {patient_id}: already deleted on {patient.deleted_at:%Y-%m-%d}"
        )
    phone, location_id, gone = patient.phone, patient.location_id, placeholder(patient.id)
    conversation_ids = select(Conversation.id).where(Conversation.patient_id == patient.id)
    theirs = or_(Message.patient_id == patient.id, Message.conversation_id.in_(conversation_ids))
    their_calls = or_(
        Call.patient_id == patient.id,
        and_(Call.location_id == location_id, Call.from_number == phone),
    )
    message_sids = [
        sid
        for sid in session.scalars(
            select(Message.provider_sid).where(theirs, Message.provider_sid.is_not(None))
        )
        if sid
    ]
    call_sids = list(session.scalars(select(Call.call_sid).where(their_calls)))
    events = _scrub_events(session, [*message_sids, *call_sids], phone, gone, now)

    session.execute(
        update(Message)
        .where(theirs, Message.status == "pending")
        .values(status="suppressed", error_detail="deleted")
    )
    messages = _rowcount(session.execute(update(Message).where(theirs).values(body=ERASED)))
    session.execute(
        update(Message).where(theirs, Message.from_number == phone).values(from_number=gone)
    )
    session.execute(
        update(Message).where(theirs, Message.to_number == phone).values(to_number=gone)
    )
    calls = _rowcount(
        session.execute(update(Call).where(their_calls).values(from_raw=gone, from_number=gone))
    )
    notes = _rowcount(
        session.execute(
            delete(Note).where(
                or_(Note.patient_id == patient.id, Note.conversation_id.in_(conversation_ids))
            )
        )
    )
    appointments = _rowcount(
        session.execute(
            update(Appointment).where(Appointment.patient_id == patient.id).values(external_id=None)
        )
    )
    closed = 0
    for conversation in session.scalars(
        select(Conversation).where(Conversation.patient_id == patient.id)
    ):
        if conversation.lost_reason:
            conversation.lost_reason = ERASED
        if conversation.is_open:
            conversation.is_open = False
            conversation.status = "closed"
            conversation.close_reason = "deleted"
            conversation.closed_at = now
            conversation.next_timer_at = None
            closed += 1
    session.execute(delete(LineTypeCache).where(LineTypeCache.phone == phone))

    key = (location_id, patients.number_hash(location_id, phone))
    suppressed = session.get(SuppressedNumber, key)
    keep = patient.opted_out_at is not None or stop_texts
    if keep:
        opted_out_at = patient.opted_out_at or now
        if suppressed is None:
            session.add(
                SuppressedNumber(
                    location_id=location_id,
                    number_hash=key[1],
                    opted_out_at=opted_out_at,
                    created_at=now,
                )
            )
        else:
            suppressed.opted_out_at = opted_out_at
        if patient.opted_out_at is None:
            patients.opt_out(patient, now, "deletion_request")
    elif suppressed is not None:
        session.delete(suppressed)  # they had opted back in since an earlier deletion

    patient.phone = gone
    patient.first_name = None
    patient.last_name = None
    patient.external_id = None
    patient.deleted_at = now
    patient.updated_at = now
    session.flush()
    return DeletionReport(
        patient_id=patient.id,
        location_id=location_id,
        messages=messages,
        notes=notes,
        calls=calls,
        appointments=appointments,
        conversations_closed=closed,
        events=events,
        opt_out_kept=keep,
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _scrub_events(session: Session, sids: list[str], phone: str, gone: str, now: datetime) -> int:
    """Strip personal data from the stored webhooks of these calls and texts.

    Events are keyed by the provider's id, or the id and a status (``CA…:completed``).
    """
    count = 0
    for start in range(0, len(sids), 200):
        batch = sids[start : start + 200]
        events = session.scalars(
            select(ProviderEvent).where(
                or_(
                    ProviderEvent.external_id.in_(batch),
                    *(
                        ProviderEvent.external_id.startswith(f"{sid}:", autoescape=True)
                        for sid in batch
                    ),
                )
            )
        )
        for event in events:
            event.payload = _scrubbed(event.payload, phone, gone, now)
            count += 1
    return count


def _scrubbed(payload: Mapping[str, Any], phone: str, gone: str, now: datetime) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in payload.items():
        if key in _KEPT_PAYLOAD_KEYS or key.startswith("_ringback"):
            kept[key] = gone if _same_number(value, phone) else value
    kept["_ringback_erased_at"] = now.isoformat()
    return kept


def _same_number(value: object, phone: str) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return value == phone or normalize_e164(value) == phone
    except InvalidPhoneNumber:
        return False
