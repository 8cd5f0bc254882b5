"""Missed-call detection and the text-back: applies call events, screens, queues the text.

Called from the event handler job inside its transaction. Every step is idempotent: the
call's ``outcome`` moves from ``pending`` once, screening runs once per call, and the
text-back is keyed by the call, so replays and duplicates send nothing new.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ringback import readable
from ringback.config import Location
from ringback.conversation import service as conversation_service
from ringback.conversation.threads import find_open, open_conversation
from ringback.db import insert_returning
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.messaging.outbox import queue_sms
from ringback.missed_calls.screening import CallerFacts, screen
from ringback.models import Call, LineTypeCache, Message, Patient
from ringback.outbound_webhooks import service as webhooks
from ringback.patients import service as patients
from ringback.phones import InvalidPhoneNumber, is_anonymous, normalize_e164, redact
from ringback.ports import LookupFailed

log = logging.getLogger(__name__)

CallMode = Literal["ring", "forwarded", "after_hours"]

# Twilio's DialCallStatus for the front-desk leg.
DIAL_MISSES = {
    "no-answer": "no_answer",
    "busy": "staff_busy",
    "failed": "no_answer",
    "canceled": "caller_hung_up",
}
DIAL_ANSWERED = frozenset({"completed", "answered"})
# The parent call's final CallStatus, when no dial result told us what happened.
CALL_FINAL = {
    "completed": "caller_hung_up",
    "canceled": "caller_hung_up",
    "busy": "staff_busy",
    "no-answer": "no_answer",
    "failed": "no_answer",
}
LOOKUP_TTL = timedelta(days=30)


def call_mode(location: Location, now: datetime) -> CallMode:
    """How to treat a new call: ring the front desk, or count it missed straight away."""
    if not location.is_open(now) and (location.forwarded_only or location.after_hours_skip_ring):
        return "after_hours"
    if location.forwarded_only:
        return "forwarded"
    return "ring"


def _upsert_call(
    session: Session,
    location: Location,
    payload: dict[str, Any],
    at: datetime,
    mode: str,
    *,
    provider: str | None = None,
) -> Call:
    provider = provider or str(payload.get("_provider") or location.provider)
    from_raw = str(payload.get("From", "")).strip()
    try:
        from_number = None if is_anonymous(from_raw) else normalize_e164(from_raw)
    except InvalidPhoneNumber:
        from_number = None
    call = insert_returning(
        session,
        Call,
        {
            "provider": provider,
            "call_sid": payload["CallSid"],
            "location_id": location.id,
            "from_raw": from_raw[:40],
            "from_number": from_number,
            "started_at": at,
            "mode": mode,
            "after_hours": not location.is_open(at),
            "outcome": "pending",
        },
        ["provider", "call_sid"],
    )
    if call is not None:
        return call  # new in this transaction: no one else can hold it
    return session.scalars(
        select(Call)
        .where(Call.provider == provider, Call.call_sid == payload["CallSid"])
        .with_for_update(of=Call)
    ).one()


def _mark_missed(call: Call, reason: str, at: datetime) -> bool:
    if call.outcome != "pending":
        return False
    call.outcome = "missed"
    call.miss_reason = "after_hours" if call.after_hours else reason
    call.missed_at = at
    return True


def on_voice(
    session: Session,
    deps: Deps,
    location: Location,
    payload: dict[str, Any],
    at: datetime,
    mode: CallMode,
) -> None:
    call = _upsert_call(session, location, payload, at, mode)
    if mode != "ring" and _mark_missed(call, "no_answer", at):
        _missed(session, deps, location, call)


def on_dial_result(
    session: Session, deps: Deps, location: Location, payload: dict[str, Any], at: datetime
) -> None:
    call = _upsert_call(session, location, payload, at, "ring")
    status = payload["DialCallStatus"]
    if status in DIAL_MISSES:
        if _mark_missed(call, DIAL_MISSES[status], at):
            _missed(session, deps, location, call)
    elif status in DIAL_ANSWERED and call.outcome == "pending":
        call.outcome = "answered"
        log_event(log, "call.answered", call_id=call.id, location=location.id)


def on_call_status(
    session: Session,
    deps: Deps,
    location: Location,
    payload: dict[str, Any],
    at: datetime,
    dial_result_seen: bool,
) -> None:
    """The backstop: a parent call that ended with no outcome recorded is a miss."""
    call = _upsert_call(session, location, payload, at, "ring")
    status = payload["CallStatus"]
    if status not in CALL_FINAL:
        return
    call.ended_at = call.ended_at or at
    if (
        call.outcome == "pending"
        and not dial_result_seen
        and _mark_missed(call, CALL_FINAL[status], at)
    ):
        _missed(session, deps, location, call)


def reported_call_sid(location_id: str, event_id: str) -> str:
    """How a call another phone system reported is keyed: its id, within its location (two
    clinics' phone systems may well both number their calls from 1)."""
    return f"{location_id}:{event_id}"


def reported_call(session: Session, location_id: str, event_id: str) -> Call | None:
    return session.scalars(
        select(Call).where(
            Call.provider == "api", Call.call_sid == reported_call_sid(location_id, event_id)
        )
    ).one_or_none()


def on_reported_miss(
    session: Session, deps: Deps, location: Location, payload: dict[str, Any]
) -> None:
    """A missed call another phone system reported (``POST /api/v1/missed-calls``): the same
    miss, screening and text-back as one Twilio told us about."""
    at = datetime.fromisoformat(payload["occurred_at"])
    call_sid = reported_call_sid(location.id, payload["event_id"])
    fields = {"CallSid": call_sid, "From": payload["from"]}
    call = _upsert_call(session, location, fields, at, "reported", provider="api")
    if _mark_missed(call, payload.get("reason") or "no_answer", at):
        _missed(session, deps, location, call)


def _missed(session: Session, deps: Deps, location: Location, call: Call) -> None:
    log_event(
        log,
        "missed_call.detected",
        call_id=call.id,
        location=location.id,
        reason=call.miss_reason,
        caller=redact(call.from_number or call.from_raw),
    )
    # Held here so the webhook below finds the patient in the session rather than
    # loading it again (the session keeps unchanged rows only while they are in use).
    patient = screen_and_text(session, deps, location, call)
    funnel.call_changed(call)
    webhooks.call_missed(session, deps, call)
    del patient


def _cached_line_type(session: Session, deps: Deps, number: str) -> str | None:
    now = deps.clock()
    cached = session.get(LineTypeCache, number)
    if cached is not None and now - cached.looked_up_at < LOOKUP_TTL:
        return cached.line_type
    if deps.lookup is None:
        return None
    try:
        line_type = deps.lookup.line_type(number)
    except LookupFailed as exc:
        log_event(log, "lookup.failed", logging.WARNING, caller=redact(number), detail=str(exc))
        return None
    if cached is None:
        session.add(LineTypeCache(phone=number, line_type=line_type, looked_up_at=now))
    else:
        cached.line_type, cached.looked_up_at = line_type, now
    return line_type


def _last_textback_at(session: Session, patient_id: int) -> datetime | None:
    return session.scalar(
        select(func.max(Message.created_at)).where(
            Message.patient_id == patient_id,
            Message.kind == "textback",
            Message.status.not_in(("suppressed", "failed")),
        )
    )


def textback_body(location: Location, variant_index: int, appointment_at: datetime | None) -> str:
    """The first text: the location's template, with opt-out wording unless it has some."""
    messages = location.messages
    if appointment_at is not None:
        when = readable.when(appointment_at, location.zone)
        body = location.render(messages.appointment_textback, appointment=when)
    else:
        templates = (messages.textback, *messages.textback_variants)
        body = location.render(templates[variant_index % len(templates)])
    if "stop" not in body.lower() and messages.opt_out_suffix:
        body = f"{body} {messages.opt_out_suffix}"
    return body


def screen_and_text(session: Session, deps: Deps, location: Location, call: Call) -> Patient | None:
    """Screen a missed call once and, when it is recoverable, queue the text-back.

    Returns the caller's patient record (None for a withheld or invalid number, or when
    the call was screened before).
    """
    if call.screening is not None:
        return None
    now = deps.clock()
    number = call.from_number
    # The look-ups below read nothing this transaction has changed, so the call's changes
    # (missed, screened, its patient and thread) wait and go out as one UPDATE.
    with session.no_autoflush:
        patient, new_patient = (
            patients.find_or_create(session, location.id, number, now) if number else (None, False)
        )
        # A record created just now has no thread, text or appointment to look up.
        known = patient if patient is not None and not new_patient else None
        open_conv = find_open(session, location.id, known.id) if known else None
        appointment = (
            patients.upcoming_appointment(
                session, known.id, now, now + timedelta(hours=location.appointment_window_hours)
            )
            if known
            else None
        )
        facts = CallerFacts(
            anonymous=is_anonymous(call.from_raw),
            number=number,
            own_number=number in location.own_numbers(),
            blocklisted=number in location.blocklist,
            opted_out=bool(patient and patient.opted_out_at),
            wrong_number=bool(patient and patient.wrong_number_at),
            not_textable=bool(patient and (patient.not_textable_reason or patient.deleted_at)),
            open_conversation_id=open_conv.id if open_conv else None,
            last_textback_at=_last_textback_at(session, known.id) if known else None,
            upcoming_appointment_at=appointment.starts_at if appointment else None,
        )
        line_type = (
            (lambda: _cached_line_type(session, deps, number))
            if location.skip_landlines and number
            else None
        )
        decision = screen(
            facts, now=now, cooldown_hours=location.cooldown_hours, line_type=line_type
        )
        call.patient_id = patient.id if patient else None
        call.screening = decision.outcome
        call.screening_detail = decision.detail
        call.screened_at = now
        if open_conv is not None:
            call.conversation_id = open_conv.id
        log_event(log, "missed_call.screened", call_id=call.id, outcome=decision.outcome)
        if not decision.texts or patient is None or number is None:
            return patient
        variants = 1 + len(location.messages.textback_variants)
        variant_index = call.id % variants
        conversation, created = open_conversation(
            session,
            location.id,
            patient,
            now,
            variant="ABCDEFGH"[variant_index % 8],
            known_none_open=open_conv is None,
        )
        call.conversation_id = conversation.id
        if not created:
            call.screening = "joined_conversation"
            call.screening_detail = f"joined open conversation {conversation.id}"
            return patient
        funnel.conversation_opened(conversation, call)
    send_after = None
    if location.hold_textback_outside_texting_hours:
        send_after = location.next_texting_time(now)
    queue_sms(
        session,
        deps,
        location_id=location.id,
        patient=patient,
        from_number=location.phone_number,
        body=textback_body(location, variant_index, facts.upcoming_appointment_at),
        kind="textback",
        idempotency_key=f"textback:{call.id}",
        conversation_id=conversation.id,
        call_id=call.id,
        trigger_at=call.missed_at,
        send_after=send_after,
    )
    conversation_service.texted_back(
        session,
        deps,
        location,
        conversation,
        patient,
        about_appointment=facts.upcoming_appointment_at is not None,
    )
    # Set after the machine's step, so the new thread is updated once, not twice.
    conversation.last_outbound_at = now
    return patient
