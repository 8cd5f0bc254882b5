"""``GET /api/v1/patients/{id}/record``: a patient's whole record as JSON.

Same rules as the rest of ``/api/v1`` (:mod:`ringback.api.v1`): a bearer API token or a
signed-in session, only the caller's locations, and one 404 for missing, deleted or not
visible. Timestamps are ISO-8601 in UTC.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ringback.api import v1
from ringback.api.errors import invalid
from ringback.api.v1 import Caller, Problem, Timestamp
from ringback.booking import service as booking
from ringback.booking import status as appointment_status
from ringback.booking import waitlist
from ringback.conversation import reminders
from ringback.db import transaction
from ringback.patients.record import PatientRecord, patient_record
from ringback.web import RowId, deps_of

# The JSON API's own checks and documentation: its bearer scheme in OpenAPI, ``api_user``
# on every route, and the 401 it answers.
router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    dependencies=list(v1.router.dependencies),
    responses=dict(v1.router.responses),
)


class RecordConsent(BaseModel):
    textable: bool = Field(description="True when Ringback may text this patient")
    not_textable_reason: str | None = Field(
        description="Why not: opted_out, not_textable (carrier said so); null when textable"
    )
    opted_out_at: Timestamp | None
    opt_out_source: str | None = Field(
        description="How they opted out: keyword (STOP), conversation, carrier, "
        "kept_after_deletion or deletion_request"
    )
    opted_in_at: Timestamp | None = Field(description="When they last texted START")
    wrong_number_at: Timestamp | None = Field(description="When they said it was a wrong number")


class RecordCall(BaseModel):
    id: int
    call_sid: str
    started_at: Timestamp
    outcome: str = Field(description="pending, missed or answered")
    miss_reason: str | None
    after_hours: bool
    screening: str | None = Field(description="What screening decided, e.g. texted, cooldown")
    conversation_id: int | None


class RecordConversation(BaseModel):
    id: int
    status: str = Field(description="active, needs_staff, urgent, booked or closed")
    is_open: bool
    treatment: str | None
    opened_at: Timestamp
    closed_at: Timestamp | None
    close_reason: str | None
    booked_value_cents: int | None
    texts: int = Field(description="Texts to and from the patient in this conversation")


class RecordAppointment(BaseModel):
    id: int
    service: str
    provider_name: str | None
    starts_at: Timestamp
    ends_at: Timestamp
    status: str = Field(
        description="booked, cancelled, held (a slot kept while the patient confirms on the "
        "booking page) or expired (a hold that lapsed)"
    )
    source: str = Field(description="import, bot, page or staff")
    provider_id: str | None = Field(description="The configured provider booked with, if any")
    confirmed_at: Timestamp | None = Field(description="When the patient confirmed by text")
    confirmation: str = Field(
        description="unconfirmed, confirmed or cancelled (held or expired for a "
        "booking-page hold): what staff see on the calendar"
    )
    attendance: str | None = Field(description="kept or no_show, once staff marked it")
    value_cents: int | None
    external_id: str | None = Field(description="The appointment's id in the clinic's system")


class RecordNote(BaseModel):
    body: str
    author: str | None
    created_at: Timestamp
    conversation_id: int | None


class FullPatientRecord(BaseModel):
    id: int
    location_id: str
    phone: str = Field(description="E.164", examples=["+12135550142"])
    first_name: str | None
    last_name: str | None
    status: str | None = Field(description="new or returning, once known")
    external_id: str | None = Field(description="The patient's id in the clinic's system")
    created_at: Timestamp
    consent: RecordConsent
    calls: list[RecordCall] = Field(description="Newest first")
    conversations: list[RecordConversation] = Field(description="Newest first")
    appointments: list[RecordAppointment] = Field(description="Latest start first")
    notes: list[RecordNote] = Field(description="Newest first")


def _out(record: PatientRecord) -> FullPatientRecord:
    patient, consent = record.patient, record.consent
    return FullPatientRecord(
        id=patient.id,
        location_id=patient.location_id,
        phone=patient.phone,
        first_name=patient.first_name,
        last_name=patient.last_name,
        status=patient.status,
        external_id=patient.external_id,
        created_at=patient.created_at,
        consent=RecordConsent(
            textable=consent.blocked is None,
            not_textable_reason=consent.blocked,
            opted_out_at=consent.opted_out_at,
            opt_out_source=consent.opt_out_source,
            opted_in_at=consent.opted_in_at,
            wrong_number_at=consent.wrong_number_at,
        ),
        calls=[
            RecordCall(
                id=c.id,
                call_sid=c.call_sid,
                started_at=c.started_at,
                outcome=c.outcome,
                miss_reason=c.miss_reason,
                after_hours=c.after_hours,
                screening=c.screening,
                conversation_id=c.conversation_id,
            )
            for c in record.calls
        ],
        conversations=[
            RecordConversation(
                id=e.conversation.id,
                status=e.conversation.status,
                is_open=e.conversation.is_open,
                treatment=e.conversation.treatment,
                opened_at=e.conversation.opened_at,
                closed_at=e.conversation.closed_at,
                close_reason=e.conversation.close_reason,
                booked_value_cents=e.conversation.booked_value_cents,
                texts=e.texts,
            )
            for e in record.conversations
        ],
        appointments=[
            RecordAppointment(
                id=a.id,
                service=a.service,
                provider_name=a.provider_name,
                provider_id=a.provider_id,
                confirmed_at=a.confirmed_at,
                confirmation=appointment_status.confirmation(a),
                attendance=a.attendance,
                starts_at=a.starts_at,
                ends_at=a.ends_at,
                status=a.status,
                source=a.source,
                value_cents=a.value_cents,
                external_id=a.external_id,
            )
            for a in record.appointments
        ],
        notes=[
            RecordNote(
                body=n.note.body,
                author=n.author,
                created_at=n.note.created_at,
                conversation_id=n.note.conversation_id,
            )
            for n in record.notes
        ],
    )


@router.get(
    "/patients/{patient_id}/record",
    response_model=FullPatientRecord,
    responses={404: {"model": Problem, "description": "Not found, deleted, or not yours to see"}},
    summary="A patient's whole record: consent, calls, conversations, appointments, notes",
)
def get_record(
    request: Request,
    caller: Caller,
    patient_id: RowId,
) -> FullPatientRecord:
    with transaction(deps_of(request).sessions) as session:
        record = patient_record(session, patient_id)
        if record is None or not caller.can_see(record.patient.location_id):
            raise HTTPException(404, f"patient {patient_id}: not found")
        return _out(record)


class AttendanceIn(BaseModel):
    attendance: Literal["kept", "no_show"] = Field(
        description="kept, or no_show (a first no-show gets one warm text with fresh times "
        "when the location's no_show_text allows it)"
    )


class AttendanceOut(BaseModel):
    appointment_id: int
    attendance: str
    confirmation: str
    no_show_texted: bool = Field(description="Whether the no-show text was queued just now")


@router.post(
    "/appointments/{appointment_id}/attendance",
    response_model=AttendanceOut,
    responses={
        404: {"model": Problem, "description": "Not found, or not yours to see"},
        409: {"model": Problem, "description": "Cancelled, or not started yet"},
    },
    summary="Mark an appointment kept or a no-show",
)
def mark_attendance(
    request: Request,
    caller: Caller,
    appointment_id: RowId,
    body: AttendanceIn,
) -> AttendanceOut:
    try:
        appointment, texted = reminders.attend(
            deps_of(request), appointment_id, body.attendance, caller.can_see
        )
    except reminders.NoShowError as error:
        if error.status == 422:
            raise invalid("body", "attendance", body.attendance, error.problem) from error
        raise HTTPException(error.status, error.problem) from error
    return AttendanceOut(
        appointment_id=appointment.id,
        attendance=appointment.attendance or body.attendance,
        confirmation=appointment_status.confirmation(appointment),
        no_show_texted=texted,
    )


class CancelOut(BaseModel):
    appointment_id: int
    status: str
    cancelled_by: str | None


@router.post(
    "/appointments/{appointment_id}/cancel",
    response_model=CancelOut,
    responses={
        404: {"model": Problem, "description": "Not found, or not yours to see"},
        409: {"model": Problem, "description": "Already cancelled (or never booked)"},
    },
    summary="Cancel an appointment as staff (its slot is texted to the waitlist)",
)
def cancel_appointment(
    request: Request,
    caller: Caller,
    appointment_id: RowId,
) -> CancelOut:
    try:
        appointment = booking.cancel_by_staff(deps_of(request), appointment_id, caller.can_see)
    except booking.CancelRefused as error:
        raise HTTPException(error.status, error.problem) from error
    return CancelOut(
        appointment_id=appointment.id,
        status=appointment.status,
        cancelled_by=appointment.cancelled_by,
    )


class WaitlistWindow(BaseModel):
    days: list[str | int] = Field(
        default_factory=list,
        description="Weekdays (mon..sun, or 0 = Monday .. 6); empty: any day",
        examples=[["tue", "thu"]],
    )
    from_: str = Field(default="00:00", alias="from", description="HH:MM, local time")
    to: str = Field(default="23:59", description="HH:MM, local time")


class WaitlistIn(BaseModel):
    service: str = Field(description="A treatment on the location's menu", examples=["Botox"])
    windows: list[WaitlistWindow] = Field(
        default_factory=list, description="When the patient can come; empty: any time"
    )


class WaitlistOut(BaseModel):
    id: int
    location_id: str
    patient_id: int
    service: str
    windows: list[dict[str, Any]]
    status: str = Field(description="waiting, offered (a freed slot was texted), booked ...")
    source: str = Field(description="bot, staff or api")
    created_at: Timestamp
    expires_at: Timestamp | None


def _entry_out(entry: waitlist.EntryView) -> WaitlistOut:
    return WaitlistOut(**{f: getattr(entry, f) for f in WaitlistOut.model_fields})


def _waitlist_error(error: waitlist.WaitlistError, value: object) -> Exception:
    if error.status == 422:
        field = error.problem.split(":", 1)[0]
        return invalid("body", field, value, error.problem.split(": ", 1)[-1])
    return HTTPException(error.status, error.problem)


@router.post(
    "/patients/{patient_id}/waitlist",
    response_model=WaitlistOut,
    status_code=201,
    responses={
        404: {"model": Problem, "description": "Not found, or not yours to see"},
        409: {"model": Problem, "description": "The location keeps no waitlist"},
    },
    summary="Put a patient on the waitlist for a treatment and times",
)
def add_to_waitlist(
    request: Request,
    caller: Caller,
    patient_id: RowId,
    body: WaitlistIn,
) -> WaitlistOut:
    windows = [w.model_dump(by_alias=True) for w in body.windows]
    try:
        entry = waitlist.add_for_patient(
            deps_of(request), patient_id, body.service, windows, caller.can_see, source="api"
        )
    except waitlist.WaitlistError as error:
        raise _waitlist_error(error, body.model_dump(by_alias=True)) from error
    return _entry_out(entry)


@router.get(
    "/waitlist",
    response_model=list[WaitlistOut],
    summary="The live waitlist (waiting and offered entries), oldest first",
)
def list_waitlist(
    request: Request,
    caller: Caller,
    location: Annotated[str | None, Query(max_length=64)] = None,
) -> list[WaitlistOut]:
    deps = deps_of(request)
    ids = [loc.id for loc in deps.locations if caller.can_see(loc.id)]
    if location is not None:
        if location not in ids:
            raise invalid("query", "location", location, "no location with that id")
        ids = [location]
    return [_entry_out(e) for e in waitlist.listing(deps, ids)]


@router.delete(
    "/waitlist/{entry_id}",
    response_model=WaitlistOut,
    responses={404: {"model": Problem, "description": "Not found, or not yours to see"}},
    summary="Take an entry off the waitlist",
)
def remove_from_waitlist(
    request: Request,
    caller: Caller,
    entry_id: RowId,
) -> WaitlistOut:
    try:
        entry = waitlist.remove_entry(deps_of(request), entry_id, caller.can_see)
    except waitlist.WaitlistError as error:
        raise HTTPException(error.status, error.problem) from error
    return _entry_out(entry)
